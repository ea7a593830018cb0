"""Table (d): resident memory (RSS, MiB) of each service, idle and under load, via psutil.

A service's figure is its own RSS plus that of every descendant (a processor's fork server and
ready child). Forked children share most pages with their parent copy-on-write, so the sum
overstates what the family really costs; it is the figure an operator's ``ps`` would add up.
The idle PSS column is the fair one: each shared page divided among the processes mapping it
(``/proc/<pid>/smaps_rollup``). See docs/memory.md.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from bench.report import MIB, Table

SAMPLE_INTERVAL_S = 0.05


def _tree_mb(pid: int, measure: Callable[[psutil.Process], int]) -> float:
    """``measure`` summed over ``pid`` and all its descendants, MiB; 0 if it is gone."""
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for member in members:
        try:
            total += measure(member)
        except psutil.Error:
            continue  # a reduction child that just exited
    return total / MIB


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and all its descendants, MiB; 0 if it is gone."""
    return _tree_mb(pid, lambda member: member.memory_info().rss)


def tree_pss_mb(pid: int) -> float:
    """PSS of ``pid`` and all its descendants (shared pages counted fairly), MiB; 0 if gone."""
    return _tree_mb(pid, lambda member: member.memory_full_info().pss)


def settle(pids: dict[str, int], descendants: int, timeout_s: float = 10.0) -> None:
    """Wait until each service has at most ``descendants`` (an idle processor lets its ready
    child go after a receive wait with nothing to do); go on regardless at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            counts = [len(psutil.Process(pid).children(recursive=True)) for pid in pids.values()]
        except psutil.Error:
            return
        if max(counts, default=0) <= descendants:
            return
        time.sleep(SAMPLE_INTERVAL_S)


def idle_rss_mb(pids: dict[str, int], duration_s: float = 0.5) -> dict[str, float]:
    """The median RSS of each service over ``duration_s`` of sampling."""
    samples: dict[str, list[float]] = {name: [] for name in pids}
    deadline = time.monotonic() + duration_s
    while True:
        for name, pid in pids.items():
            samples[name].append(tree_rss_mb(pid))
        if time.monotonic() >= deadline:
            break
        time.sleep(SAMPLE_INTERVAL_S)
    return {name: statistics.median(values) for name, values in samples.items()}


class PeakRss:
    """Sample services in a background thread while the ``with`` block runs; peak MiB each."""

    def __init__(self, pids: dict[str, int], interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.peaks_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peaks_mb[name] = max(self.peaks_mb[name], tree_rss_mb(pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class MemoryRow:
    service: str
    configuration: str
    idle_mb: float
    load_mb: float
    load: str  # what "under load" was
    idle_pss_mb: float | None = None


MEMORY_TARGETS = {"api": "< 100 MiB", "process": "< 80 MiB (noop)"}
"""Issue 14 §3's idle targets, by service kind (``process-1`` → ``process``)."""


def memory_table(rows: list[MemoryRow]) -> Table:
    table = Table(
        "(d) Resident memory per service (RSS incl. children, MiB)",
        ["service", "configuration", "idle MiB", "idle PSS MiB", "idle target", "under load MiB",
         "load"],
    )  # fmt: skip
    for row in rows:
        target = MEMORY_TARGETS.get(row.service.split("-")[0], "")
        table.add(
            row.service,
            row.configuration,
            row.idle_mb,
            row.idle_pss_mb,
            target,
            row.load_mb,
            row.load,
        )
    table.notes.append(
        "idle: median over 0.5 s with nothing to do (a processor: once it let its ready child "
        "go), before the API's first metadata read; under load: peak of 50 ms samples. "
        "A figure adds every descendant's RSS (fork server, children: pages shared "
        "copy-on-write); idle PSS shares those pages fairly. Targets: API < 100, a noop "
        "processor < 80 (issue 14 §3)."
    )
    return table
