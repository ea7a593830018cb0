"""The Slurm executor: a reduction as an ``sbatch`` job, and what Slurm's verdict means.

The job runs :mod:`queue_processor.slurm_job` (the local child's entry point) in a job directory
beside the run's output directory, ``.<version>.slurm-<hex>`` (the local work directories'
``.tmp-*`` are swept by a processor taking a run over; this one must outlive its submitter).
Before anything waits on the job its name and directory are committed, then its id
(:mod:`autoreduce.run_attempts`); a processor that takes the run over before the hand-off finds
that job instead of submitting another. Then the job is handed to the processor's follower
thread (:mod:`queue_processor.slurm_follower`), which follows any number of jobs. While the job
waits in Slurm's queue the run stays ``Processing`` with the message
``pending in Slurm as job N``.

Slurm's verdicts: the job's own ``verdict.json`` when it wrote one; else ``OUT_OF_MEMORY`` →
Error (memory), ``TIMEOUT`` → Error (timeout), ``NODE_FAIL``/``BOOT_FAIL``/``PREEMPTED`` or a job
Slurm no longer knows → retried like a crash, ``CANCELLED`` by someone else → Error
(infrastructure). Cancelling the run ``scancel``s the job. Every job is ``--no-requeue``: Slurm
requeueing a failed node's job (its default with ``JobRequeue=1``) would reduce the run again
beside autoreduce's own retry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoreduce.db import Database
from autoreduce.failures import ErrorCategory
from autoreduce.run_attempts import unfinished_slurm_attempt, update_attempt
from autoreduce.settings import InstrumentConfig, Settings
from queue_processor.isolation import Outcome, ReductionJob, _outcome
from queue_processor.record import show_on_held
from queue_processor.slurm_job import JOB_FILE, OUT_DIR, VERDICT_FILE, job_document

logger = logging.getLogger("autoreduce.process")

COMMAND_TIMEOUT_S = 30.0
STOP_CHECK_S = 0.05  # how often a step's stop reason is asked between two reads of its job
STOP_CHECK_S = 0.05  # how often the stop reason is asked between two reads of the job's state
CANCEL_WAIT_S = 30.0
ACTIVE = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
)
RETRIED = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REQUEUE_FED", "REVOKED"})
UNKNOWN = "UNKNOWN"  # Slurm no longer (or never) knew the job
PENDING_MESSAGE = "pending in Slurm as job {}"
RUNNING_MESSAGE = "running in Slurm as job {}"
FIELD = re.compile(r"(\w+)=(\S*)")
# Environment the job gets (names only, from the processor's): never the processor's secrets.
EXPORTED = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")


class SlurmError(RuntimeError):
    """A Slurm command failed (the controller is down, the options were refused)."""


@dataclass(frozen=True)
class JobState:
    state: str
    reason: str = ""
    exit_code: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmError(f"{argv[0]}: {error}") from None
    if done.returncode != 0:
        raise SlurmError(f"{argv[0]}: {done.stderr.strip()[:300] or f'status {done.returncode}'}")
    return done.stdout


def job_state(job_id: str) -> JobState:
    """The job's state as ``scontrol`` tells it; UNKNOWN once Slurm has forgotten it."""
    try:
        text = _command("scontrol", "show", "job", "--oneliner", job_id)
    except SlurmError as error:
        if "Invalid job id" in str(error):
            return JobState(UNKNOWN)
        raise
    fields = dict(FIELD.findall(text))
    return JobState(
        fields.get("JobState", UNKNOWN), fields.get("Reason", ""), fields.get("ExitCode", "")
    )


def job_states(job_ids: list[str]) -> dict[str, JobState]:
    """The states of ``job_ids`` in one ``squeue`` call; a job Slurm forgot is UNKNOWN."""
    if not job_ids:
        return {}
    try:
        text = _command(
            "squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}",
            "--format=%i|%T|%r",
        )  # fmt: skip
    except SlurmError as error:
        if "Invalid job id" not in str(error):
            raise
        text = ""  # every one of them forgotten
    found = {UNKNOWN: JobState(UNKNOWN)}
    for line in text.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        found[job_id] = JobState(state or UNKNOWN, reason)
    return {job_id: found.get(job_id, found[UNKNOWN]) for job_id in job_ids}


def job_by_name(name: str) -> str:
    """The id of the job named ``name`` Slurm still knows (any state), or ""."""
    text = _command("squeue", "--noheader", "--states=all", "--name", name, "--format=%i")
    ids = text.split()
    return ids[-1] if ids else ""


def cancel(job_id: str) -> None:
    try:
        _command("scancel", job_id)
    except SlurmError as error:
        logger.warning("scancel %s: %s", job_id, error)


def time_limit(timeout_s: float) -> str:
    """``timeout_s`` as sbatch's ``minutes:seconds`` (Slurm checks it about every 30 s)."""
    minutes, seconds = divmod(max(1, math.ceil(timeout_s)), 60)
    return f"{minutes}:{seconds:02d}"


def sbatch_argv(
    settings: Settings, config: InstrumentConfig, job: ReductionJob, name: str, job_dir: Path
) -> list[str]:
    exported = ",".join(key for key in EXPORTED if key in os.environ) or "NONE"
    command = shlex.join([sys.executable, "-m", "queue_processor.slurm_job", str(job_dir)])
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        f"--chdir={job_dir}",
        f"--output={job_dir / OUT_DIR / 'reduction.log'}",
        "--open-mode=append",
        "--no-requeue",  # a failed node's job is retried by autoreduce, never rerun by Slurm
        f"--export={exported}",
        f"--mem={job.memory_mb + settings.slurm_overhead_mb}M",
        f"--cpus-per-task={config.cpus}",
        f"--time={time_limit(job.timeout_s)}",
    ]
    if config.partition:
        argv.append(f"--partition={config.partition}")
    argv.extend(config.sbatch_options)
    argv.append(f"--wrap=exec {command}")
    return argv


@dataclass(frozen=True)
class Submitted:
    """A run's job in Slurm: its id and directory, committed to its attempt."""

    job_id: str
    job_dir: Path


class SlurmExecutor:
    """Submits (or, taking a run over, finds) a run's job; the follower reads its verdict."""

    def __init__(self, settings: Settings, database: Database, processor_id: str) -> None:
        self.settings = settings
        self.database = database
        self.processor_id = processor_id

    def submit(
        self, job: ReductionJob, config: InstrumentConfig, *, run_id: int, attempt: int
    ) -> Submitted | Outcome:
        """The run's job, submitted now or found from an earlier attempt; an Outcome if Slurm
        refused it."""
        try:
            return self._submit_or_find(job, config, run_id, attempt)
        except SlurmError as error:
            return Outcome(
                ok=False,
                reason=f"could not submit to Slurm: {error}",
                retryable=True,
                category=ErrorCategory.INFRASTRUCTURE.value,
            )

    def run_here(
        self,
        job: ReductionJob,
        config: InstrumentConfig,
        document: dict[str, Any],
        stop_reason: Callable[[], str],
        submitted: Callable[[str], None] = lambda job_id: None,
    ) -> Outcome:
        """A pipeline step as a Slurm job, followed on the calling thread until it ends (its
        pipeline holds the processor anyway); ``document`` is the job's ``job.json``,
        ``submitted`` is told the job's id."""
        hex_id = uuid.uuid4().hex[:6]
        name = f"autoreduce-{job.run_id}-step-{hex_id}"
        job_dir = job.work_dir.parent / f".{job.work_dir.name}.slurm-{hex_id}"
        (job_dir / OUT_DIR).mkdir(parents=True)
        (job_dir / JOB_FILE).write_text(json.dumps(document), encoding="utf-8")
        try:
            job_id = _command(*sbatch_argv(self.settings, config, job, name, job_dir)).strip()
        except SlurmError as error:
            shutil.rmtree(job_dir, ignore_errors=True)
            return Outcome(
                ok=False,
                reason=f"could not submit to Slurm: {error}",
                category=ErrorCategory.INFRASTRUCTURE.value,
            )
        job_id = job_id.split(";", 1)[0]
        logger.info("run id %s: a pipeline step submitted to Slurm as job %s", job.run_id, job_id)
        submitted(job_id)
        stopped = ""
        state = JobState("PENDING")
        while True:
            with contextlib.suppress(SlurmError):  # the controller restarting: asked again
                state = job_state(job_id)
            if not state.active:
                break
            if not stopped and (stopped := stop_reason()):
                cancel(job_id)
            deadline = time.monotonic() + self.settings.slurm_poll_s
            while time.monotonic() < deadline:
                if not stopped and stop_reason():
                    break
                time.sleep(STOP_CHECK_S)
        outcome = (
            Outcome(ok=False, reason=stopped)
            if stopped
            else self.verdict(job_id, job_dir, job, state)
        )
        self.collect(job_dir, job.work_dir)
        return outcome

    def _submit_or_find(
        self, job: ReductionJob, config: InstrumentConfig, run_id: int, attempt: int
    ) -> Submitted:
        earlier = unfinished_slurm_attempt(self.database, run_id, before=attempt)
        if earlier is not None:
            job_id = earlier.slurm_job_id or job_by_name(earlier.slurm_job_name)
            # the recorded directory is used only where this attempt's own would be
            if job_id and Path(earlier.job_dir).parent == job.work_dir.parent:
                logger.info(
                    "run id %s: following Slurm job %s of attempt %s",
                    run_id,
                    job_id,
                    earlier.attempt,
                )
                update_attempt(
                    self.database,
                    run_id=run_id,
                    attempt=attempt,
                    slurm_job_name=earlier.slurm_job_name,
                    slurm_job_id=job_id,
                    job_dir=earlier.job_dir,
                    memory_mb=earlier.memory_mb,
                    cpus=earlier.cpus,
                    timeout_s=earlier.timeout_s,
                )
                update_attempt(
                    self.database,
                    run_id=run_id,
                    attempt=earlier.attempt,
                    outcome="taken over",
                    reason=f"its processor stopped; attempt {attempt} follows job {job_id}",
                )
                return Submitted(job_id, Path(earlier.job_dir))
        name = f"autoreduce-{run_id}-{attempt}-{uuid.uuid4().hex[:6]}"
        job_dir = job.work_dir.parent / job.work_dir.name.replace(".tmp-", ".slurm-", 1)
        (job_dir / OUT_DIR).mkdir(parents=True)
        (job_dir / JOB_FILE).write_text(json.dumps(job_document(job)), encoding="utf-8")
        # 1st commit: whoever takes the run over can find the job by this name from now on
        update_attempt(
            self.database, run_id=run_id, attempt=attempt, slurm_job_name=name, job_dir=str(job_dir)
        )
        job_id = _command(*sbatch_argv(self.settings, config, job, name, job_dir)).strip()
        job_id = job_id.split(";", 1)[0]
        update_attempt(self.database, run_id=run_id, attempt=attempt, slurm_job_id=job_id)
        logger.info("run id %s: submitted to Slurm as job %s", run_id, job_id)
        return Submitted(job_id, job_dir)

    def show(self, run_id: int, attempt: int, job_id: str, state: str) -> None:
        """The run's message says where its job is (conditional on this attempt holding it)."""
        message = (PENDING_MESSAGE if state == "PENDING" else RUNNING_MESSAGE).format(job_id)
        try:
            self._show_message(run_id, attempt, message)
            update_attempt(self.database, run_id=run_id, attempt=attempt, slurm_state=state)
        except Exception as error:  # only what is shown: the job is followed all the same
            logger.warning("run id %s: cannot show %r: %s", run_id, message, error)

    def _show_message(self, run_id: int, attempt: int, message: str) -> None:
        with self.database.session() as session:
            show_on_held(session, run_id, attempt, message)

    def verdict(self, job_id: str, job_dir: Path, job: ReductionJob, state: JobState) -> Outcome:
        """The job's own verdict if it wrote one, else what Slurm's final state means."""
        verdict = job_dir / VERDICT_FILE
        if verdict.is_file():
            return _outcome(verdict.read_bytes(), 0)
        name = state.state
        if name == "OUT_OF_MEMORY":
            return Outcome(
                ok=False,
                reason=f"Slurm job {job_id} ran out of memory (OUT_OF_MEMORY at "
                f"{job.memory_mb} MB for the reduction)",
                category=ErrorCategory.MEMORY.value,
            )
        if name in ("TIMEOUT", "DEADLINE"):
            return Outcome(
                ok=False,
                reason=f"Slurm job {job_id} exceeded its {job.timeout_s:g} s time limit ({name})",
                category=ErrorCategory.TIMEOUT.value,
            )
        if name in RETRIED or name == UNKNOWN:
            what = "is no longer known to Slurm" if name == UNKNOWN else f"ended {name}"
            return _infrastructure(f"Slurm job {job_id} {what} without a verdict", retryable=True)
        if name == "CANCELLED":
            return _infrastructure(f"Slurm job {job_id} was cancelled outside autoreduce")
        outcome = _outcome(b"", None)
        outcome.reason = (
            f"Slurm job {job_id} ended {name} (exit {state.exit_code or '?'}) without a verdict"
        )
        return outcome

    def collect(self, job_dir: Path, work_dir: Path) -> None:
        """What the job wrote becomes the attempt's work directory; the job directory goes."""
        out = job_dir / OUT_DIR
        shutil.rmtree(work_dir, ignore_errors=True)
        if out.is_dir():
            os.replace(out, work_dir)
        else:
            work_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(job_dir, ignore_errors=True)


def _infrastructure(reason: str, *, retryable: bool = False) -> Outcome:
    return Outcome(
        ok=False,
        reason=reason,
        retryable=retryable,
        category=ErrorCategory.INFRASTRUCTURE.value,
    )
