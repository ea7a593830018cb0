"""Live logs end to end: a real processor reduces in a forked child while the API, served by
uvicorn on a free port, streams the lines it ships through the database (no shared files)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunLogLine, RunStatus
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor.isolation import LOG_NAME
from queue_processor.log_shipper import TRUNCATED_MARKER
from queue_processor.worker import QueueProcessor
from rest_api import create_app
from tests.integration.test_processor import _record_and_send, instrument, reload
from tests.polling import wait_for
from tests.sse import Event, events

LINES = 30
SLOW_LOG = {"sleep_s": 3.0, "log_lines": LINES}  # about 3 s of numbered lines


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    return make_settings(
        GEM={**instrument(), "timeout_s": 60},
        database_url=database.url,
        public_read=True,
        shutdown_grace_s=0,
    )


@pytest.fixture
def transport(database: Database) -> SqlTransport:
    return SqlTransport(database.url, consumer="test-processor", database=database)


@pytest.fixture
def processor(settings: Settings, database: Database, transport: SqlTransport) -> QueueProcessor:
    return QueueProcessor(settings, database=database, transport=transport, processor_id="p1")


@pytest.fixture
def submit(
    settings: Settings, database: Database, transport: SqlTransport
) -> Callable[..., ReductionRun]:
    def submit_run(run_number: int, **variables: object) -> ReductionRun:
        return _record_and_send(settings, database, transport, run_number, **variables)

    return submit_run


@pytest.fixture
def api_url(settings: Settings, database: Database) -> Iterator[str]:
    """The API served by uvicorn in a thread on a free port of 127.0.0.1; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, database=database, relay=False), log_level="warning")
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout_s=30, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture
def reducing(processor: QueueProcessor) -> Iterator[Callable[[], None]]:
    """``start()`` reduces the next message in a thread; the thread is joined afterwards."""
    threads: list[threading.Thread] = []

    def start() -> None:
        thread = threading.Thread(target=processor.process_next, args=(30,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=60)
    processor.launcher.close()


def status_of(database: Database, run: ReductionRun) -> str:
    with database.read_session() as session:
        return str(session.scalar(select(ReductionRun.status).where(ReductionRun.id == run.id)))


def follow(
    url: str, *, last_event_id: str | None = None, on_line: Callable[[Event], bool] | None = None
) -> list[Event]:
    """The events of one stream, until it ends or ``on_line`` answers False (disconnect)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    received: list[Event] = []
    with httpx.stream(
        "GET", url, params={"follow": "true"}, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in events(response.iter_lines()):
            received.append(event)
            if event.type == "message" and on_line is not None and not on_line(event):
                break
    return received


def numbered(lines: list[Event]) -> list[str]:
    return [event.data.split("noop: ", 1)[1] for event in lines if "noop: line " in event.data]


def test_a_followed_run_streams_its_lines_while_processing_then_ends_completed(
    api_url: str,
    submit: Callable[..., ReductionRun],
    reducing: Callable[[], None],
    database: Database,
) -> None:
    run = submit(501, **SLOW_LOG)
    reducing()
    status_at_first_line: list[str] = []

    def note_status(_event: Event) -> bool:
        if not status_at_first_line:
            status_at_first_line.append(status_of(database, run))
        return True

    received = follow(f"{api_url}/api/v1/runs/GEM/501/versions/0/log", on_line=note_status)

    assert status_at_first_line == [RunStatus.PROCESSING]
    lines, end = received[:-1], received[-1]
    assert [event.id for event in lines] == [str(n) for n in range(1, len(lines) + 1)]
    assert numbered(lines) == [f"line {n} of {LINES}" for n in range(1, LINES + 1)]
    assert (end.type, json.loads(end.data)["status"]) == ("end", "Completed")
    log_file = Path(reload(database, run).output_dir) / LOG_NAME
    assert [event.data for event in lines] == log_file.read_text().splitlines()


def test_a_follower_that_reconnects_with_last_event_id_gets_no_line_twice(
    api_url: str, submit: Callable[..., ReductionRun], reducing: Callable[[], None]
) -> None:
    submit(502, **SLOW_LOG)
    reducing()
    url = f"{api_url}/api/v1/runs/GEM/502/versions/0/log"

    first = follow(url, on_line=lambda event: event.id != "5")
    rest = follow(url, last_event_id=first[-1].id)

    lines = first + rest[:-1]
    assert [event.id for event in lines] == [str(n) for n in range(1, len(lines) + 1)]
    assert numbered(lines) == [f"line {n} of {LINES}" for n in range(1, LINES + 1)]
    assert rest[-1].type == "end"


def test_a_long_log_is_shipped_up_to_its_limit_then_one_marker_line(
    settings: Settings,
    database: Database,
    transport: SqlTransport,
    submit: Callable[..., ReductionRun],
) -> None:
    limited = settings.model_copy(update={"max_log_lines": 10})
    processor = QueueProcessor(limited, database=database, transport=transport)
    run = submit(503, sleep_s=0.0, log_lines=50)

    assert processor.process_next(wait_s=10)
    processor.launcher.close()

    with database.read_session() as session:
        shipped = session.scalars(
            select(RunLogLine.text).where(RunLogLine.run_id == run.id).order_by(RunLogLine.seq)
        ).all()
    assert len(shipped) == 10
    assert shipped[-1] == TRUNCATED_MARKER
    file_lines = (Path(reload(database, run).output_dir) / LOG_NAME).read_text().splitlines()
    assert shipped[:-1] == file_lines[:9]
    assert len(file_lines) > 50  # the file itself is whole
