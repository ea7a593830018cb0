"""``python -m bench [--quick] [--only a,b,c,d,e,f] [--runs N]``: print the benchmark tables.

(a) lastruns.txt written → run Queued; (b) throughput and orchestration overhead per
configuration; (c) the same workload through Celery; (d) memory per service; (e) the API under
20 concurrent clients; (f) the pages and API reads at a facility's history; (g) object store
MiB/s (SeaweedFS). Everything runs on
real services (MariaDB, RabbitMQ, and ActiveMQ / RabbitMQ STOMP when the STOMP transport
exists) with a fresh database each, and stops every process it starts, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType

from bench import api_load, celery_baseline, detection, object_store, scale, throughput
from bench.brokers import CONFIGS
from bench.harness import MYSQL_SERVER, one_line
from bench.memory import MemoryRow, memory_table
from bench.report import Table, machine_table

TABLES = ("a", "b", "c", "d", "e", "f", "g")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 2 minutes)")
    parser.add_argument("--only", default=",".join(TABLES), help="tables to run, e.g. a,c")
    parser.add_argument("--runs", type=int, help="runs per workload of (b) and (c)")
    parser.add_argument("--writes", type=int, help="lastruns.txt writes of (a)")
    parser.add_argument("--requests", type=int, help="HTTP requests of (e), all clients")
    parser.add_argument("--scale", type=int, help="run versions loaded for (f)")
    args = parser.parse_args(argv)
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    if not args.only <= set(TABLES):
        parser.error(f"--only takes a subset of {','.join(TABLES)}")
    args.runs = args.runs or (100 if args.quick else 500)
    args.writes = args.writes or (30 if args.quick else 100)
    args.requests = args.requests or (1000 if args.quick else 2000)
    if args.scale is None:
        args.scale = 100_000 if args.quick else 1_000_000
    elif args.scale < 1:
        parser.error("--scale takes a positive number of run versions")
    return args


def _show(table: Table, started: float) -> None:
    print(table.render())
    print(f"  ({time.monotonic() - started:.0f} s)\n", flush=True)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _failed(label: str, error: Exception) -> None:
    print(f"{label} failed: {one_line(error)}\n", flush=True)


def run(args: argparse.Namespace) -> None:
    began = time.monotonic()
    command = " ".join(["python -m bench", *sys.argv[1:]])
    print(f"autoreduce benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {command}\n")
    print(machine_table(MYSQL_SERVER).render() + "\n", flush=True)
    memory: list[MemoryRow] = []
    if args.only & {"a", "d"}:
        started = time.monotonic()
        try:
            detected = detection.measure(runs=args.writes)
        except Exception as error:  # every other table still runs
            _failed("(a)", error)
        else:
            memory += detected.memory
            if "a" in args.only:
                _show(detection.detection_table(detected), started)
    ours: list[throughput.ThroughputResult] = []
    if "b" in args.only:
        started = time.monotonic()
        ours = throughput.measure(runs=args.runs)
        _show(throughput.throughput_table(ours), started)
    elif args.only & {"c", "d"}:
        started = time.monotonic()  # (c) compares with, and (d) samples, 2 processors
        ours = throughput.measure(runs=args.runs, processor_counts=(2,), configs=CONFIGS[1:2])
        _show(throughput.throughput_table(ours), started)
    if "c" in args.only:
        started = time.monotonic()
        celery = celery_baseline.measure(tasks=args.runs)
        _show(celery_baseline.celery_table(celery, ours), started)
    if "d" in args.only:
        memory += [m for r in ours if r.processors == 2 for m in r.memory]
        _show(memory_table(memory), time.monotonic())
    if "e" in args.only:
        started = time.monotonic()
        try:
            loaded = api_load.measure(requests_total=args.requests)
        except Exception as error:  # report it like (a): the other tables already printed
            _failed("(e)", error)
        else:
            _show(api_load.api_load_table(loaded), started)
    if "f" in args.only:
        started = time.monotonic()
        _show(scale.scale_table(scale.measure(args.scale)), started)
    if "g" in args.only:
        started = time.monotonic()
        try:
            stored = object_store.measure(quick=args.quick)
        except Exception as error:
            _failed("(g)", error)
        else:
            _show(object_store.object_store_table(stored), started)
    print(f"total {time.monotonic() - began:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job ignores it
        signal.signal(sig, _interrupt)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the benchmarks started has been stopped", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
