"""``python -m bench.slurm_follow [--runs N] [--sleep S]``: one processor following many Slurm jobs.

A facility of real processes (``autoreduce api`` and ONE ``autoreduce process``, SQLite and the
SQL queue) gets N runs POSTed once the processor beats, of an instrument with
``executor = "slurm"`` (the ``noop`` plugin sleeping S seconds in each job), on the one-node
cluster of ``scripts/services.sh start slurm``. The processor hands each job to its follower
thread and takes the next message, so it follows as many jobs as Slurm runs or queues at once.
The table gives how long POSTing and handing every run to Slurm took, the most jobs the one
processor followed at once, the time until every run was Completed, and the processor's CPU time
(its own process, not the jobs') per run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import Select, func, select

from autoreduce.db import Database
from autoreduce.db.models import ProcessorHeartbeat, ReductionRun, RunAttempt, RunStatus
from bench.harness import Facility, Services, fresh_database, wait_for
from bench.report import Table
from bench.slurm_overhead import SLURM_CONF
from bench.throughput import _preload

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def database_count(database: Database, query: Select[tuple[int]]) -> int:
    with database.read_session() as session:
        return int(session.scalar(query) or 0)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def measure(runs: int, sleep_s: float) -> Table:
    os.environ.setdefault("SLURM_CONF", SLURM_CONF)
    with (
        tempfile.TemporaryDirectory(prefix="autoreduce-bench-slurm-") as tmp,
        fresh_database("sqlite", Path(tmp)) as url,
        Services(Path(tmp) / "logs") as services,
    ):
        facility = Facility(
            Path(tmp),
            url,
            "sql://",
            services,
            settings_lines=('executor = "slurm"', "memory_mb = 64"),
            variables=(f"sleep_s = {sleep_s}",),
        )
        facility.create_token()
        facility.start_api()
        database = Database(url)
        try:
            processor = facility.start_processor(1)
            beating = select(func.count()).select_from(ProcessorHeartbeat)
            wait_for(
                lambda: bool(database_count(database, beating)),
                timeout_s=60,
                what="the processor's first heartbeat",
            )
            cpu_before = cpu_s(processor.pid)  # its start-up not counted
            started = time.monotonic()
            _preload(facility, runs)
            followed = (
                select(func.count())
                .select_from(RunAttempt)
                .where(RunAttempt.handed_off_at.is_not(None), RunAttempt.finished_at.is_(None))
            )
            handed = select(func.count()).select_from(RunAttempt)
            handed = handed.where(RunAttempt.handed_off_at.is_not(None))
            done = select(func.count()).select_from(ReductionRun)
            done = done.where(ReductionRun.status == RunStatus.COMPLETED.value)
            most = 0
            all_handed_s = None
            deadline = time.monotonic() + 120 + runs * (sleep_s + 5)
            while True:
                services.check_alive(processor)
                with database.read_session() as session:
                    most = max(most, int(session.scalar(followed) or 0))
                    if all_handed_s is None and session.scalar(handed) >= runs:
                        all_handed_s = time.monotonic() - started
                    if session.scalar(done) >= runs:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{runs} Slurm runs not Completed in time")
                time.sleep(0.1)
            total_s = time.monotonic() - started
            cpu = cpu_s(processor.pid) - cpu_before
        finally:
            database.dispose()
    table = Table(
        f"One processor following Slurm jobs ({runs} runs, noop sleeping {sleep_s:g} s, "
        f"one node of {os.cpu_count()} CPUs)",
        ["every run POSTed and handed to Slurm s", "most jobs followed at once", "all Completed s",
         "processor CPU ms per run"],
    )  # fmt: skip
    table.add(all_handed_s or 0.0, most, total_s, cpu / runs * 1000)
    table.digits = 2
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=2.0)
    args = parser.parse_args()
    print(measure(args.runs, args.sleep).render())


if __name__ == "__main__":
    main()
