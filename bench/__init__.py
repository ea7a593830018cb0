"""Benchmarks of autoreduce on real services: ``python -m bench`` (``make bench``).

Each table has its own module: :mod:`bench.detection` (a: lastruns.txt written to run Queued),
:mod:`bench.throughput` (b: runs/s and per-run overhead of the queue processors),
:mod:`bench.celery_baseline` (c: the same workload through Celery 5), :mod:`bench.memory`
(d: resident memory of each service) and :mod:`bench.api_load` (e: the API under concurrent
clients). :mod:`bench.harness` starts real ``autoreduce`` processes on a fresh database and
stops every one of them, even on Ctrl-C. Benchmarks print their figures beside the targets;
they never assert a wall time.
"""
