"""Table (h): where a processor's CPU goes per no-op run, phase by phase.

One processor runs in this Python process (its own loop, ``process_next``, on the main thread)
against a fresh database, the real ``autoreduce api`` (runs recorded over HTTP, as in (b)) and the
configuration's broker. Each phase of the per-run path is timed by wrapping the function that does
it, in CPU seconds of this process (``time.process_time``: every thread, so the log shipper's
thread counts in whichever phase it ran beside) and in wall time. The reduction processes' CPU is
read from their parent afterwards: the fork server (``psutil``: its own and its reaped children's)
or, for children forked from the processor itself, ``os.times()``.

The same module measures an older tree too: ``PYTHONPATH=<that tree> python -m bench --only h``
wraps whichever of the functions exist there (its pre-claim reads, its separate cancel read).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, select

from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage
from bench.brokers import CONFIGS, BrokerConfig, purge_pending, unavailable_reason
from bench.harness import Facility, Services, fresh_database, one_line, wait_for
from bench.report import Table
from bench.throughput import _count, _preload

WARM_UP_RUNS = 5  # the first runs (fork server's first child, caches) are not measured
PHASES = (
    ("receive", "receive the message (broker round trip / queue-table claim)"),
    ("pre-claim reads", "drain request and plugin approval, when read outside the claim"),
    ("claim", "claim transaction: Queued → Processing"),
    ("reduce (processor side)", "hand the job to a ready child, wait, ready the next child"),
    ("log shipping", "stop the log shipper (and, before, its own commit of the last lines)"),
    ("cancel read", "read whether cancelling was asked, before recording"),
    ("record", "record transaction: final state, outputs (and log lines, SQL-queue ack)"),
    ("ack", "ack after the commit (STOMP frame, or a queue-table commit before)"),
)


@dataclass
class Budget:
    config: str
    runs: int = 0
    unavailable: str = ""
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per run
    wall_ms: dict[str, float] = field(default_factory=dict)  # per run
    loop_cpu_ms: float = 0.0  # all of process_next, per run
    loop_wall_ms: float = 0.0
    children_cpu_ms: float = 0.0  # reduction processes (and the fork server), per run
    processor_rss_mb: float = 0.0


class _Meter:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = dict.fromkeys((name for name, _ in PHASES), 0.0)
        self.wall: dict[str, float] = dict(self.cpu)
        self.active = False

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return function(*args, **kwargs)
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[phase] += time.process_time() - cpu
                self.wall[phase] += time.perf_counter() - wall

        return timed


@contextlib.contextmanager
def _patched(target: Any, name: str, meter: _Meter, phase: str) -> Iterator[None]:
    original = getattr(target, name, None)
    if original is None:
        yield
        return
    setattr(target, name, meter.wrap(phase, original))
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _children_cpu_s(processor: Any) -> float:
    """CPU of the reduction processes so far: the fork servers' and the reaped children's."""
    total = 0.0
    for server in getattr(processor.launcher, "_servers", {}).values():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(server.pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    own = os.times()
    return total + own.children_user + own.children_system


def _run_processor(budget: Budget, runs: int) -> None:
    import queue_processor.log_shipper as log_shipper
    import queue_processor.worker as worker
    from autoreduce.settings import load_settings

    settings = load_settings()
    processor = worker.QueueProcessor(settings, processor_id="bench-budget")
    meter = _Meter()
    with contextlib.ExitStack() as patches:
        patches.enter_context(_patched(processor.transport, "receive", meter, "receive"))
        patches.enter_context(_patched(processor.transport, "ack", meter, "ack"))
        patches.enter_context(_patched(worker, "hold_unapproved", meter, "pre-claim reads"))
        patches.enter_context(_patched(processor, "_drain_requested", meter, "pre-claim reads"))
        patches.enter_context(_patched(worker, "claim_run", meter, "claim"))
        patches.enter_context(_patched(processor.launcher, "run", meter, "reduce (processor side)"))
        patches.enter_context(_patched(log_shipper.LogShipper, "stop", meter, "log shipping"))
        patches.enter_context(_patched(worker, "cancel_request", meter, "cancel read"))
        patches.enter_context(_patched(worker, "record_outcome", meter, "record"))
        processor.database.upgrade()
        start = getattr(processor.launcher, "start", None)
        for plugin in sorted({config.plugin for config in settings.instruments.values()}):
            if start is not None:
                start(plugin)
            else:
                processor.plugins.warm_up()
        processor.heartbeat.start()
        try:
            handled = 0
            while handled < WARM_UP_RUNS:
                handled += processor.process_next(1.0)
            children_before = _children_cpu_s(processor)
            meter.active = True
            cpu, wall = time.process_time(), time.perf_counter()
            measured = 0
            while measured < runs - WARM_UP_RUNS:
                measured += processor.process_next(1.0)
            loop_cpu, loop_wall = time.process_time() - cpu, time.perf_counter() - wall
            meter.active = False
            children = _children_cpu_s(processor) - children_before
            with contextlib.suppress(psutil.Error):
                budget.processor_rss_mb = psutil.Process().memory_info().rss / (1024 * 1024)
        finally:
            processor.launcher.close()
            processor.heartbeat.stop()
            processor.transport.close()
            processor.database.dispose()
    budget.runs = measured
    budget.cpu_ms = {name: 1000 * s / measured for name, s in meter.cpu.items()}
    budget.wall_ms = {name: 1000 * s / measured for name, s in meter.wall.items()}
    budget.loop_cpu_ms = 1000 * loop_cpu / measured
    budget.loop_wall_ms = 1000 * loop_wall / measured
    budget.children_cpu_ms = 1000 * children / measured


def measure_one(config: BrokerConfig, runs: int) -> Budget:
    budget = Budget(config.name)
    purge_pending(config)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="autoreduce-bench-g-") as tmp,
            fresh_database(config.database, Path(tmp)) as url,
            Services(Path(tmp) / "logs") as services,
        ):
            facility = Facility(Path(tmp), url, config.broker_url, services)
            facility.create_token()
            facility.start_api()
            _preload(facility, runs)
            database = Database(url)
            try:
                unsent = select(func.count()).select_from(OutboxMessage)
                unsent = unsent.where(OutboxMessage.sent_at.is_(None))
                wait_for(
                    lambda: _count(database, unsent) == 0,
                    timeout_s=120,
                    interval_s=0.1,
                    what="the outbox relay publishing every run",
                )
            finally:
                database.dispose()
            with _environment(facility.env()):
                _run_processor(budget, runs)
    finally:
        purge_pending(config)
    return budget


def measure(runs: int = 300, configs: tuple[BrokerConfig, ...] = CONFIGS[1:3]) -> list[Budget]:
    """Table (h) for MariaDB with the SQL queue and with ActiveMQ (unavailable: the reason)."""
    results = []
    for config in configs:
        if reason := unavailable_reason(config):
            results.append(Budget(config.name, unavailable=reason))
            continue
        try:
            results.append(measure_one(config, max(runs, WARM_UP_RUNS + 10)))
        except Exception as error:  # report it, go on with the next configuration
            results.append(Budget(config.name, unavailable=f"failed: {one_line(error)}"))
    return results


def budget_table(results: list[Budget]) -> Table:
    names = [r.config for r in results]
    columns = ["phase"]
    for name in names:
        columns += [f"{name} CPU ms", "wall ms"]
    table = Table("(h) Per-run CPU budget of one processor (noop plugin, sleep_s 0)", columns)
    for phase, _ in PHASES:
        cells: list[Any] = [phase]
        for r in results:
            cells += [r.cpu_ms.get(phase), r.wall_ms.get(phase)]
        table.add(*cells)
    other: list[Any] = ["other (logging, paths, provenance, events)"]
    total: list[Any] = ["processor total (process_next)"]
    children: list[Any] = ["reduction processes (fork + child)"]
    for r in results:
        if r.unavailable:
            other += [None, None]
            total += [None, None]
            children += [None, None]
            continue
        other += [
            r.loop_cpu_ms - sum(r.cpu_ms.values()),
            r.loop_wall_ms - sum(r.wall_ms.values()),
        ]
        total += [r.loop_cpu_ms, r.loop_wall_ms]
        children += [r.children_cpu_ms, None]
    table.add(*other)
    table.add(*total)
    table.add(*children)
    for r in results:
        if r.unavailable:
            table.notes.append(f"{r.config}: not available: {r.unavailable}")
        else:
            table.notes.append(
                f"{r.config}: {r.runs} measured runs; processor RSS after {r.processor_rss_mb:.0f}"
                " MiB (in the bench process)"
            )
    table.notes.append(
        "CPU = time.process_time of the processor's process (all its threads) during the phase; "
        "children = the reduction processes' CPU (and the fork server's), per run."
    )
    for phase, meaning in PHASES:
        table.notes.append(f"{phase}: {meaning}")
    return table
