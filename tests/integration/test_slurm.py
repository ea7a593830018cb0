"""Reductions on a real one-node Slurm (``scripts/services.sh start slurm``).

The API and the processors share one database (SQLite, then MariaDB) and the SQL queue. The
instrument HEAVY reduces with the real ``noop`` plugin as an ``sbatch`` job: its job, its state,
its memory and its attempts are Slurm's and the database's, never simulated.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import (
    ProcessorHeartbeat,
    ReductionRun,
    RunAttempt,
    RunLogLine,
    RunStep,
    utcnow,
)
from autoreduce.messages import parse_run_message
from autoreduce.outbox import outbox_message
from autoreduce.plugin_manager import Plugins, installed_plugins
from autoreduce.settings import Settings
from queue_processor.claim import Decision, claim_run
from queue_processor.log_shipper import LogShipper
from queue_processor.slurm import _command, cancel, job_state
from queue_processor.slurm_follower import Job
from queue_processor.worker import QueueProcessor
from tests.api_client import RUNS, data_file, reaches, run_body, version
from tests.conftest import approve_builtin_plugins, instrument_config
from tests.integration.conftest import start_service
from tests.polling import wait_for

Auth = Callable[..., dict[str, str]]
SLURM_CONF = "/var/tmp/autoreduce-services/slurm/slurm.conf"


@pytest.fixture(scope="session")
def slurm() -> None:
    start_service("slurm")


@pytest.fixture(autouse=True)
def _slurm_clients(slurm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client commands (sbatch, scontrol, scancel) find the project's cluster."""
    monkeypatch.setenv(
        "SLURM_CONF",
        os.path.join(
            os.environ.get("AUTOREDUCE_SERVICES_DIR", "/var/tmp/autoreduce-services"),
            "slurm",
            "slurm.conf",
        ),
    )


MIXED = """\
name: mixed
steps:
  calibrate:
    command: "echo calibrated > calibration.txt"
  fit:
    executor: slurm
    cpus: 1
    command: >-
      cat $AUTOREDUCE_INPUT_CALIBRATE/calibration.txt > fit.txt &&
      echo "$SLURM_JOB_ID" > job.txt
    rely: [calibrate]
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, tmp_path: Path) -> Settings:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "mixed.yaml").write_text(MIXED)
    heavy = {"timeout_s": 300, "executor": "slurm", "memory_mb": 128, "max_memory_mb": 1024}
    return make_settings(
        HEAVY=instrument_config("noop", **heavy),
        LATE=instrument_config("noop", **heavy, sbatch_options=["--begin=now+2"]),
        SLOW=instrument_config("noop", **heavy, variables={"sleep_s": 120.0}),
        SLEEPY=instrument_config("noop", **heavy, variables={"sleep_s": 8.0}),
        LIMITED=instrument_config(
            "noop", **{**heavy, "timeout_s": 1}, variables={"sleep_s": 600.0}
        ),
        HOG=instrument_config("noop", **heavy, variables={"hold_mb": 160}),
        LOCALHOG=instrument_config(
            "noop", memory_mb=64, max_memory_mb=256, variables={"hold_mb": 96, "sleep_s": 1.0}
        ),
        MIXED=instrument_config("", pipeline="mixed", timeout_s=300),
        pipelines_dir=pipelines,
        jobs={"plugins": ["noop"], "executor": "slurm", "memory_mb": 128, "timeout_s": 300},
        database_url=database_url,
        public_read=True,
        heartbeat_interval_s=0.2,
        visibility_timeout_s=2.0,
        shutdown_grace_s=0,
        retry_delay_s=0,
        slurm_poll_s=0.2,
        slurm_overhead_mb=0,
    )


@pytest.fixture
def plugins() -> Plugins:
    """The installed plugins (the Slurm job loads them the same way)."""
    return installed_plugins()


@pytest.fixture
def data_files(settings: Settings) -> None:
    for instrument in ("HEAVY", "LATE", "SLOW", "SLEEPY", "HOG", "LOCALHOG", "MIXED", "LIMITED"):
        for run_number in range(1, 6):
            data_file(settings, instrument, run_number)


@pytest.fixture
def approved(db: Database) -> None:
    approve_builtin_plugins(db)


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings, db: Database, processor_id: str
) -> Iterator[QueueProcessor]:
    """A processor consuming on a thread of its own, stopped (and joined) on the way out."""
    processor = QueueProcessor(settings, database=db, processor_id=processor_id)
    thread = threading.Thread(target=processor.serve, name=processor_id)
    thread.start()
    try:
        yield processor
    finally:
        processor.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.fixture
def relaying(app_client: TestClient) -> Iterator[None]:
    """The API's outbox relay on its thread, as in production (a followed job's retry is
    queued through the outbox: its first message was acked at the hand-off)."""
    stop = threading.Event()
    thread = app_client.app.state.api.relay.start(stop)  # type: ignore[attr-defined]
    yield
    stop.set()
    thread.join(timeout=30)


@pytest.fixture
def serving(
    settings: Settings, db: Database, approved: None, relaying: None
) -> Iterator[QueueProcessor]:
    with serve_in_thread(settings, db, "p1") as processor:
        yield processor


@pytest.fixture
def submit(app_client: TestClient, auth: Auth) -> Callable[..., dict[str, Any]]:
    headers = auth("detector")

    def submit_run(instrument: str, run_number: int) -> dict[str, Any]:
        response = app_client.post(RUNS, json=run_body(run_number, instrument), headers=headers)
        assert response.status_code == 201, response.text
        app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]
        item: dict[str, Any] = response.json()
        return item

    return submit_run


def attempts(db: Database, run_id: int) -> list[RunAttempt]:
    with db.read_session() as session:
        rows = list(
            session.scalars(
                select(RunAttempt).where(RunAttempt.run_id == run_id).order_by(RunAttempt.attempt)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def running_in_slurm(
    app_client: TestClient, db: Database, submit: Callable[..., dict[str, Any]], *run: Any
) -> tuple[dict[str, Any], RunAttempt]:
    """Submit ``(instrument, number)``; the run and its one attempt once its job runs."""
    posted = submit(*run)
    wait_for(lambda: version(app_client, *run)["message"].startswith("running in Slurm"))
    [row] = attempts(db, posted["id"])
    return posted, row


def test_a_run_is_reduced_as_a_slurm_job_shown_pending_then_completed(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run = submit("LATE", 1)  # --begin=now+4: Slurm holds the job pending a few seconds

    pending = wait_for(
        lambda: (
            (item := version(app_client, "LATE", 1))["message"].startswith("pending in Slurm")
            and item
        ),
        timeout_s=30,
    )
    assert pending["status"] == "Processing"
    [row] = attempts(db, run["id"])
    assert pending["message"] == f"pending in Slurm as job {row.slurm_job_id}"
    assert row.slurm_job_id and row.executor == "slurm"

    done = reaches(app_client, "LATE", 1, "Completed", timeout_s=90)
    output_dir = settings.output_dir("LATE", 1, 0, "")
    assert (output_dir / "noop.txt").read_text().strip() == "1"
    log = (output_dir / "reduction.log").read_text()
    assert "reducing LATE run 1 v0 with plugin noop" in log
    assert {o["name"] for o in done["outputs"]} >= {"noop.txt", "reduction.log"}
    [shown] = done["attempt_history"]
    assert (shown["executor"], shown["slurm_job_id"], shown["memory_mb"], shown["cpus"]) == (
        "slurm",
        row.slurm_job_id,
        128,
        1,
    )
    assert (shown["slurm_state"], shown["outcome"]) == ("COMPLETED", "completed")
    assert job_state(row.slurm_job_id).state == "COMPLETED"
    assert not [p for p in output_dir.parent.iterdir() if ".slurm-" in p.name]
    page = app_client.get("/runs/LATE/1").text
    assert f"slurm job {row.slurm_job_id} (COMPLETED)" in page


def test_cancelling_a_run_scancels_its_job(
    app_client: TestClient,
    auth: Auth,
    db: Database,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    _, row = running_in_slurm(app_client, db, submit, "SLOW", 2)

    answer = app_client.post(
        f"{RUNS}/SLOW/2/versions/0/cancel", json={"reason": "wrong sample"}, headers=auth("admin")
    )
    assert answer.status_code == 202

    cancelled = reaches(app_client, "SLOW", 2, "Cancelled", timeout_s=60)
    assert "wrong sample" in cancelled["message"]
    assert job_state(row.slurm_job_id).state == "CANCELLED"


def test_a_run_over_its_memory_is_retried_with_double_memory_and_completes(
    app_client: TestClient,
    db: Database,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run = submit("HOG", 3)  # holds 160 MB: more than 128 MB

    done = reaches(app_client, "HOG", 3, "Completed", timeout_s=120)

    rows = attempts(db, run["id"])
    memories = [row.memory_mb for row in rows]
    assert memories[:2] == [128, 256] and all(b == 2 * a for a, b in itertools.pairwise(memories))
    assert [row.outcome for row in rows] == ["retried"] * (len(rows) - 1) + ["completed"]
    # whichever limit bites first: the job's own address-space cap (its verdict written, the job
    # COMPLETED) or the job's cgroup (Slurm's OUT_OF_MEMORY); either is a memory failure retried
    assert rows[0].slurm_state in ("OUT_OF_MEMORY", "COMPLETED")
    assert "retrying with 256 MB" in rows[0].reason
    assert len({row.slurm_job_id for row in rows}) == len(rows)  # a job of its own each
    assert done["attempts"] == len(rows)
    assert [item["memory_mb"] for item in done["attempt_history"]] == memories


def test_a_local_run_over_its_memory_limit_is_retried_with_double_memory(
    app_client: TestClient,
    db: Database,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run = submit("LOCALHOG", 5)  # holds 96 MB: more than 64 MB

    done = reaches(app_client, "LOCALHOG", 5, "Completed", timeout_s=60)

    rows = attempts(db, run["id"])
    assert [(row.executor, row.memory_mb, row.outcome) for row in rows] == [
        ("local", 64, "retried"),
        ("local", 128, "completed"),
    ]
    assert rows[0].reason == ("plugin exceeded its memory limit of 64 MB; retrying with 128 MB")
    assert done["attempts"] == 2 and done["message"] == ""


def _serve_processor(settings_json: str, processor_id: str) -> None:
    """A processor in a process of its own (killed by the test)."""
    settings = Settings.model_validate_json(settings_json)
    QueueProcessor(settings, processor_id=processor_id).serve()


def test_a_processor_killed_while_its_job_runs_the_run_completes_once_submitted_once(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    approved: None,
    submit: Callable[..., dict[str, Any]],
) -> None:
    context = multiprocessing.get_context("spawn")
    doomed = context.Process(
        target=_serve_processor, args=(settings.model_dump_json(), "doomed"), daemon=True
    )
    doomed.start()
    try:
        run = submit("SLEEPY", 4)
        wait_for(
            lambda: version(app_client, "SLEEPY", 4)["message"].startswith("running in Slurm"),
            timeout_s=60,
        )
        [first] = attempts(db, run["id"])
        assert first.processor == "doomed" and first.slurm_job_id
    finally:
        doomed.kill()  # SIGKILL: no goodbye, the message stays unacked
        doomed.join(timeout=30)
    assert job_state(first.slurm_job_id).active  # the job runs on without its processor

    with serve_in_thread(settings, db, "heir"):
        done = reaches(app_client, "SLEEPY", 4, "Completed", timeout_s=90)

    # the job was handed off (its message acked) before the kill: the heir adopted the same
    # attempt and its job rather than taking the run over with a new one
    [row] = attempts(db, run["id"])
    assert (row.processor, row.slurm_job_id, row.outcome) == (
        "heir",
        first.slurm_job_id,
        "completed",
    )
    assert row.handed_off_at is not None
    assert done["attempts"] == 1 and done["processor"] == "heir"
    assert (settings.output_dir("SLEEPY", 4, 0, "") / "noop.txt").read_text().strip() == "4"


def test_one_processor_follows_many_jobs_and_a_redelivered_message_starts_none(
    app_client: TestClient,
    auth: Auth,
    db: Database,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    runs = [submit("SLOW", number) for number in (1, 3, 4)]  # each sleeps 120 s

    def all_followed() -> list[RunAttempt] | None:
        rows = [attempts(db, run["id"]) for run in runs]
        if all(len(r) == 1 and r[0].handed_off_at and r[0].slurm_job_id for r in rows):
            return [r[0] for r in rows]
        return None

    followed = wait_for(all_followed, timeout_s=60)
    # three jobs in Slurm at once, all followed by the one processor, none finished
    assert {row.processor for row in followed} == {"p1"}
    assert len({row.slurm_job_id for row in followed}) == 3
    assert all(job_state(row.slurm_job_id).active for row in followed)
    assert wait_for(lambda: serving.follower.following == 3, timeout_s=30)
    shown = app_client.get("/api/v1/processors", headers=auth("admin")).json()
    assert {item["id"]: item["slurm_jobs"] for item in shown}["p1"] == 3
    assert "following 3 Slurm jobs" in app_client.get("/").text  # the overview page

    # the message of a followed run, delivered again, is dropped: no second attempt or job
    with db.read_session() as session:
        again = parse_run_message(outbox_message(session.get(ReductionRun, runs[0]["id"])).body)
    claim = claim_run(db, again, processor="other", max_attempts=3)
    assert claim.decision is Decision.DROP and "followed" in claim.reason
    assert len(attempts(db, runs[0]["id"])) == 1

    for number in (1, 3, 4):
        answer = app_client.post(
            f"{RUNS}/SLOW/{number}/versions/0/cancel",
            json={"reason": "enough"},
            headers=auth("admin"),
        )
        assert answer.status_code == 202
    for number, row in zip((1, 3, 4), followed, strict=True):
        reaches(app_client, "SLOW", number, "Cancelled", timeout_s=60)
        assert wait_for(lambda row=row: job_state(row.slurm_job_id).state == "CANCELLED")


def test_a_pipeline_step_with_executor_slurm_runs_as_a_slurm_job_on_its_inputs(
    app_client: TestClient,
    settings: Settings,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    submit("MIXED", 1)

    done = reaches(app_client, "MIXED", 1, "Completed", timeout_s=120)

    output_dir = settings.output_dir("MIXED", 1, 0, "")
    assert (output_dir / "fit" / "fit.txt").read_text().strip() == "calibrated"
    slurm_job = (output_dir / "fit" / "job.txt").read_text().strip()
    assert slurm_job.isdigit()  # set only inside a Slurm job
    assert job_state(slurm_job).state == "COMPLETED"
    assert [(step["step"], step["state"]) for step in done["steps"]] == [
        ("calibrate", "Completed"),
        ("fit", "Completed"),
    ]
    assert not [p for p in output_dir.rglob("*") if ".slurm-" in p.name]


def test_a_job_of_an_upload_is_reduced_on_slurm_and_its_staged_inputs_go(
    app_client: TestClient,
    auth: Auth,
    db: Database,
    settings: Settings,
    serving: QueueProcessor,
) -> None:
    scientist = auth("scientist")
    stored = app_client.post(
        "/api/v1/uploads", files={"file": ("sample.dat", b"x" * 100)}, headers=scientist
    )
    assert stored.status_code == 201, stored.text
    created = app_client.post(
        "/api/v1/jobs", json={"plugin": "noop", "inputs": [stored.json()["id"]]}, headers=scientist
    )
    assert created.status_code == 201, created.text
    job = created.json()

    def finished() -> dict[str, Any] | None:
        answer: dict[str, Any] = app_client.get(
            f"/api/v1/jobs/{job['id']}", headers=scientist
        ).json()
        return answer if answer["status"] in ("Completed", "Error") else None

    done = wait_for(finished, timeout_s=120, what="the job to finish")

    assert done["status"] == "Completed", done["message"]
    [row] = attempts(db, job["run"]["id"])
    assert (row.executor, row.outcome, row.memory_mb) == ("slurm", "completed", 128)
    assert job_state(row.slurm_job_id).state == "COMPLETED"
    assert not list((settings.outputs_root / "JOB").rglob(".inputs-*"))  # staged, then dropped


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a minute of Slurm's: once
def test_a_job_past_its_time_limit_ends_timeout_in_slurm_and_error_on_the_run(
    app_client: TestClient,
    db: Database,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run = submit("LIMITED", 1)  # --time=0:01 (Slurm enforces a minute, checked every ~30 s)

    done = reaches(app_client, "LIMITED", 1, "Error", timeout_s=240)

    [row] = attempts(db, run["id"])
    assert (row.slurm_state, row.outcome) == ("TIMEOUT", "timeout")
    assert done["message"] == f"Slurm job {row.slurm_job_id} exceeded its 1 s time limit (TIMEOUT)"
    assert done["error_category"] == "timeout"


def test_a_stopped_processors_jobs_are_adopted_once_and_its_late_finish_is_fenced(
    db: Database,
    settings: Settings,
    approved: None,
    submit: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    """Adoption and the finishing fence in the database alone (no Slurm job needed)."""
    now = utcnow()
    runs = [submit("SLEEPY", number)["id"] for number in (1, 2)]
    with db.session() as session:
        for processor, stopped in (("gone", now), ("heir", None), ("rival", None)):
            session.add(
                ProcessorHeartbeat(
                    id=processor, host="h", pid=1, started_at=now,
                    last_seen_at=now + timedelta(hours=1), stopped_at=stopped,  # beating well
                )
            )  # fmt: skip
        for run_id, finished in zip(runs, (None, now - timedelta(seconds=400)), strict=True):
            session.execute(
                update(ReductionRun)
                .where(ReductionRun.id == run_id)
                .values(status="Processing", attempts=1, processor="gone")
            )
            session.add(
                RunAttempt(
                    run_id=run_id, attempt=1, processor="gone", executor="slurm", memory_mb=128,
                    cpus=1, timeout_s=300, slurm_job_id="999999", job_dir=str(tmp_path),
                    handed_off_at=now, finished_at=finished,
                )
            )  # fmt: skip
    processors = {
        name: QueueProcessor(settings, database=db, processor_id=name)
        for name in ("gone", "heir", "rival")
    }
    try:
        # both: one followed when its processor stopped, one whose recording of its end died
        assert processors["heir"].follower.adopt_orphans() == 2
        assert processors["rival"].follower.adopt_orphans() == 0  # the heir is alive
        rows = [attempts(db, run_id)[0] for run_id in runs]
        assert [(row.processor, row.finished_at) for row in rows] == [("heir", None)] * 2
        with db.read_session() as session:
            assert {session.get(ReductionRun, run_id).processor for run_id in runs} == {"heir"}
        late = Job(runs[0], 1, "999999", tmp_path, 128, 300.0, cancel_asked=False)
        assert not processors["gone"].follower._take_finish(late)  # its own stopped processor
        assert processors["heir"].follower._take_finish(late)
        assert not processors["heir"].follower._take_finish(late)  # once
    finally:
        for processor in processors.values():
            processor.transport.close()


def test_an_adopted_jobs_log_is_shipped_on_without_repeating_a_line(
    db: Database, submit: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    run_id = submit("SLEEPY", 3)["id"]
    log = tmp_path / "reduction.log"
    log.write_text("one\ntwo\nthree\n")
    with LogShipper(db, run_id=run_id, attempt=1, log_path=log, resume=True):
        pass  # the first follower ships what the job wrote so far, then its processor stops
    with log.open("a") as more:
        more.write("four\nfive\n")

    with LogShipper(db, run_id=run_id, attempt=1, log_path=log, resume=True):
        pass  # the adopter reads the file from its start

    with db.read_session() as session:
        shipped = session.execute(
            select(RunLogLine.seq, RunLogLine.text)
            .where(RunLogLine.run_id == run_id)
            .order_by(RunLogLine.seq)
        ).all()
    assert [tuple(row) for row in shipped] == [
        (1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five")
    ]  # fmt: skip


def test_a_step_job_left_running_by_a_dead_processor_is_cancelled_when_the_run_is_retried(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    approved: None,
    submit: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    run_id = submit("MIXED", 2)["id"]
    orphan = _command(
        "sbatch", "--parsable", f"--chdir={tmp_path}", "--output=/dev/null", "--mem=64M",
        "--wrap=exec sleep 600",
    ).strip()  # fmt: skip
    with db.session() as session:  # as the earlier attempt's processor left it when it died
        session.add(
            RunStep(
                run_id=run_id, step="fit", position=1, state="Processing", plugin="command",
                executor="slurm", message=f"running in Slurm as job {orphan}",
            )
        )  # fmt: skip

    try:
        with serve_in_thread(settings, db, "p2"):
            reaches(app_client, "MIXED", 2, "Completed", timeout_s=120)

        assert wait_for(lambda: job_state(orphan).state == "CANCELLED", timeout_s=30)
    finally:
        cancel(orphan)  # a failing test leaves no job holding the node's CPU


def _node() -> str:
    """The one node's name, as Slurm knows it."""
    return _command("sinfo", "--noheader", "--Node", "--format=%N").split()[0]


def _node_idle() -> bool:
    return _command("sinfo", "--noheader", "--Node", "--format=%t").split()[0] == "idle"


@pytest.mark.exclusive  # takes the only node down: every other Slurm job would fail with it
def test_a_job_on_a_failed_node_ends_node_fail_and_the_run_is_retried_and_completes_once(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run, first = running_in_slurm(app_client, db, submit, "SLEEPY", 5)

    node = _node()
    try:
        _command("scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=autoreduce-test")
        assert wait_for(lambda: job_state(first.slurm_job_id).state == "NODE_FAIL", timeout_s=60)
    finally:  # the node comes back (ReturnToService=2); asked again if it has not
        with contextlib.suppress(Exception):
            wait_for(_node_idle, timeout_s=15)
        if not _node_idle():
            _command("scontrol", "update", f"NodeName={node}", "State=RESUME")
        wait_for(_node_idle, timeout_s=60)

    done = reaches(app_client, "SLEEPY", 5, "Completed", timeout_s=120)

    rows = attempts(db, run["id"])
    assert [(row.slurm_state, row.outcome) for row in rows] == [
        ("NODE_FAIL", "retried"),
        ("COMPLETED", "completed"),
    ]
    assert rows[0].slurm_job_id == first.slurm_job_id != rows[1].slurm_job_id
    # Slurm did not put the failed job back in its queue to run the reduction a second time
    shown = dict(
        re.findall(r"(\w+)=(\S*)", _command("scontrol", "show", "job", "-o", first.slurm_job_id))
    )
    assert (shown["JobState"], shown["Restarts"]) == ("NODE_FAIL", "0")
    assert done["attempts"] == 2
    assert (settings.output_dir("SLEEPY", 5, 0, "") / "noop.txt").read_text().strip() == "5"
