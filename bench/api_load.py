"""Table (e): the real ``autoreduce api`` under 20 concurrent clients (SQLite + SQL queue).

A fresh SQLite database holds three instruments with 1,000 completed runs each, inserted through
the models before the API starts. The real ``autoreduce api`` then serves it, its outbox relay
publishing into the SQL queue table (a writer too). Every request carries an admin token.

``CLIENTS`` threads, each with its own keep-alive HTTP session on loopback, start together and
send a fixed number of requests each, drawn with a fixed seed from :data:`MIX`: the run list,
one instrument's run list, one run, the instrument list, and a new run posted (its data file
exists under the archive). The load ends at that count or after ``max_duration_s``, whichever
comes first. Per request type: n, req/s (n / the load's wall span), latency percentiles, and
errors (a transport error or a status other than 200/201).
"""

from __future__ import annotations

import os
import random
import resource
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests
from sqlalchemy import insert

from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus
from bench.harness import Facility, Services, fresh_database
from bench.report import Table, percentile

CONFIGURATION = "SQLite + SQL queue"
INSTRUMENTS = ("ALPHA", "BETA", "GAMMA")
RUNS_PER_INSTRUMENT = 1000
CLIENTS = 20
REQUEST_TIMEOUT_S = 60.0
TARGET_READ_P99_MS = 100.0
LIST_RUNS = "GET /api/v1/runs"
LIST_INSTRUMENT_RUNS = "GET /api/v1/runs?instrument=X"
ONE_RUN = "GET /api/v1/runs/{i}/{n}"
LIST_INSTRUMENTS = "GET /api/v1/instruments"
POST_RUN = "POST /api/v1/runs"
MIX = {LIST_RUNS: 30, LIST_INSTRUMENT_RUNS: 25, ONE_RUN: 25, LIST_INSTRUMENTS: 10, POST_RUN: 10}
READS = (LIST_RUNS, LIST_INSTRUMENT_RUNS, ONE_RUN, LIST_INSTRUMENTS)


@dataclass(frozen=True)
class PlannedRequest:
    kind: str
    instrument: str
    run_number: int


@dataclass
class LoadResult:
    requests: int
    clients: int
    span_s: float = 0.0
    api_cpu_s: float = 0.0  # the API process's user + system CPU during the load
    clients_cpu_s: float = 0.0  # this process's (the clients') user + system CPU during the load
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)


def _plans(requests_total: int, clients: int, seed: int = 14) -> list[list[PlannedRequest]]:
    """Each client's requests; a POST gets a run number no other request posts."""
    draw = random.Random(seed)
    next_number = dict.fromkeys(INSTRUMENTS, RUNS_PER_INSTRUMENT + 1)
    kinds, weights = list(MIX), list(MIX.values())
    plans: list[list[PlannedRequest]] = [[] for _ in range(clients)]
    for index in range(requests_total):
        kind = draw.choices(kinds, weights)[0]
        instrument = draw.choice(INSTRUMENTS)
        run_number = draw.randint(1, RUNS_PER_INSTRUMENT)
        if kind == POST_RUN:
            run_number = next_number[instrument]
            next_number[instrument] += 1
        plans[index % clients].append(PlannedRequest(kind, instrument, run_number))
    return plans


def _preload(url: str) -> None:
    """The instruments and their completed runs, through the models in one transaction."""
    finished = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {
            "instrument": instrument,
            "run_number": number,
            "run_version": 0,
            "status": RunStatus.COMPLETED.value,
            "message": "",
            "experiment_ref": "2610001",
            "title": f"{instrument} bench run {number}",
            "data_path": f"/archive/{instrument}{number:08d}.nxs",
            "variables": {"sleep_s": 0.0},
            "reason": "detected",
            "submitted_by": "bench",
            "summary": "noop",
            "output_dir": "",
            "attempts": 1,
            "processor": "bench",
            "detected_at": finished,
            "queued_at": finished,
            "started_at": finished,
            "finished_at": finished,
        }
        for instrument in INSTRUMENTS
        for number in range(1, RUNS_PER_INSTRUMENT + 1)
    ]
    database = Database(url)
    try:
        with database.session() as session:
            for instrument in INSTRUMENTS:
                session.add(Instrument(name=instrument, is_paused=False, created_at=finished))
            session.flush()
            session.execute(insert(ReductionRun), rows)
    finally:
        database.dispose()


def _data_files(facility: Facility, plans: list[list[PlannedRequest]]) -> None:
    """A synthetic NeXus file per instrument, hard-linked under every run number posted."""
    from autoreduce.demo.nexus import write_synthetic_run

    first: dict[str, Path] = {}
    for plan in plans:
        for request in plan:
            if request.kind != POST_RUN:
                continue
            path = facility.data_file(request.run_number, request.instrument)
            path.parent.mkdir(parents=True, exist_ok=True)
            if request.instrument in first:
                os.link(first[request.instrument], path)
                continue
            write_synthetic_run(
                "powder",
                path,
                instrument=request.instrument,
                run_number=request.run_number,
                experiment_ref="2610001",
                title="bench",
                n_events=100,
                seed=1,
            )
            first[request.instrument] = path


def _send(
    session: requests.Session, facility: Facility, request: PlannedRequest
) -> requests.Response:
    base = f"{facility.api_url}/api/v1"
    if request.kind == LIST_RUNS:
        return session.get(f"{base}/runs", timeout=REQUEST_TIMEOUT_S)
    if request.kind == LIST_INSTRUMENT_RUNS:
        params = {"instrument": request.instrument}
        return session.get(f"{base}/runs", params=params, timeout=REQUEST_TIMEOUT_S)
    if request.kind == ONE_RUN:
        path = f"{base}/runs/{request.instrument}/{request.run_number}"
        return session.get(path, timeout=REQUEST_TIMEOUT_S)
    if request.kind == LIST_INSTRUMENTS:
        return session.get(f"{base}/instruments", timeout=REQUEST_TIMEOUT_S)
    body = {
        "instrument": request.instrument,
        "run_number": request.run_number,
        "data_path": str(facility.data_file(request.run_number, request.instrument)),
    }
    return session.post(f"{base}/runs", json=body, timeout=REQUEST_TIMEOUT_S)


def _client(
    facility: Facility,
    plan: list[PlannedRequest],
    start: threading.Barrier,
    deadline: list[float],
    result: LoadResult,
    lock: threading.Lock,
) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {facility.token}"
    start.wait()
    try:
        for request in plan:
            if time.monotonic() > deadline[0]:
                return
            began = time.perf_counter()
            error = ""
            try:
                response = _send(session, facility, request)
                if response.status_code not in (200, 201):
                    error = f"{request.kind}: {response.status_code} {response.text[:120]}"
            except requests.RequestException as failure:
                error = f"{request.kind}: {type(failure).__name__}: {failure}"[:200]
            elapsed_ms = (time.perf_counter() - began) * 1000
            with lock:
                result.latency_ms[request.kind].append(elapsed_ms)
                if error:
                    result.errors[request.kind] += 1
                    if len(result.error_samples) < 3:
                        result.error_samples.append(error)
    finally:
        session.close()


def _load(
    facility: Facility, plans: list[list[PlannedRequest]], max_duration_s: float
) -> LoadResult:
    result = LoadResult(requests=sum(len(plan) for plan in plans), clients=len(plans))
    lock = threading.Lock()
    deadline = [float("inf")]

    def started() -> None:  # the barrier's action: runs once, as every client is ready
        deadline[0] = time.monotonic() + max_duration_s

    start = threading.Barrier(len(plans), action=started)
    threads = [
        threading.Thread(
            target=_client,
            args=(facility, plan, start, deadline, result, lock),
            name=f"bench-client-{number}",
            daemon=True,
        )
        for number, plan in enumerate(plans)
    ]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    result.span_s = time.monotonic() - began
    return result


def measure(requests_total: int = 2000, max_duration_s: float = 300.0) -> LoadResult:
    """Table (e)'s workload on a fresh SQLite database; the latencies in milliseconds."""
    plans = _plans(requests_total, CLIENTS)
    with (
        tempfile.TemporaryDirectory(prefix="autoreduce-bench-e-") as tmp,
        fresh_database("sqlite", Path(tmp)) as url,
        Services(Path(tmp) / "logs") as services,
    ):
        facility = Facility(Path(tmp), url, "sql://", services, instruments=INSTRUMENTS)
        _preload(url)
        _data_files(facility, plans)
        facility.create_token("admin")
        api = psutil.Process(facility.start_api().pid)
        api_before, clients_before = _cpu_s(api), _own_cpu_s()
        result = _load(facility, plans, max_duration_s)
        result.api_cpu_s = _cpu_s(api) - api_before
        result.clients_cpu_s = _own_cpu_s() - clients_before
        return result


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def api_load_table(result: LoadResult) -> Table:
    table = Table(
        f"(e) API under concurrent load ({CONFIGURATION})",
        ["request", "n", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "target"],
    )
    target = f"reads p99 ≤ {TARGET_READ_P99_MS:g} ms"
    reads = [ms for kind in READS for ms in result.latency_ms[kind]]
    rows = [(kind, result.latency_ms[kind], result.errors[kind]) for kind in MIX]
    rows.append(("all reads", reads, sum(result.errors[kind] for kind in READS)))
    for kind, values, errors in rows:
        table.add(
            kind,
            len(values),
            len(values) / result.span_s if result.span_s else None,
            percentile(values, 0.50),
            percentile(values, 0.95),
            percentile(values, 0.99),
            max(values, default=float("nan")),
            errors,
            target if kind in READS or kind == "all reads" else "",
        )
    p99 = percentile(reads, 0.99)
    verdict = "met" if p99 <= TARGET_READ_P99_MS else "NOT met"
    total = sum(len(values) for values in result.latency_ms.values())
    table.notes.append(f"target {target}: {verdict} ({p99:.1f} ms over all reads)")
    table.notes.append(
        f"{result.clients} clients, {result.requests} requests planned; {len(INSTRUMENTS)} "
        f"instruments with {RUNS_PER_INSTRUMENT:,} runs each preloaded; admin token on each request"
    )
    table.notes.append(
        f"{total} requests in {result.span_s:.1f} s = {total / result.span_s:.0f} req/s overall; "
        f"mix (weights): {', '.join(f'{kind} {weight}' for kind, weight in MIX.items())}"
    )
    if total:
        little_ms = result.clients * result.span_s / total * 1000
        table.notes.append(
            f"CPU during the load: API {result.api_cpu_s:.1f} s "
            f"({result.api_cpu_s / total * 1000:.1f} ms per request), clients "
            f"{result.clients_cpu_s:.1f} s, on {os.cpu_count()} cores; closed-loop clients wait "
            f"≈ clients / req/s on average ({little_ms:.0f} ms here)"
        )
    table.notes.extend(f"error: {sample}" for sample in result.error_samples)
    return table
