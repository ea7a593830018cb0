"""The Slurm executor's pure parts: the sbatch command line and the retry plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoreduce.failures import ErrorCategory
from autoreduce.plugin import RunInfo
from autoreduce.settings import InstrumentConfig, Settings
from queue_processor.executors import plan_retry
from queue_processor.isolation import Outcome, ReductionJob
from queue_processor.slurm import JobState, SlurmExecutor, sbatch_argv, time_limit

TEMPLATE = {"lastruns": "{root}/lastruns.txt", "data": "{root}/{run_number}.nxs"}


def config(**extra: object) -> InstrumentConfig:
    return InstrumentConfig.model_validate({"plugin": "noop", **TEMPLATE, **extra})


def job(tmp_path: Path, memory_mb: int = 100, timeout_s: float = 90) -> ReductionJob:
    run = RunInfo("WISH", 7, 0, "", tmp_path / "WISH7.nxs")
    return ReductionJob("noop", run, {}, tmp_path / ".v0.tmp-1", timeout_s, memory_mb, 1)


@pytest.mark.parametrize(
    ("seconds", "limit"), [(0.2, "0:01"), (59.5, "1:00"), (90, "1:30"), (3600, "60:00")]
)
def test_a_time_limit_is_minutes_and_seconds_rounded_up(seconds: float, limit: str) -> None:
    assert time_limit(seconds) == limit


def test_sbatch_gets_the_instruments_resources_and_none_of_the_processors_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREDUCE_DATABASE_URL", "mysql://root:secret@db/autoreduce")
    settings = Settings(data_dir=tmp_path, slurm_overhead_mb=50)
    instrument = config(cpus=4, partition="heavy", sbatch_options=["--qos=long"])

    argv = sbatch_argv(settings, instrument, job(tmp_path), "autoreduce-1-1-abc", tmp_path / "j")

    assert argv[:2] == ["sbatch", "--parsable"]
    # a job Slurm put back in its queue (a node failed) would reduce the run a second time
    # beside the retry autoreduce makes of it: Slurm never requeues ours
    assert "--no-requeue" in argv
    assert {"--mem=150M", "--cpus-per-task=4", "--time=1:30", "--partition=heavy"} <= set(argv)
    assert "--qos=long" in argv and argv[-1].startswith("--wrap=exec ")
    [export] = [arg for arg in argv if arg.startswith("--export=")]
    assert "AUTOREDUCE" not in export and "secret" not in " ".join(argv)


def failed(reason: str, category: str = "", message: str = "") -> Outcome:
    return Outcome(ok=False, reason=reason, category=category, exception_message=message)


@pytest.mark.parametrize(
    "outcome",
    [
        failed("Slurm job 3 ran out of memory", ErrorCategory.MEMORY.value),
        failed("plugin exceeded its memory limit of 100 MB", ErrorCategory.MEMORY.value),
        failed("reduction process died from signal SIGKILL (killed)", ErrorCategory.CRASH.value),
    ],
)
def test_a_reduction_killed_for_memory_is_retried_with_double_up_to_the_maximum(
    outcome: Outcome,
) -> None:
    instrument = config(memory_mb=100, max_memory_mb=300)

    first = plan_retry(outcome, memory_mb=100, config=instrument, attempt=1, max_attempts=3)
    second = plan_retry(outcome, memory_mb=200, config=instrument, attempt=2, max_attempts=3)
    beyond = plan_retry(outcome, memory_mb=300, config=instrument, attempt=2, max_attempts=5)
    last = plan_retry(outcome, memory_mb=100, config=instrument, attempt=3, max_attempts=3)

    assert first is not None and first.memory_mb == 200 and "retrying with 200 MB" in first.reason
    assert second is not None and second.memory_mb == 300
    assert beyond is None and last is None


def test_without_a_maximum_memory_is_not_retried_and_other_failures_are_final() -> None:
    memory = failed("plugin exceeded its memory limit of 100 MB", ErrorCategory.MEMORY.value)
    raised = failed("plugin raised ValueError: bad", ErrorCategory.PLUGIN.value)

    assert plan_retry(memory, memory_mb=100, config=config(), attempt=1, max_attempts=3) is None
    instrument = config(max_memory_mb=400)
    assert plan_retry(raised, memory_mb=100, config=instrument, attempt=1, max_attempts=3) is None


def test_no_space_left_on_device_is_retried_with_the_same_memory() -> None:
    full = failed(
        "plugin raised OSError: [Errno 28] No space left on device",
        ErrorCategory.PLUGIN.value,
        "[Errno 28] No space left on device",
    )

    retry = plan_retry(full, memory_mb=100, config=config(), attempt=1, max_attempts=3)

    assert retry is not None and retry.memory_mb is None and "retrying later" in retry.reason


@pytest.mark.parametrize(
    ("state", "category", "retryable", "reason"),
    [
        (
            "OUT_OF_MEMORY",
            "memory",
            False,
            "Slurm job 9 ran out of memory (OUT_OF_MEMORY at 100 MB",
        ),
        ("TIMEOUT", "timeout", False, "Slurm job 9 exceeded its 90 s time limit (TIMEOUT)"),
        ("NODE_FAIL", "infrastructure", True, "Slurm job 9 ended NODE_FAIL without a verdict"),
        ("UNKNOWN", "infrastructure", True, "Slurm job 9 is no longer known to Slurm"),
        ("CANCELLED", "infrastructure", False, "Slurm job 9 was cancelled outside autoreduce"),
        ("FAILED", "crash", True, "Slurm job 9 ended FAILED (exit 1:0) without a verdict"),
    ],
)
def test_slurms_verdict_without_the_jobs_own_maps_to_the_runs(
    tmp_path: Path, state: str, category: str, retryable: bool, reason: str
) -> None:
    executor = SlurmExecutor(Settings(data_dir=tmp_path), None, "p1")  # type: ignore[arg-type]

    outcome = executor.verdict("9", tmp_path, job(tmp_path), JobState(state, "", "1:0"))

    assert (outcome.ok, outcome.category, outcome.retryable) == (False, category, retryable)
    assert outcome.reason.startswith(reason)


def test_the_jobs_own_verdict_wins_over_slurms_state(tmp_path: Path) -> None:
    executor = SlurmExecutor(Settings(data_dir=tmp_path), None, "p1")  # type: ignore[arg-type]
    (tmp_path / "verdict.json").write_text(
        json.dumps({"ok": True, "summary": "done", "files": ["a.txt"], "plots": []})
    )

    outcome = executor.verdict("9", tmp_path, job(tmp_path), JobState("COMPLETED"))

    assert (outcome.ok, outcome.files, outcome.summary) == (True, ["a.txt"], "done")
