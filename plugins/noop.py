"""The ``noop`` plugin: sleeps, then writes two small files, or fails on purpose.

Used by benchmarks (``sleep_s`` stands in for a reduction's run time), by fault tests
(``fault`` makes the reduction raise, hang, exhaust memory, crash or exit) and by live-log tests
(``log_lines`` numbered lines spread over the sleep). With ``plot`` it also draws a small SVG
plot (for the web UI's tests), still without matplotlib. Imports nothing heavy.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import time

from autoreduce.plugin import ReductionContext, ReductionResult, RunInfo, Variable, hookimpl

FAULTS = ("none", "raise", "hang", "memory", "segfault", "exit")
MEMORY_CHUNK_BYTES = 64 * 1024 * 1024
HOLD_CHUNK_BYTES = 16 * 1024 * 1024
MAX_LOG_LINES = 100_000


@hookimpl
def reduction_variables(instrument: str) -> list[Variable]:
    """The same variables for every instrument: ``sleep_s``, ``fault`` and ``log_lines``."""
    return [
        Variable(
            "sleep_s",
            "float",
            0.0,
            "Seconds to sleep before finishing, standing in for a reduction's run time.",
            minimum=0.0,
        ),
        Variable(
            "fault",
            "str",
            "none",
            "Fail on purpose after sleeping: raise an exception, hang forever, allocate memory "
            "until killed, crash with a segmentation fault, or exit with status 3.",
            advanced=True,
            choices=FAULTS,
        ),
        Variable(
            "log_lines",
            "int",
            0,
            "Log this many numbered lines, spread evenly over the sleep (a log that grows).",
            advanced=True,
            minimum=0,
            maximum=MAX_LOG_LINES,
        ),
        Variable(
            "hold_mb",
            "int",
            0,
            "Hold this many MiB (written, 16 MiB at a time) from before the sleep to the end, "
            "standing in for a reduction's memory: over its limit it is killed for memory.",
            advanced=True,
            minimum=0,
            maximum=65536,
        ),
        Variable(
            "plot",
            "bool",
            False,
            "Also draw noop.svg, a small plot of a curve shaped by the run number.",
            advanced=True,
        ),
    ]


def _write_plot(path: os.PathLike[str], run: RunInfo) -> None:
    """A 320 by 160 pixel SVG: a damped sine whose frequency follows the run number."""
    frequency = 1 + run.run_number % 7
    points = " ".join(
        f"{10 + x * 3},{80 - 60 * math.exp(-x / 60) * math.sin(x * frequency / 10):.1f}"
        for x in range(101)
    )
    label = f"{run.instrument} {run.run_number} v{run.run_version}"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="160" viewBox="0 0 320 160">'
        '<rect width="320" height="160" fill="white"/>'
        '<line x1="10" y1="80" x2="310" y2="80" stroke="#888"/>'
        f'<polyline fill="none" stroke="#1f4e79" stroke-width="2" points="{points}"/>'
        f'<text x="10" y="154" font-family="sans-serif" font-size="12">{label}</text></svg>\n'
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(svg)


def _fail(fault: str, run: RunInfo) -> None:
    if fault == "raise":  # the run number in the message, as real errors name their input
        raise RuntimeError(f"noop was asked to fail on run {run.run_number}")
    if fault == "hang":
        while True:
            time.sleep(60)
    if fault == "memory":
        hoard: list[bytearray] = []
        while True:  # grows until the memory limit kills the process or MemoryError is raised
            hoard.append(bytearray(MEMORY_CHUNK_BYTES))
    if fault == "segfault":
        ctypes.string_at(0)
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "exit":
        os._exit(3)


def _sleep_logging(context: ReductionContext, sleep_s: float, log_lines: int) -> None:
    """Sleep ``sleep_s`` seconds in total, logging ``log_lines`` numbered lines evenly over it."""
    if log_lines <= 0:
        time.sleep(sleep_s)
        return
    for number in range(1, log_lines + 1):
        time.sleep(sleep_s / log_lines)
        context.logger.info("noop: line %d of %d", number, log_lines)


@hookimpl
def reduce(context: ReductionContext) -> ReductionResult:
    """Sleep ``sleep_s`` seconds, apply ``fault``, then write ``noop.txt`` with the run number
    and ``variables.json`` with the values the reduction was given (so a re-run shows them)."""
    sleep_s = float(context.variables.get("sleep_s", 0.0))
    fault = str(context.variables.get("fault", "none"))
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    log_lines = int(context.variables.get("log_lines", 0))
    context.logger.info("noop: sleeping %s s, fault %s", sleep_s, fault)
    held = [
        b"\x01" * HOLD_CHUNK_BYTES for _ in range(int(context.variables.get("hold_mb", 0)) // 16)
    ]
    context.logger.info("noop: holding %d MiB", 16 * len(held))
    _sleep_logging(context, sleep_s, log_lines)
    _fail(fault, context.run)
    output = context.output_dir / "noop.txt"
    output.write_text(f"{context.run.run_number}\n", encoding="utf-8")
    values = context.output_dir / "variables.json"
    values.write_text(json.dumps(context.variables, sort_keys=True) + "\n", encoding="utf-8")
    plots = []
    if context.variables.get("plot"):
        _write_plot(context.output_dir / "noop.svg", context.run)
        plots.append((context.output_dir / "noop.svg").resolve())
    context.progress(1.0)
    del held
    return ReductionResult(
        files=[output.resolve(), values.resolve()], plots=plots, summary=f"slept {sleep_s} s"
    )
