"""The queue processor against a real database and the SQL queue, reducing in real children."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import pytest
from sqlalchemy import make_url, select

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.db.models import Instrument, QueueMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE, RunMessage
from autoreduce.plugin import PROJECT, ReductionContext, ReductionResult, RunInfo, hookimpl
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from plugins import noop
from queue_processor.isolation import LOG_NAME
from queue_processor.worker import QueueProcessor
from tests.conftest import approve_builtin_plugins
from tests.polling import wait_for
from tests.tcp_proxy import TcpProxy


def instrument(plugin: str = "noop") -> dict[str, Any]:
    """A test instrument's table: its plugin, 2 s and 256 MiB per reduction."""
    return {
        "plugin": plugin,
        "lastruns": "{root}/{instrument}/lastruns.txt",
        "data": "{root}/{instrument}/{instrument}{run_number:08d}.nxs",
        "timeout_s": 2,
        "memory_mb": 256,
    }


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database: Database) -> Settings:
    return make_settings(
        GEM=instrument(), database_url=database.url, shutdown_grace_s=0, retry_delay_s=0
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
    """Record a run as the API would and send its message; the data file exists."""

    def submit_run(run_number: int, **options: Any) -> ReductionRun:
        return _record_and_send(settings, database, transport, run_number, **options)

    return submit_run


def _record_and_send(
    settings: Settings,
    database: Database,
    transport: SqlTransport,
    run_number: int,
    *,
    with_data: bool = True,
    data: bytes = b"not really NeXus; noop does not read it",
    instrument: str = "GEM",
    experiment_ref: str = "",
    run_version: int = 0,
    **variables: Any,
) -> ReductionRun:
    """Record a run (version ``run_version``) as the API would and send its message; the data
    file exists and holds ``data`` unless ``with_data`` is False."""
    data_path = Path(settings.data_pattern(instrument, run_number))
    if with_data:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        data_path.write_bytes(data)
    with database.session() as session:
        if session.get(Instrument, instrument) is None:
            session.add(Instrument(name=instrument))
        run = ReductionRun(
            instrument=instrument,
            run_number=run_number,
            run_version=run_version,
            status=RunStatus.QUEUED,
            data_path=str(data_path),
            experiment_ref=experiment_ref,
            variables={"sleep_s": 0.0, "fault": "none", **variables},
        )
        session.add(run)
        session.flush()
    message = RunMessage(
        run_id=run.id,
        instrument=instrument,
        run_number=run_number,
        run_version=run_version,
        experiment_ref=experiment_ref,
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
    assert {(o.kind, o.name) for o in done.outputs} == {
        ("data", "noop.txt"),
        ("data", "variables.json"),
        ("log", LOG_NAME),
    }
    assert not [p for p in output_dir.parent.iterdir() if p.name.startswith(".")]
    assert queue_rows(database, PENDING_QUEUE) == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("raise", "plugin raised RuntimeError: noop was asked to fail on run 201"),
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
    assert failed.message == f"data file {run.data_path} does not exist"


def test_a_data_file_swapped_for_a_symlink_out_of_the_archive_is_not_reduced(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    tmp_path: Path,
) -> None:
    run = submit(402)
    secret = tmp_path / "secret.nxs"
    secret.write_text("not for reduction")
    Path(run.data_path).unlink()
    Path(run.data_path).symlink_to(secret)

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    assert failed.status == RunStatus.ERROR
    assert "lies outside" in failed.message and failed.output_dir == ""


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
    approve_builtin_plugins(direct)
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


# Paths are confined: values from data files and plugins never lead outside the outputs root.


def paths_outside(top: Path, outputs_root: Path) -> set[Path]:
    """Every path under ``top`` except the outputs root's and the SQLite database's."""
    return {
        path
        for path in top.rglob("*")
        if not path.is_relative_to(outputs_root) and not path.name.startswith("autoreduce.db")
    }


def test_a_run_of_a_normal_experiment_completes_in_the_experiments_directory(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    settings: Settings,
) -> None:
    run = submit(121, experiment_ref="1920123")

    processor.process_next(wait_s=5)

    done = reload(database, run)
    assert done.status == RunStatus.COMPLETED
    assert Path(done.output_dir) == settings.outputs_root / "GEM" / "1920123" / "121" / "v0"
    assert (Path(done.output_dir) / "noop.txt").is_file()


def test_an_experiment_reference_climbing_out_of_the_outputs_is_error_and_touches_nothing(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    settings: Settings,
    tmp_path: Path,
) -> None:
    # outputs/GEM/../../../victim is tmp_path/victim: outputs is tmp_path/data/outputs
    assert settings.outputs_root == tmp_path.resolve() / "data" / "outputs"
    victim = tmp_path / "victim" / "424242" / "v0"
    victim.mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me")
    run = submit(424242, experiment_ref="../../../victim")
    before = paths_outside(tmp_path, settings.outputs_root)

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    assert failed.status == RunStatus.ERROR
    assert failed.message.startswith(
        "experiment reference '../../../victim' cannot be used in a path"
    )
    assert (victim / "precious.txt").read_text() == "keep me"
    assert paths_outside(tmp_path, settings.outputs_root) == before
    assert queue_rows(database, PENDING_QUEUE) == []


def test_an_outputs_directory_symlinked_outside_the_root_is_error_and_gets_nothing(
    processor: QueueProcessor,
    submit: Callable[..., ReductionRun],
    database: Database,
    settings: Settings,
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings.outputs_root.mkdir(parents=True)
    (settings.outputs_root / "GEM").symlink_to(elsewhere)
    run = submit(131)

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    expected = settings.outputs_root / "GEM" / "unknown" / "131" / "v0"
    assert (failed.status, failed.message) == (
        RunStatus.ERROR,
        f"output directory '{expected}' lies outside {settings.outputs_root}",
    )
    assert list(elsewhere.iterdir()) == []


class OutputsAsAsked:
    """A plugin that writes ``result.txt`` and returns as its file whatever ``returns`` names.

    ``link_to`` makes ``link.txt`` a symlink to that path; ``log_link_to`` replaces the run's log
    with a symlink to that path; ``swap_run_dir_for`` replaces the run's directory (the parent of
    its work directory) with a symlink to that path while the reduction runs.
    """

    @hookimpl
    def reduce(self, context: ReductionContext) -> ReductionResult:
        (context.output_dir / "result.txt").write_text("reduced")
        options = context.variables
        if "link_to" in options:
            (context.output_dir / "link.txt").symlink_to(options["link_to"])
        if "log_link_to" in options:
            (context.output_dir / LOG_NAME).unlink()
            (context.output_dir / LOG_NAME).symlink_to(options["log_link_to"])
        if "swap_run_dir_for" in options:
            run_dir = context.output_dir.parent
            os.rename(run_dir, run_dir.with_name(run_dir.name + ".moved"))
            run_dir.symlink_to(options["swap_run_dir_for"])
        return ReductionResult(files=[Path(options.get("returns", "result.txt"))])


class SkipsEverything:
    """A third-party plugin whose ``skip_run`` skips every run it is asked about."""

    @hookimpl
    def skip_run(self, run: RunInfo) -> str | None:
        return "a calibration run"

    @hookimpl
    def reduce(self, context: ReductionContext) -> ReductionResult:
        raise AssertionError("every run is skipped")


@pytest.fixture
def plugins() -> Plugins:
    """The ``noop`` plugin and the test plugins, in a manager of their own."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(noop, name="noop")
    manager.register(OutputsAsAsked(), name="outputs_as_asked")
    manager.register(SkipsEverything(), name="skips_everything")
    return Plugins(manager)


@pytest.fixture
def processor_of(
    make_settings: Callable[..., Settings],
    database: Database,
    transport: SqlTransport,
    plugins: Plugins,
) -> Callable[..., tuple[QueueProcessor, Callable[..., ReductionRun]]]:
    """A processor whose instruments use the given plugins, and its ``submit``."""

    def build(**plugin_of: str) -> tuple[QueueProcessor, Callable[..., ReductionRun]]:
        settings = make_settings(
            **{name: instrument(plugin) for name, plugin in plugin_of.items()},
            database_url=database.url,
        )
        processor = QueueProcessor(
            settings, database=database, transport=transport, plugins=plugins, processor_id="p1"
        )

        def submit_run(run_number: int, **options: Any) -> ReductionRun:
            return _record_and_send(settings, database, transport, run_number, **options)

        return processor, submit_run

    return build


@pytest.mark.parametrize("returns", ["/etc/passwd", "../outside.txt", "link.txt", "."])
def test_a_plugin_returning_a_file_outside_its_output_directory_is_error(
    processor_of: Callable[..., tuple[QueueProcessor, Callable[..., ReductionRun]]],
    database: Database,
    tmp_path: Path,
    returns: str,
) -> None:
    processor, submit = processor_of(GEM="outputs_as_asked")
    (tmp_path / "secret.txt").write_text("not an output")
    run = submit(141, returns=returns, link_to=str(tmp_path / "secret.txt"))

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    assert (failed.status, failed.message) == (
        RunStatus.ERROR,
        f"plugin returned file '{returns}', which is not a file inside its output directory",
    )
    assert [o.kind for o in failed.outputs] == ["log"]


def test_a_run_log_symlinked_outside_is_not_recorded_as_an_output(
    processor_of: Callable[..., tuple[QueueProcessor, Callable[..., ReductionRun]]],
    database: Database,
    tmp_path: Path,
) -> None:
    processor, submit = processor_of(GEM="outputs_as_asked")
    (tmp_path / "secret.txt").write_text("not an output")
    run = submit(151, log_link_to=str(tmp_path / "secret.txt"))

    processor.process_next(wait_s=5)

    done = reload(database, run)
    assert done.status == RunStatus.COMPLETED
    assert {(o.kind, o.name) for o in done.outputs} == {("data", "result.txt")}


def test_a_run_directory_swapped_for_a_symlink_during_reduction_is_error_and_not_replaced(
    processor_of: Callable[..., tuple[QueueProcessor, Callable[..., ReductionRun]]],
    database: Database,
    tmp_path: Path,
) -> None:
    processor, submit = processor_of(GEM="outputs_as_asked")
    victim = tmp_path / "victim"
    (victim / "v0").mkdir(parents=True)
    (victim / "v0" / "precious.txt").write_text("keep me")
    run = submit(161, swap_run_dir_for=str(victim))

    processor.process_next(wait_s=5)

    failed = reload(database, run)
    output_dir = processor.settings.outputs_root / "GEM" / "unknown" / "161" / "v0"
    assert (failed.status, failed.message) == (
        RunStatus.ERROR,
        f"output directory '{output_dir}' lies outside {processor.settings.outputs_root}",
    )
    assert [p.name for p in victim.iterdir()] == ["v0"]
    assert (victim / "v0" / "precious.txt").read_text() == "keep me"


def test_another_plugins_skip_run_does_not_skip_this_instruments_runs(
    processor_of: Callable[..., tuple[QueueProcessor, Callable[..., ReductionRun]]],
    database: Database,
) -> None:
    processor, submit = processor_of(GEM="noop", LOQ="skips_everything")
    gem = submit(171)
    loq = submit(172, instrument="LOQ")

    processor.process_next(wait_s=5)
    processor.process_next(wait_s=5)

    assert reload(database, gem).status == RunStatus.COMPLETED
    skipped = reload(database, loq)
    assert (skipped.status, skipped.message) == (RunStatus.SKIPPED, "a calibration run")
