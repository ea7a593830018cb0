"""Cancelling through the API while a real processor reduces in real forked children.

The API and the processor share one database (SQLite, then MariaDB) and the SQL queue. WISH's
runs sleep 30 s (its ``sleep_s`` default) within a 120 s limit; GEM's finish at once.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.db.models import QueueMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.plugin import PROJECT
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from plugins import noop
from queue_processor.worker import QueueProcessor
from tests.api_client import RUNS, data_file, reaches, run_body, version
from tests.conftest import instrument_config
from tests.polling import wait_for

Auth = Callable[..., dict[str, str]]
HEARTBEAT_S = 0.2


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """GEM reduces at once, WISH sleeps 30 s; the processor beats every 0.2 s."""
    return make_settings(
        GEM=instrument_config("noop", timeout_s=120),
        WISH=instrument_config("noop", timeout_s=120, variables={"sleep_s": 30.0}),
        database_url=database_url,
        public_read=True,
        heartbeat_interval_s=HEARTBEAT_S,
        shutdown_grace_s=0,
        retry_delay_s=0,
    )


@pytest.fixture
def data_files(settings: Settings) -> None:
    for instrument in ("GEM", "WISH"):
        for run_number in range(1, 21):
            data_file(settings, instrument, run_number)


@pytest.fixture
def plugins() -> Plugins:
    """The real ``noop`` plugin, for the API (its variables) and the processor (its reduce)."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(noop, name="noop")
    return Plugins(manager)


@pytest.fixture
def processor(settings: Settings, db: Database, plugins: Plugins) -> QueueProcessor:
    transport = SqlTransport(db.url, consumer="p1", database=db)
    return QueueProcessor(
        settings, database=db, transport=transport, plugins=plugins, processor_id="p1"
    )


@pytest.fixture
def serving(processor: QueueProcessor) -> Iterator[QueueProcessor]:
    """The processor consuming on a thread of its own, heartbeat included."""
    thread = threading.Thread(target=processor.serve, name="processor")
    thread.start()
    yield processor
    processor.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.fixture
def submit(app_client: TestClient, auth: Auth) -> Callable[..., dict[str, Any]]:
    """Post a detected run as the detector does and relay its message to the queue."""
    headers = auth("detector")

    def submit_run(run_number: int, instrument: str) -> dict[str, Any]:
        response = app_client.post(RUNS, json=run_body(run_number, instrument), headers=headers)
        assert response.status_code == 201
        app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]
        item: dict[str, Any] = response.json()
        return item

    return submit_run


def pending(db: Database) -> list[QueueMessage]:
    with db.session() as session:
        query = select(QueueMessage).where(QueueMessage.queue.in_([PENDING_QUEUE]))
        return list(session.scalars(query))


def group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def output_dir(settings: Settings, instrument: str, run_number: int) -> Path:
    return settings.output_dir(instrument, run_number, 0, "")


def test_a_processing_run_is_stopped_cancelled_and_the_next_run_reduced(
    app_client: TestClient,
    auth: Auth,
    db: Database,
    settings: Settings,
    serving: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    submit(1, "WISH")
    reaches(app_client, "WISH", 1, "Processing")
    child_pid = wait_for(lambda: serving.launcher.running_pid, timeout_s=10)

    answer = app_client.post(
        f"{RUNS}/WISH/1/versions/0/cancel",
        json={"reason": "wrong sample"},
        headers=auth("scientist", "WISH"),
    )
    assert answer.status_code == 202

    cancelled = reaches(app_client, "WISH", 1, "Cancelled")  # well before its 30 s sleep ends
    assert re.fullmatch(r"cancelled by scientist-1 at \S+Z: wrong sample", cancelled["message"])
    assert (cancelled["cancel_requested_by"], cancelled["attempts"]) == ("scientist-1", 1)
    assert cancelled["outputs"] == []
    assert not os.path.exists(f"/proc/{child_pid}") and group_is_empty(child_pid)
    run_dir = output_dir(settings, "WISH", 1).parent
    assert not run_dir.exists() or list(run_dir.iterdir()) == []
    submit(2, "GEM")
    reaches(app_client, "GEM", 2, "Completed")
    assert (output_dir(settings, "GEM", 2) / "noop.txt").read_text().strip() == "2"
    wait_for(lambda: pending(db) == [], timeout_s=10)


def test_a_run_cancelled_while_queued_is_acked_and_dropped_when_delivered(
    app_client: TestClient,
    auth: Auth,
    db: Database,
    settings: Settings,
    processor: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    submit(3, "GEM")
    answer = app_client.post(
        f"{RUNS}/GEM/3/versions/0/cancel", json={"reason": "not needed"}, headers=auth("admin")
    )
    assert answer.status_code == 200

    assert processor.process_next(wait_s=5)

    dropped = version(app_client, "GEM", 3)
    assert (dropped["status"], dropped["attempts"], dropped["started_at"]) == (
        "Cancelled",
        0,
        None,
    )
    assert dropped["message"] == answer.json()["message"]
    assert not output_dir(settings, "GEM", 3).exists()
    assert pending(db) == []


def test_a_cancel_requested_of_a_dead_processors_run_is_honoured_on_redelivery(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    processor: QueueProcessor,
    submit: Callable[..., dict[str, Any]],
) -> None:
    run = submit(4, "GEM")
    with db.session() as session:  # taken by a processor that died after the request came
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.id == run["id"])
            .values(
                status=RunStatus.PROCESSING.value,
                attempts=1,
                processor="dead-one",
                cancel_requested_at=utcnow(),
                cancel_requested_by="admin-9",
                cancel_reason="stuck",
            )
        )

    assert processor.process_next(wait_s=5)

    cancelled = version(app_client, "GEM", 4)
    assert cancelled["status"] == "Cancelled" and cancelled["attempts"] == 1
    assert re.fullmatch(r"cancelled by admin-9 at \S+Z: stuck", cancelled["message"])
    assert not output_dir(settings, "GEM", 4).exists()
    assert pending(db) == []
    with db.session() as session:
        dead = session.scalars(select(QueueMessage).where(QueueMessage.queue == DEAD_LETTER_QUEUE))
        assert list(dead) == []
