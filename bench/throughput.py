"""Table (b): throughput and per-run orchestration overhead of real ``autoreduce process``es.

For each configuration and processor count: a fresh database, the real ``autoreduce api``, and
N runs recorded through it over HTTP (``POST /api/v1/runs``, the detector's path: each run and its
outbox row in one transaction, the API's outbox relay publishing them). Once every outbox row is
sent, the processors start; the clock runs from the first run's ``started_at`` to the last
run's ``finished_at``, so processor start-up is excluded. The plugin is ``noop`` with
``sleep_s = 0``: all the time measured is orchestration.

Per run, two figures from the database rows:

- *in-run* = ``finished_at - started_at``: the claim commit, the fork of the reduction child,
  the child's set-up (log redirection, memory limit, plugin call ≈ 0, result file), the wait for
  it, moving outputs into place and the record transaction up to its ``finished_at``;
- *between runs* = the next ``started_at`` - this ``finished_at`` on the same processor: the
  record's commit, the ack, logging, receiving the next message and the claim transaction.

Their sum is the processor's cycle per run (1 / its runs/s).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import func, select

from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage, ReductionRun
from bench.brokers import CONFIGS, BrokerConfig, purge_pending, unavailable_reason
from bench.harness import (
    INSTRUMENT,
    BenchError,
    Facility,
    Services,
    fresh_database,
    one_line,
    wait_for,
)
from bench.memory import MemoryRow, PeakRss, idle_rss_mb, settle, tree_pss_mb
from bench.report import Table, percentile

FINAL_STATES = ("Completed", "Error", "Skipped")
TARGET_OVERHEAD_P50_MS = 15.0
TARGET_OVERHEAD_CONFIG = "MariaDB + ActiveMQ"
Row = tuple[str, str, datetime | None, datetime | None]  # processor, status, started, finished


@dataclass
class ThroughputResult:
    """One configuration with one processor count."""

    config: str
    processors: int
    runs: int = 0
    unavailable: str = ""
    preload_runs_per_s: float = 0.0
    runs_per_s: float = 0.0
    errors: int = 0
    in_run_ms: list[float] = field(default_factory=list)
    between_ms: list[float] = field(default_factory=list)
    first_start_s: float = 0.0  # processors started → the first run started
    memory: list[MemoryRow] = field(default_factory=list)


def _data_files(facility: Facility, runs: int) -> list[Path]:
    """One synthetic NeXus file, hard-linked under every run's name (the API reads its header)."""
    from autoreduce.demo.nexus import write_synthetic_run

    first = facility.data_file(1)
    first.parent.mkdir(parents=True, exist_ok=True)
    write_synthetic_run(
        "powder",
        first,
        instrument=INSTRUMENT,
        run_number=1,
        experiment_ref="2610001",
        title="bench",
        n_events=100,
        seed=1,
    )
    paths = [first]
    for run_number in range(2, runs + 1):
        path = facility.data_file(run_number)
        os.link(first, path)
        paths.append(path)
    return paths


def _preload(facility: Facility, runs: int) -> float:
    """POST ``runs`` runs to the API as the detector does; the rate in runs/s."""
    paths = _data_files(facility, runs)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {facility.token}"
    started = time.monotonic()
    for run_number, path in enumerate(paths, start=1):
        body = {
            "instrument": INSTRUMENT,
            "run_number": run_number,
            "data_path": str(path),
            "detected_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        response = session.post(f"{facility.api_url}/api/v1/runs", json=body, timeout=30)
        if response.status_code != 201:
            raise BenchError(f"POST run {run_number}: {response.status_code} {response.text}")
    session.close()
    return runs / (time.monotonic() - started)


def _count(database: Database, query: object) -> int:
    with database.session() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def _read_rows(database: Database) -> list[Row]:
    run = ReductionRun
    query = select(run.processor, run.status, run.started_at, run.finished_at)
    with database.session() as session:
        return [(p, s, started, finished) for p, s, started, finished in session.execute(query)]


def _analyse(result: ThroughputResult, rows: list[Row]) -> None:
    result.errors = sum(1 for row in rows if row[1] != "Completed")
    done = [(p, s, a, b) for p, s, a, b in rows if a is not None and b is not None]
    if not done:
        return
    span_s = (max(row[3] for row in done) - min(row[2] for row in done)).total_seconds()
    result.runs_per_s = len(done) / span_s if span_s > 0 else float("nan")
    by_processor: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for processor, _status, started_at, finished_at in done:
        result.in_run_ms.append((finished_at - started_at).total_seconds() * 1000)
        by_processor[processor].append((started_at, finished_at))
    for spans in by_processor.values():
        spans.sort()
        for (_, finished), (next_started, _) in itertools.pairwise(spans):
            result.between_ms.append((next_started - finished).total_seconds() * 1000)


def measure_one(config: BrokerConfig, processors: int, runs: int) -> ThroughputResult:
    """Table (b) for one configuration and processor count."""
    result = ThroughputResult(config.name, processors, runs)
    purge_pending(config)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="autoreduce-bench-b-") as tmp,
            fresh_database(config.database, Path(tmp)) as url,
            Services(Path(tmp) / "logs") as services,
        ):
            facility = Facility(Path(tmp), url, config.broker_url, services)
            facility.create_token()
            api = facility.start_api()
            database = Database(url)
            api_idle = idle_rss_mb({"api": api.pid})["api"]
            api_idle_pss = tree_pss_mb(api.pid)
            api_peak = PeakRss({"api": api.pid})
            try:
                with api_peak:
                    result.preload_runs_per_s = _preload(facility, runs)
                unsent = select(func.count()).select_from(OutboxMessage)
                unsent = unsent.where(OutboxMessage.sent_at.is_(None))
                wait_for(
                    lambda: _count(database, unsent) == 0,
                    timeout_s=120,
                    interval_s=0.1,
                    what="the outbox relay publishing every run",
                )
                started_at = datetime.now(UTC)
                workers = [facility.start_processor(n) for n in range(1, processors + 1)]
                pids = {"api": api.pid, **{w.name: w.pid for w in workers}}
                final = select(func.count()).select_from(ReductionRun)
                final = final.where(ReductionRun.status.in_(FINAL_STATES))

                def all_final() -> bool:
                    for worker in workers:
                        services.check_alive(worker)
                    return _count(database, final) >= runs

                with PeakRss(pids) as peaks:
                    wait_for(all_final, timeout_s=60 + runs, interval_s=0.1, what="every run final")
                worker_pids = {w.name: w.pid for w in workers}
                settle(worker_pids, descendants=1)  # its noop fork server, no ready child
                idle = idle_rss_mb(worker_pids)
                idle_pss = {name: tree_pss_mb(pid) for name, pid in worker_pids.items()}
                idle["api"] = api_idle
                idle_pss["api"] = api_idle_pss
                rows = _read_rows(database)
            finally:
                database.dispose()
            _analyse(result, rows)
            starts = [row[2] for row in rows if row[2] is not None]
            result.first_start_s = (min(starts) - started_at).total_seconds()
            load = f"{runs} noop runs, {processors} processor(s)"
            peaks.peaks_mb["api"] = max(peaks.peaks_mb["api"], api_peak.peaks_mb["api"])
            result.memory = [
                MemoryRow(name, config.name, idle[name], peaks.peaks_mb[name], load, idle_pss[name])
                for name in pids
            ]
    finally:
        purge_pending(config)
    return result


def measure(
    runs: int = 500,
    processor_counts: tuple[int, ...] = (1, 2),
    configs: tuple[BrokerConfig, ...] = CONFIGS,
) -> list[ThroughputResult]:
    """Table (b) for every configuration; unavailable ones carry their reason."""
    results = []
    for config in configs:
        reason = unavailable_reason(config)
        for processors in processor_counts:
            if reason:
                results.append(ThroughputResult(config.name, processors, unavailable=reason))
                continue
            try:
                results.append(measure_one(config, processors, runs))
            except BenchError as error:
                failed = ThroughputResult(config.name, processors, unavailable=f"failed: {error}")
                results.append(failed)
            except Exception as error:  # e.g. the database went away: report it, go on
                reason = f"failed: {one_line(error)}"
                results.append(ThroughputResult(config.name, processors, unavailable=reason))
    return results


def throughput_table(results: list[ThroughputResult]) -> Table:
    runs = max((r.runs for r in results), default=0)
    table = Table(
        f"(b) Throughput and per-run orchestration overhead (noop plugin, sleep_s 0, {runs} runs "
        "recorded through POST /api/v1/runs)",
        [
            "configuration",
            "procs",
            "runs/s",
            "in-run p50 ms",
            "in-run p95 ms",
            "between p50 ms",
            "between p95 ms",
            "errors",
            "target",
        ],
    )
    for r in results:
        target = (
            f"in-run p50 ≤ {TARGET_OVERHEAD_P50_MS:g} ms"
            if r.config == TARGET_OVERHEAD_CONFIG
            else ""
        )
        if r.unavailable:
            table.add(r.config, r.processors, None, None, None, None, None, None, target)
            continue
        table.add(
            r.config,
            r.processors,
            r.runs_per_s,
            percentile(r.in_run_ms, 0.50),
            percentile(r.in_run_ms, 0.95),
            percentile(r.between_ms, 0.50),
            percentile(r.between_ms, 0.95),
            r.errors,
            target,
        )
    notes = []
    for r in results:
        if r.unavailable:
            notes.append(f"{r.config}, {r.processors} proc: not available: {r.unavailable}")
    seen: set[str] = set()
    for r in results:
        if not r.unavailable and r.config not in seen:
            seen.add(r.config)
            notes.append(
                f"{r.config}: API recorded runs at {r.preload_runs_per_s:.0f} runs/s over HTTP"
            )
    for r in results:
        if r.config == TARGET_OVERHEAD_CONFIG and r.processors == 1:
            if r.unavailable:
                notes.append("target in-run p50 ≤ 15 ms on ActiveMQ + MariaDB: not measured")
            else:
                p50 = percentile(r.in_run_ms, 0.50)
                verdict = "met" if p50 <= TARGET_OVERHEAD_P50_MS else "NOT met"
                notes.append(
                    f"target in-run p50 ≤ {TARGET_OVERHEAD_P50_MS:g} ms on ActiveMQ + MariaDB: "
                    f"{verdict} ({p50:.1f} ms)"
                )
    notes.append(
        "runs/s = runs / (last finished_at - first started_at); in-run = finished_at - "
        "started_at (the plugin's own work is ≈ 0); between = next started_at - finished_at "
        "on one processor (commit, ack, receive, claim)."
    )
    table.notes.extend(notes)
    return table
