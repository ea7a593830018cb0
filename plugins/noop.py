"""The ``noop`` plugin: sleeps, then writes two small files, or fails on purpose.

Used by benchmarks (``sleep_s`` stands in for a reduction's run time) and by fault tests
(``fault`` makes the reduction raise, hang, exhaust memory, crash or exit). Imports nothing heavy.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time

from autoreduce.plugin import ReductionContext, ReductionResult, Variable, hookimpl

FAULTS = ("none", "raise", "hang", "memory", "segfault", "exit")
MEMORY_CHUNK_BYTES = 64 * 1024 * 1024


@hookimpl
def reduction_variables(instrument: str) -> list[Variable]:
    """The same two variables for every instrument: ``sleep_s`` and the advanced ``fault``."""
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
    ]


def _fail(fault: str) -> None:
    if fault == "raise":
        raise RuntimeError("noop was asked to fail")
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


@hookimpl
def reduce(context: ReductionContext) -> ReductionResult:
    """Sleep ``sleep_s`` seconds, apply ``fault``, then write ``noop.txt`` with the run number
    and ``variables.json`` with the values the reduction was given (so a re-run shows them)."""
    sleep_s = float(context.variables.get("sleep_s", 0.0))
    fault = str(context.variables.get("fault", "none"))
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    context.logger.info("noop: sleeping %s s, fault %s", sleep_s, fault)
    time.sleep(sleep_s)
    _fail(fault)
    output = context.output_dir / "noop.txt"
    output.write_text(f"{context.run.run_number}\n", encoding="utf-8")
    values = context.output_dir / "variables.json"
    values.write_text(json.dumps(context.variables, sort_keys=True) + "\n", encoding="utf-8")
    context.progress(1.0)
    return ReductionResult(files=[output.resolve(), values.resolve()], summary=f"slept {sleep_s} s")
