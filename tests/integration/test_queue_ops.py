"""Operator tools against the real API, SQLite and MariaDB, the SQL queue and real processors:
``autoreduce queue status``, ``queue requeue-stuck`` (``runs requeue --stuck``), ``processors``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce.cli import main
from autoreduce.cli.queue_ops import requeue
from autoreduce.db import Database
from autoreduce.db.models import (
    AuditEvent,
    OutboxMessage,
    ProcessorHeartbeat,
    ReductionRun,
    RunStatus,
    utcnow,
)
from autoreduce.messages import PENDING_QUEUE
from autoreduce.plugin_manager import installed_plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor.heartbeat import Heartbeat
from queue_processor.worker import QueueProcessor
from tests.api_client import RUNS, run_body
from tests.conftest import approve_builtin_plugins
from tests.polling import wait_for


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """GEM and WISH (``noop``); heartbeats fast enough that a drain is seen at once."""
    return make_settings(
        GEM="noop",
        WISH="noop",
        BROKEN="noop",  # the shared fixtures write these instruments' data files too
        BADVARS="noop",
        database_url=database_url,
        public_read=True,
        heartbeat_interval_s=0.1,
        shutdown_grace_s=0,
    )


@pytest.fixture
def queue(db: Database, monkeypatch: pytest.MonkeyPatch) -> SqlTransport:
    """The SQL queue the API publishes to; the CLI is pointed at the same database."""
    monkeypatch.setenv("AUTOREDUCE_DATABASE_URL", db.url)
    monkeypatch.setenv("AUTOREDUCE_BROKER_URL", "sql://")
    return SqlTransport(db.url, consumer="test", database=db)


@pytest.fixture
def submit(app_client: TestClient, auth: Callable[..., dict[str, str]]) -> Callable[..., int]:
    detector = auth("detector")

    def submit_run(run_number: int, instrument: str = "GEM", **variables: Any) -> int:
        body = run_body(run_number, instrument)
        response = app_client.post(RUNS, json=body, headers=detector)
        assert response.status_code == 201, response.text
        run_id: int = response.json()["id"]
        if variables:  # the plugin's defaults are what a detected run gets; tests may change them
            with app_client.app.state.api.database.session() as session:  # type: ignore[attr-defined]
                run = session.get(ReductionRun, run_id)
                assert run is not None
                run.variables = {**run.variables, **variables}
        return run_id

    return submit_run


@pytest.fixture
def relay_once(app_client: TestClient) -> Callable[[], int]:
    return app_client.app.state.api.relay.relay_once  # type: ignore[attr-defined,no-any-return]


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def age_runs(db: Database, minutes: float) -> None:
    """Make every Queued run look queued ``minutes`` ago (the sweep only looks at old runs)."""
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.status == RunStatus.QUEUED)
            .values(queued_at=utcnow() - timedelta(minutes=minutes))
        )


def statuses(db: Database) -> dict[int, tuple[str, int]]:
    with db.session() as session:
        rows = session.execute(select(ReductionRun.id, ReductionRun.status, ReductionRun.attempts))
        return {run_id: (status, attempts) for run_id, status, attempts in rows}


@pytest.fixture
def processor(settings: Settings, db: Database) -> QueueProcessor:
    approve_builtin_plugins(db)  # it reduces with the installed plugins, which need approval
    transport = SqlTransport(db.url, consumer="p1", database=db)
    return QueueProcessor(
        settings, database=db, transport=transport, plugins=installed_plugins(), processor_id="p1"
    )


@pytest.fixture
def serving(processor: QueueProcessor) -> Iterator[QueueProcessor]:
    """``processor`` serving the queue in a thread until the test ends."""
    thread = threading.Thread(target=processor.serve, name="processor-under-test", daemon=True)
    thread.start()
    yield processor
    processor.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


# --- requeue --stuck ---------------------------------------------------------------------------
def test_requeue_after_the_queue_was_purged_completes_every_run_once(
    submit: Callable[..., int],
    relay_once: Callable[[], int],
    queue: SqlTransport,
    db: Database,
    processor: QueueProcessor,
) -> None:
    run_ids = [submit(n) for n in (1, 2, 3)]
    assert relay_once() == 3
    assert queue.purge(PENDING_QUEUE) == 3  # behind the system's back: the broker lost them
    age_runs(db, 30)

    report = cli_json("queue", "requeue-stuck", "--older-than", "10")
    again = cli_json("queue", "requeue-stuck", "--older-than", "10")

    assert {run["run_id"]: run["action"] for run in report["runs"]} == dict.fromkeys(
        run_ids, "republished"
    )
    assert [run["action"] for run in again["runs"]] == ["on-broker"] * 3
    assert queue.depth(PENDING_QUEUE) == 3  # one message each, never a second
    while processor.process_next(wait_s=0.5):
        pass
    assert statuses(db) == dict.fromkeys(run_ids, (RunStatus.COMPLETED, 1))
    assert queue.depth(PENDING_QUEUE) == 0
    with db.session() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "run.requeue")
        ).all()
    assert len(actions) == 3


def test_a_message_the_outbox_never_delivered_is_published_once_and_marked_sent(
    submit: Callable[..., int], relay_once: Callable[[], int], queue: SqlTransport, db: Database
) -> None:
    run_id = submit(4)  # recorded with its outbox row; no relay ran
    age_runs(db, 30)

    report = cli_json("queue", "requeue-stuck")

    assert [(run["run_id"], run["action"]) for run in report["runs"]] == [
        (run_id, "published-from-outbox")
    ]
    [message] = queue.browse(PENDING_QUEUE)
    assert json.loads(message.body)["run_id"] == run_id
    assert message.headers["x-requeued"] == "stuck"
    assert relay_once() == 0  # the row is marked sent: the relay does not send it again
    with db.session() as session:
        assert session.scalar(select(OutboxMessage.sent_at)) is not None


def test_dry_run_young_runs_and_paused_instruments_publish_nothing(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    submit: Callable[..., int],
    relay_once: Callable[[], int],
    queue: SqlTransport,
    db: Database,
) -> None:
    submit(5)
    submit(6, "WISH")
    relay_once()
    queue.purge(PENDING_QUEUE)
    young = cli_json("queue", "requeue-stuck", "--older-than", "10")
    app_client.patch("/api/v1/instruments/WISH", json={"paused": True}, headers=auth("admin"))
    age_runs(db, 30)

    dry = cli_json("queue", "requeue-stuck", "--dry-run")

    assert young["runs"] == []
    assert [(run["run"], run["action"]) for run in dry["runs"]] == [("GEM 5 v0", "republished")]
    assert queue.browse(PENDING_QUEUE) == []


def test_the_runs_group_command_asks_for_a_selection() -> None:
    result = CliRunner().invoke(requeue, [])

    assert result.exit_code == 2 and "--stuck" in result.output


# --- queue status ------------------------------------------------------------------------------
def test_status_json_counts_the_queues_the_outbox_and_held_rows(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    submit: Callable[..., int],
    relay_once: Callable[[], int],
    queue: SqlTransport,
) -> None:
    submit(7)
    submit(8)
    relay_once()
    submit(9)  # not relayed yet
    app_client.patch("/api/v1/instruments/WISH", json={"paused": True}, headers=auth("admin"))
    submit(10, "WISH")  # held with its instrument
    delivery = queue.receive(PENDING_QUEUE, timeout_s=1)
    assert delivery is not None
    queue.dead_letter(delivery, "a reason")

    status = cli_json("queue", "status")

    pending, dlq = status["queues"]
    assert (pending["messages"], pending["exact"], dlq["messages"]) == (1, True, 1)
    assert status["outbox"]["unsent"] == 1 and status["outbox"]["oldest_unsent_at"]
    assert status["outbox"]["held"] == [
        {
            "instrument": "WISH",
            "messages": 1,
            "reason": "instrument WISH is paused; sent when it resumes",
        }
    ]
    assert status["runs"] == {"queued": 4, "held": 1, "processing": 0}
    assert status["broker"] == "sql://" and status["processors"] == []


def test_status_on_an_unreachable_broker_says_why_depths_are_unknown(
    queue: SqlTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREDUCE_BROKER_URL", "stomp://guest:secret-pw@127.0.0.1:9")
    monkeypatch.setenv("AUTOREDUCE_STOMP_RECEIPT_TIMEOUT_S", "1")

    result = cli("queue", "status", "--json")

    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert [q["messages"] for q in status["queues"]] == [None, None]
    assert all("unreachable" in q["note"] for q in status["queues"])
    assert "secret-pw" not in result.output


# --- processors drain --------------------------------------------------------------------------
def test_a_drained_processor_finishes_its_run_then_takes_no_new_ones_until_resumed(
    submit: Callable[..., int],
    relay_once: Callable[[], int],
    queue: SqlTransport,
    db: Database,
    serving: QueueProcessor,
) -> None:
    first = submit(11, sleep_s=1.0)
    relay_once()
    wait_for(lambda: statuses(db)[first][0] == RunStatus.PROCESSING, timeout_s=30)

    drained = cli("processors", "drain", "p1")
    second = submit(12)
    relay_once()

    assert drained.exit_code == 0 and "asked p1 to drain" in drained.stdout
    wait_for(lambda: processor_state("p1") == "drained", timeout_s=30)
    assert statuses(db)[first] == (RunStatus.COMPLETED, 1)
    assert statuses(db)[second] == (RunStatus.QUEUED, 0)
    assert len(queue.browse(PENDING_QUEUE)) == 1

    resumed = cli("processors", "resume", "p1")

    assert resumed.exit_code == 0 and "takes runs again" in resumed.stdout
    wait_for(lambda: statuses(db)[second][0] == RunStatus.COMPLETED, timeout_s=30)
    with db.session() as session:
        trail = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target == "p1").order_by(AuditEvent.id)
        ).all()
    assert trail == ["processor.drain", "processor.resume"]


def processor_state(processor_id: str) -> str:
    listed = cli_json("processors", "list")
    return str(next(p["state"] for p in listed if p["id"] == processor_id))


def test_a_processor_drained_while_idle_releases_what_it_received_untouched(
    submit: Callable[..., int],
    relay_once: Callable[[], int],
    queue: SqlTransport,
    db: Database,
    processor: QueueProcessor,
) -> None:
    processor.heartbeat.start()
    cli("processors", "drain", "p1")
    run_id = submit(13)
    relay_once()

    assert processor.process_next(wait_s=2)  # received, saw the drain, gave it back

    assert statuses(db)[run_id] == (RunStatus.QUEUED, 0)
    [message] = queue.browse(PENDING_QUEUE)
    assert json.loads(message.body)["run_id"] == run_id
    processor.heartbeat.stop()


def test_draining_an_unknown_processor_is_one_line_and_exit_1(queue: SqlTransport) -> None:
    result = CliRunner().invoke(main, ["processors", "drain", "nobody"])

    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: no processor 'nobody' (see `autoreduce processors list`)"
    )


def test_a_restarted_processor_forgets_an_earlier_drain(queue: SqlTransport, db: Database) -> None:
    first_life = Heartbeat(db, queue, "p1", interval_s=0.1)
    first_life.start()
    cli("processors", "drain", "p1")
    first_life.stop()

    second_life = Heartbeat(db, queue, "p1", interval_s=0.1)
    second_life.start()  # started again by its operator

    with db.session() as session:
        row = session.get(ProcessorHeartbeat, "p1")
        assert row is not None and row.drain_requested_at is None
    assert not second_life.draining
    second_life.stop()
