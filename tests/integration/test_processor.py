"""The queue processor against a real database and the SQL queue, reducing in real children."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select

from autoreduce.db import Database
from autoreduce.db.models import Instrument, QueueMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE, RunMessage
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor.isolation import LOG_NAME
from queue_processor.worker import QueueProcessor
from tests.polling import wait_for
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    noop = {
        "plugin": "noop",
        "lastruns": "{root}/GEM/lastruns.txt",
        "data": "{root}/GEM/GEM{run_number:08d}.nxs",
        "timeout_s": 2,
        "memory_mb": 256,
    }
    return make_settings(GEM=noop, database_url=database.url, shutdown_grace_s=0, retry_delay_s=0)


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
    """Record a run as the API would and send its message; the data file exists."""

    def submit_run(run_number: int, *, with_data: bool = True, **variables: Any) -> ReductionRun:
        return _record_and_send(
            settings, database, transport, run_number, with_data=with_data, **variables
        )

    return submit_run


def _record_and_send(
    settings: Settings,
    database: Database,
    transport: SqlTransport,
    run_number: int,
    *,
    with_data: bool = True,
    **variables: Any,
) -> ReductionRun:
    """Record a run as the API would and send its message; the data file exists."""
    data_path = Path(settings.data_pattern("GEM", run_number))
    if with_data:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        data_path.write_bytes(b"not really NeXus; noop does not read it")
    with database.session() as session:
        if session.get(Instrument, "GEM") is None:
            session.add(Instrument(name="GEM"))
        run = ReductionRun(
            instrument="GEM",
            run_number=run_number,
            run_version=0,
            status=RunStatus.QUEUED,
            data_path=str(data_path),
            variables={"sleep_s": 0.0, "fault": "none", **variables},
        )
        session.add(run)
        session.flush()
    message = RunMessage(
        run_id=run.id,
        instrument="GEM",
        run_number=run_number,
        run_version=0,
        data_path=str(data_path),
        variables=run.variables,
        submitted_at=utcnow(),
    )
    transport.send(PENDING_QUEUE, message.to_json())
    return run


def reload(database: Database, run: ReductionRun) -> ReductionRun:
    with database.session() as session:
        fresh = session.get(ReductionRun, run.id)
        assert fresh is not None
        fresh.outputs  # noqa: B018 - load the outputs before the session closes
        session.expunge(fresh)
        return fresh


def queue_rows(database: Database, queue: str) -> list[QueueMessage]:
    with database.session() as session:
        return list(session.scalars(select(QueueMessage).where(QueueMessage.queue == queue)))


def test_noop_run_completes_with_its_outputs_in_place_and_the_message_acked(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(101)

    assert processor.process_next(wait_s=5)

    done = reload(database, run)
    assert done.status == RunStatus.COMPLETED
    assert done.attempts == 1 and done.processor == "p1"
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    output_dir = Path(done.output_dir)
    assert (output_dir / "noop.txt").read_text().strip() == "101"
    assert {(o.kind, o.name) for o in done.outputs} == {("data", "noop.txt"), ("log", LOG_NAME)}
    assert not [p for p in output_dir.parent.iterdir() if p.name.startswith(".")]
    assert queue_rows(database, PENDING_QUEUE) == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("raise", "plugin raised RuntimeError: noop was asked to fail"),
        ("hang", "plugin exceeded its 2 s time limit"),
        ("memory", "plugin exceeded its memory limit of 256 MB"),
    ],
)
def test_a_failing_plugin_costs_only_its_own_run_at_once(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    fault: str,
    reason: str,
) -> None:
    bad = submit(201, fault=fault)
    good = submit(202)

    processor.process_next(wait_s=5)
    processor.process_next(wait_s=5)

    failed = reload(database, bad)
    assert (failed.status, failed.message, failed.attempts) == (RunStatus.ERROR, reason, 1)
    assert [o.kind for o in failed.outputs] == ["log"]
    assert reload(database, good).status == RunStatus.COMPLETED
    assert queue_rows(database, PENDING_QUEUE) == []
    assert queue_rows(database, DEAD_LETTER_QUEUE) == []


def reduce_until_final(
    processor: QueueProcessor, database: Database, run: ReductionRun
) -> ReductionRun:
    """Let the processor handle messages until ``run`` reaches a final state."""

    def final() -> ReductionRun | None:
        processor.process_next(wait_s=1)
        current = reload(database, run)
        return current if RunStatus(current.status).is_final else None

    result: ReductionRun = wait_for(final, timeout_s=60, interval_s=0)
    return result


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("segfault", "reduction process died from signal SIGSEGV (segmentation fault)"),
        ("exit", "reduction process exited with status 3 before writing its result"),
    ],
)
def test_a_crashing_plugin_is_retried_up_to_max_attempts_then_dead_lettered(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    fault: str,
    reason: str,
) -> None:
    crashing = submit(211, fault=fault)
    good = submit(212)

    failed = reduce_until_final(processor, database, crashing)

    assert failed.status == RunStatus.ERROR and failed.attempts == 3
    assert failed.message == f"gave up after 3 attempts: {reason}"
    assert [o.kind for o in failed.outputs] == ["log"]
    [dead] = queue_rows(database, DEAD_LETTER_QUEUE)
    assert dead.headers["x-dead-letter-reason"] == failed.message
    assert reduce_until_final(processor, database, good).status == RunStatus.COMPLETED
    assert queue_rows(database, PENDING_QUEUE) == []


def test_the_traceback_of_a_raising_plugin_is_in_the_run_log(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(301, fault="raise")

    processor.process_next(wait_s=5)

    log = (Path(reload(database, run).output_dir) / LOG_NAME).read_text()
    assert "Traceback" in log and "noop was asked to fail" in log


def test_a_missing_data_file_marks_the_run_error_with_the_path(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(401, with_data=False)

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    assert failed.status == RunStatus.ERROR
    assert failed.message == f"data file {run.data_path} not found"


def test_an_invalid_message_is_dead_lettered_with_its_reason(
    processor: QueueProcessor, transport: SqlTransport, database: Database
) -> None:
    transport.send(PENDING_QUEUE, '{"schema": 1, "run_id": "twelve"}')

    processor.process_next(wait_s=5)

    [dead] = queue_rows(database, DEAD_LETTER_QUEUE)
    assert dead.headers["x-dead-letter-reason"].startswith("invalid run message: run_id:")
    assert queue_rows(database, PENDING_QUEUE) == []


def test_a_redelivered_message_of_a_finished_run_is_acked_and_not_reduced_again(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    transport: SqlTransport,
) -> None:
    run = submit(501)
    processor.process_next(wait_s=5)
    first = reload(database, run)
    transport.send(PENDING_QUEUE, _body(run))

    processor.process_next(wait_s=5)

    again = reload(database, run)
    assert (again.status, again.attempts, again.finished_at) == (
        RunStatus.COMPLETED,
        1,
        first.finished_at,
    )
    assert queue_rows(database, PENDING_QUEUE) == []


def _body(run: ReductionRun) -> str:
    return RunMessage(
        run_id=run.id,
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        data_path=run.data_path,
        submitted_at=utcnow(),
    ).to_json()


def test_a_run_whose_processor_died_is_taken_over_as_the_next_attempt(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(601)
    with database.session() as session:  # a processor took it, then died before recording
        held = session.get(ReductionRun, run.id)
        assert held is not None
        held.status, held.attempts, held.processor = RunStatus.PROCESSING, 1, "dead-one"

    processor.process_next(wait_s=5)

    done = reload(database, run)
    assert (done.status, done.attempts, done.processor) == (RunStatus.COMPLETED, 2, "p1")


def test_a_run_out_of_attempts_is_error_and_its_message_dead_lettered(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(701)
    with database.session() as session:
        held = session.get(ReductionRun, run.id)
        assert held is not None
        held.status, held.attempts, held.processor = RunStatus.PROCESSING, 3, "dead-one"

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    assert failed.status == RunStatus.ERROR
    assert failed.message.startswith("gave up after 3 attempts")
    [dead] = queue_rows(database, DEAD_LETTER_QUEUE)
    assert dead.headers["x-dead-letter-reason"] == failed.message


def test_stopping_releases_the_run_in_hand_back_to_the_queue(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(801, sleep_s=60.0, fault="none")
    worker = threading.Thread(target=processor.process_next, args=(5,))
    worker.start()
    wait_for(lambda: reload(database, run).status == RunStatus.PROCESSING)

    processor.stop()
    worker.join(timeout=30)

    released = reload(database, run)
    assert (released.status, released.attempts, released.processor) == (RunStatus.QUEUED, 0, "")
    [message] = queue_rows(database, PENDING_QUEUE)
    assert message.claimed_by == ""


def test_a_segfaulting_plugin_leaves_its_python_stack_in_the_run_log(
    processor: QueueProcessor, submit: Callable[..., ReductionRun], database: Database
) -> None:
    run = submit(901, fault="segfault")

    crashed = reduce_until_final(processor, database, run)

    log = (Path(crashed.output_dir) / LOG_NAME).read_text()
    assert "Segmentation fault" in log and "noop.py" in log


@dataclass
class BehindProxy:
    """A fresh MariaDB database, reached directly and through a proxy the test can cut."""

    proxy: TcpProxy
    url: str  # through the proxy
    direct: Database  # the test's own view, never cut
    settings: Settings  # a noop instrument; the database URL goes through the proxy


@pytest.fixture
def behind_proxy(
    make_settings: Callable[..., Settings], fresh_mysql_database: str
) -> Iterator[BehindProxy]:
    server = make_url(fresh_mysql_database)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or 3306)
    url = server.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    direct = Database(fresh_mysql_database)
    direct.upgrade()
    settings = make_settings(
        GEM={
            "plugin": "noop",
            "lastruns": "{root}/GEM/lastruns.txt",
            "data": "{root}/GEM/GEM{run_number:08d}.nxs",
        },
        database_url=url,
    )
    yield BehindProxy(proxy, url, direct, settings)
    proxy.close()


def test_a_database_outage_during_a_reduction_does_not_lose_the_run_in_hand(
    behind_proxy: BehindProxy,
) -> None:
    database = Database(behind_proxy.url)
    transport = SqlTransport(behind_proxy.url, consumer="p1", database=database)
    processor = QueueProcessor(
        behind_proxy.settings, database=database, transport=transport, processor_id="p1"
    )
    direct = behind_proxy.direct
    run = _record_and_send(behind_proxy.settings, direct, transport, 1001, sleep_s=1.5)
    worker = threading.Thread(target=processor.process_next, args=(5,))
    worker.start()
    wait_for(lambda: reload(direct, run).status == RunStatus.PROCESSING)

    behind_proxy.proxy.cut()  # the database goes away while the child reduces
    time.sleep(3)  # the outage lasts 3 s (a duration, not a wait for a condition)
    behind_proxy.proxy.restore()
    worker.join(timeout=60)

    done = reload(direct, run)
    assert (done.status, done.attempts) == (RunStatus.COMPLETED, 1)


def test_a_delivery_that_cannot_be_handled_goes_back_to_the_queue_and_is_retried(
    behind_proxy: BehindProxy,
) -> None:
    direct, settings, proxy = behind_proxy.direct, behind_proxy.settings, behind_proxy.proxy
    transport = SqlTransport(direct.url, consumer="p1", database=direct)
    processor = QueueProcessor(
        settings, database=Database(behind_proxy.url), transport=transport, processor_id="p1"
    )
    run = _record_and_send(settings, direct, transport, 1101)
    proxy.cut()  # the processor's database is away; the queue is not

    processor.process_next(wait_s=5)

    [message] = queue_rows(direct, PENDING_QUEUE)
    assert (message.claimed_by, message.deliveries) == ("", 1)
    assert reload(direct, run).status == RunStatus.QUEUED
    proxy.restore()
    wait_for(lambda: processor.process_next(wait_s=1), timeout_s=30)
    assert reload(direct, run).status == RunStatus.COMPLETED
