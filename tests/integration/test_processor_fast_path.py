"""The processor's per-run path: two commits of its own, and reductions forked by fork servers."""

from __future__ import annotations

import select as io_select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from autoreduce.db import Database
from autoreduce.db.engine import READ_ONLY
from autoreduce.db.models import ReductionRun, RunLogLine, RunStatus
from autoreduce.messages import PENDING_QUEUE
from autoreduce.plugin import RunInfo
from autoreduce.plugin_manager import installed_plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from queue_processor.isolation import ReductionJob, ReductionLauncher
from queue_processor.worker import QueueProcessor
from tests.integration.test_processor import _record_and_send, instrument, queue_rows
from tests.polling import wait_for


def test_a_run_costs_three_write_commits_receive_claim_and_record(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """On the SQL queue: the queue-table claim, the run's claim, and one record transaction that
    holds the final state, the outputs, the log's lines and the message's ack."""
    settings = make_settings(
        GEM=instrument(), database_url=database.url, log_ship_interval_s=60.0, retry_delay_s=0
    )
    transport = SqlTransport(database.url, consumer="fast", database=database)
    processor = QueueProcessor(
        settings, database=database, transport=transport, processor_id="fast"
    )
    run = _record_and_send(settings, database, transport, 301)
    writes: list[str] = []

    def on_commit(connection: Any) -> None:
        if not connection.get_execution_options().get(READ_ONLY, False):
            writes.append("commit")

    event.listen(database.engine, "commit", on_commit)
    try:
        assert processor.process_next(wait_s=5)
    finally:
        event.remove(database.engine, "commit", on_commit)
        processor.launcher.close()

    assert len(writes) == 3
    with database.read_session() as session:
        status = session.scalar(select(ReductionRun.status).where(ReductionRun.id == run.id))
        lines = session.scalars(
            select(RunLogLine.text).where(RunLogLine.run_id == run.id).order_by(RunLogLine.seq)
        ).all()
    assert status == RunStatus.COMPLETED
    assert any("reducing GEM run 301" in line for line in lines)
    assert queue_rows(database, PENDING_QUEUE) == []


PROBE = """
import sys
from pathlib import Path
from autoreduce.plugin_manager import installed_plugins
from queue_processor.isolation import ReductionLauncher

launcher = ReductionLauncher(installed_plugins(), fork_servers=True)
launcher.start(sys.argv[1])
server = launcher._servers[sys.argv[1]]
server.wait_ready()
maps = Path(f"/proc/{server.pid}/maps").read_text()
heavy = {"scipp", "matplotlib"} & set(sys.modules)
print(sorted(heavy), "_scipp" in maps)
launcher.close()
"""


def _probe(plugin: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", PROBE, plugin], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_processor_imports_no_plugin_stack_and_each_fork_server_only_its_own() -> None:
    assert _probe("noop") == "[] False"
    assert _probe("powder_diffraction") == "[] True"


def test_a_fork_server_that_is_ready_before_the_first_run_forks_it(tmp_path: Path) -> None:
    """The server's "ready" line, waiting when the first run comes, is not taken for an exit."""
    launcher = ReductionLauncher(installed_plugins(), fork_servers=True)
    try:
        launcher.start("noop")
        server = launcher._servers["noop"]
        wait_for(lambda: io_select.select([server._sock], [], [], 0)[0], timeout_s=60)
        data = tmp_path / "GEM00000001.nxs"
        data.write_bytes(b"noop does not read it")
        job = ReductionJob(
            plugin="noop",
            run=RunInfo("GEM", 1, 0, "", data, ""),
            variables={"sleep_s": 0.0},
            work_dir=tmp_path / "work",
            timeout_s=30,
            memory_mb=256,
        )
        outcome = launcher.run(job)
    finally:
        launcher.close()

    assert outcome.ok, outcome.reason
    assert "noop.txt" in outcome.files


def test_an_idle_processor_lets_its_ready_child_go_and_the_next_run_forks_its_own(
    tmp_path: Path,
) -> None:
    """Idle, the processor keeps no ready child (its memory, docs/memory.md); runs still work."""
    import psutil

    launcher = ReductionLauncher(installed_plugins(), fork_servers=True)
    data = tmp_path / "GEM00000001.nxs"
    data.write_bytes(b"noop does not read it")

    def job(n: int) -> ReductionJob:
        return ReductionJob(
            plugin="noop",
            run=RunInfo("GEM", n, 0, "", data, ""),
            variables={"sleep_s": 0.0},
            work_dir=tmp_path / f"work{n}",
            timeout_s=30,
            memory_mb=256,
        )

    try:
        launcher.start("noop")
        assert launcher.run(job(1)).ok
        ready = launcher._ready["noop"].pid  # the next run's child, forked after this one
        assert psutil.pid_exists(ready)
        launcher.release_ready()
        assert launcher._ready == {}
        server = psutil.Process(launcher._servers["noop"].pid)
        wait_for(lambda: ready not in {c.pid for c in server.children()}, timeout_s=30)
        second = launcher.run(job(2))
    finally:
        launcher.close()

    assert second.ok, second.reason
    assert "noop.txt" in second.files


def test_a_child_forked_by_another_launcher_does_not_hold_up_this_ones_job(
    tmp_path: Path,
) -> None:
    """Pipeline steps run on threads, each with a launcher forking from this process: a child
    forked later inherits the earlier child's pipe ends. The earlier child must still read its
    whole job and report, not wait for an end of file that the later child's copy withholds."""
    data = tmp_path / "GEM00000001.nxs"
    data.write_bytes(b"noop does not read it")
    first, second = ReductionLauncher(installed_plugins()), ReductionLauncher(installed_plugins())
    try:
        first.prepare("noop")
        second.prepare("noop")  # its child holds copies of the first child's job and result pipes
        outcome = first.run(
            ReductionJob(
                plugin="noop",
                run=RunInfo("GEM", 1, 0, "", data, ""),
                variables={"sleep_s": 0.0},
                work_dir=tmp_path / "work",
                timeout_s=10,
                memory_mb=256,
            )
        )
    finally:
        first.close()
        second.close()

    assert outcome.ok, outcome.reason
