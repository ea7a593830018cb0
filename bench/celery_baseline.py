"""Table (c): the same workload through Celery 5 on RabbitMQ, side by side with table (b).

A Celery worker subprocess (prefork, concurrency 2, ``acks_late``, prefetch multiplier 1) on a
queue of its own, purged before and after and deleted at the end; N tasks are published before
the worker starts, and the clock runs from the first task's start to the last task's finish
(both stamped by the task and stored in its result row), as in table (b). Each task writes one
small file and inserts one row into MariaDB (``celery_results`` in a fresh bench database):

- (c1) in the worker's own process — no isolation;
- (c2) the file is written by a fresh ``subprocess.run([sys.executable, "-c", ...])`` Python,
  the isolation ISIS's processor used, then the row is inserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench.brokers import PROJECT_ROOT
from bench.harness import BenchError, Services, fresh_database, one_line, wait_for
from bench.report import Table, percentile
from bench.throughput import ThroughputResult

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
MODES = (
    ("c1 in-process", "in-process", "bench.reduce_in_process"),
    ("c2 subprocess", "subprocess", "bench.reduce_in_subprocess"),
)


@dataclass
class CeleryResult:
    label: str
    tasks: int
    runs_per_s: float = float("nan")
    task_ms: list[float] = field(default_factory=list)
    unavailable: str = ""


def _declare_and_purge(queue: str, *, delete: bool = False) -> None:
    from bench.celery_tasks import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        channel.queue_purge(queue)
        if delete:
            channel.queue_delete(queue)


def _worker_argv(queue: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.celery_tasks",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--prefetch-multiplier",
        "1",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]


def _run_mode(
    services: Services, env: dict[str, str], url: str, queue: str, mode: str, task: str, n: int
) -> CeleryResult:
    from bench.celery_tasks import app, results

    result = CeleryResult(mode, n)
    _declare_and_purge(queue)
    for run_number in range(1, n + 1):
        app.send_task(task, args=[run_number], queue=queue)
    worker = services.start(f"celery-{mode}", _worker_argv(queue), env)
    engine = create_engine(url)
    try:
        mode_rows = results.c.mode == mode

        def done() -> bool:
            services.check_alive(worker)
            query = select(func.count()).select_from(results).where(mode_rows)
            with engine.connect() as connection:
                return int(connection.execute(query).scalar() or 0) >= n

        wait_for(done, timeout_s=60 + n, interval_s=0.1, what=f"{n} Celery tasks ({mode})")
        query = select(results.c.started_at, results.c.finished_at).where(mode_rows)
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
        services.stop(worker)
        _declare_and_purge(queue)
    span_s = (max(r[1] for r in rows) - min(r[0] for r in rows)).total_seconds()
    result.runs_per_s = len(rows) / span_s if span_s > 0 else float("nan")
    result.task_ms = [(r[1] - r[0]).total_seconds() * 1000 for r in rows]
    return result


def measure(tasks: int = 500) -> list[CeleryResult]:
    """(c1) and (c2), each with ``tasks`` tasks; a reason per mode if Celery cannot run."""
    queue = f"autoreduce_bench_{uuid.uuid4().hex[:8]}"
    try:
        import celery  # noqa: F401
    except ImportError:
        return [
            CeleryResult(label, tasks, unavailable="celery is not installed") for label, *_ in MODES
        ]
    out: list[CeleryResult] = []
    try:
        _measure_into(out, queue, tasks)
    except Exception as error:  # no database or broker: the modes not measured say why
        done = {result.label for result in out}
        reason = f"failed: {one_line(error)}"
        out += [
            CeleryResult(label, tasks, unavailable=reason)
            for label, *_ in MODES
            if label not in done
        ]
    return out


def _measure_into(out: list[CeleryResult], queue: str, tasks: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="autoreduce-bench-c-") as tmp,
        fresh_database("mariadb", Path(tmp)) as url,
        Services(Path(tmp) / "logs") as services,
    ):
        from bench.celery_tasks import metadata

        engine = create_engine(url)
        metadata.create_all(engine)
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
        env.update(
            BENCH_CELERY_BROKER=BROKER_URL,
            BENCH_CELERY_QUEUE=queue,
            BENCH_CELERY_DB=url,
            BENCH_CELERY_OUT=tmp,
            PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]),
        )
        try:
            for label, mode, task in MODES:
                try:
                    result = _run_mode(services, env, url, queue, mode, task, tasks)
                except BenchError as error:
                    result = CeleryResult(label, tasks, unavailable=f"failed: {error}")
                except Exception as error:  # the broker or the database went away
                    result = CeleryResult(label, tasks, unavailable=f"failed: {one_line(error)}")
                result.label = label
                out.append(result)
        finally:
            try:
                _declare_and_purge(queue, delete=True)
            except Exception as error:
                print(f"could not delete the Celery queue {queue}: {error}", file=sys.stderr)


def celery_table(celery: list[CeleryResult], ours: list[ThroughputResult]) -> Table:
    table = Table(
        "(c) Celery 5 on RabbitMQ (prefork 2, acks_late, prefetch 1; each task inserts one row)"
        " vs our 2 processors",
        ["workload", "runs/s", "task p50 ms", "task p95 ms", "ours ÷ c1", "ours ÷ c2", "target"],
        digits=2,
    )
    rates = {c.label: c.runs_per_s for c in celery if not c.unavailable}
    for c in celery:
        if c.unavailable:
            table.add(c.label, None, None, None, None, None, "")
        else:
            table.add(
                c.label,
                c.runs_per_s,
                percentile(c.task_ms, 0.5),
                percentile(c.task_ms, 0.95),
                None,
                None,
                "",
            )
            table.notes.append(f"{c.label}: {c.tasks} tasks")
    c1, c2 = rates.get("c1 in-process"), rates.get("c2 subprocess")
    for r in ours:
        if r.processors != 2:
            continue
        if r.unavailable:
            table.add(f"ours: {r.config}", None, None, None, None, None, "≥ 1x c1, ≥ 3x c2")
            continue
        table.add(
            f"ours: {r.config}",
            r.runs_per_s,
            percentile(r.in_run_ms, 0.5),
            percentile(r.in_run_ms, 0.95),
            r.runs_per_s / c1 if c1 else None,
            r.runs_per_s / c2 if c2 else None,
            "≥ 1x c1, ≥ 3x c2",
        )
    for c in celery:
        if c.unavailable:
            table.notes.append(f"{c.label}: not available: {c.unavailable}")
    if c1 and c2:
        table.notes.append(f"c1 ÷ c2 = {c1 / c2:.1f}: the price of a fresh interpreter per task")
    medians = [statistics.median(c.task_ms) for c in celery if c.task_ms]
    if medians:
        table.notes.append(
            "task ms = the task's own start → finish (ours: in-run = started_at → finished_at)"
        )
    return table
