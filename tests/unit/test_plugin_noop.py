"""The noop plugin: a cheap reduction for benchmarks and a source of faults on demand."""

from __future__ import annotations

import faulthandler
import json
import logging
import multiprocessing
import os
import resource
import signal
from pathlib import Path
from typing import Any

import pytest

from autoreduce.plugin import ReductionContext, RunInfo
from autoreduce.plugin_manager import Plugins
from autoreduce.variables import VariableError, resolve_variables
from plugins import noop


def _context(
    output_dir: Path, progress: list[float] | None = None, **values: Any
) -> ReductionContext:
    variables = resolve_variables(noop.reduction_variables("BENCH"), values)
    reported = progress if progress is not None else []
    return ReductionContext(
        run=RunInfo("BENCH", 1234, 0, "1920123", output_dir / "BENCH00001234.nxs"),
        variables=variables,
        output_dir=output_dir,
        logger=logging.getLogger("test.noop"),
        progress=reported.append,
    )


def _exit_code_of_reduce_in_child(
    output_dir: Path, memory_limit_bytes: int | None = None, **values: Any
) -> int:
    """Run noop's reduce in a forked child; its exit code (42 when it raised MemoryError)."""

    def child() -> None:
        faulthandler.disable()  # pytest's handler would print the crash's traceback
        if memory_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
        try:
            noop.reduce(_context(output_dir, **values))
        except MemoryError:
            os._exit(42)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
        process.join()
    assert process.exitcode is not None
    return process.exitcode


def _virtual_memory_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def test_variables_are_sleep_s_and_an_advanced_fault() -> None:
    variables = {variable.name: variable for variable in noop.reduction_variables("BENCH")}

    assert variables["sleep_s"].type == "float"
    assert variables["sleep_s"].default == 0
    assert variables["sleep_s"].minimum == 0
    assert variables["sleep_s"].help
    assert variables["fault"].advanced
    assert variables["fault"].default == "none"
    assert set(variables["fault"].choices or ()) == {
        "none",
        "raise",
        "hang",
        "memory",
        "segfault",
        "exit",
    }


def test_negative_sleep_is_rejected_by_its_declaration() -> None:
    with pytest.raises(VariableError, match="sleep_s"):
        resolve_variables(noop.reduction_variables("BENCH"), {"sleep_s": -1.0})


def test_reduce_writes_the_run_number_and_its_variables_inside_output_dir(tmp_path: Path) -> None:
    progress: list[float] = []

    result = noop.reduce(_context(tmp_path, progress))

    assert result.files == [tmp_path.resolve() / "noop.txt", tmp_path.resolve() / "variables.json"]
    assert result.files[0].read_text().strip() == "1234"
    assert json.loads(result.files[1].read_text()) == {
        "sleep_s": 0.0,
        "fault": "none",
        "log_lines": 0,
        "hold_mb": 0,
        "plot": False,
    }
    assert result.summary == "slept 0.0 s"
    assert progress[-1] == 1.0


def test_summary_names_the_sleep_asked_for(tmp_path: Path) -> None:
    result = noop.reduce(_context(tmp_path, sleep_s=0.01))

    assert result.summary == "slept 0.01 s"


def test_fault_raise_raises_a_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="noop was asked to fail"):
        noop.reduce(_context(tmp_path, fault="raise"))
    assert not (tmp_path / "noop.txt").exists()


def test_fault_exit_ends_the_process_with_status_3(tmp_path: Path) -> None:
    assert _exit_code_of_reduce_in_child(tmp_path, fault="exit") == 3


def test_fault_segfault_kills_the_process_with_sigsegv(tmp_path: Path) -> None:
    assert _exit_code_of_reduce_in_child(tmp_path, fault="segfault") == -signal.SIGSEGV


def test_fault_memory_grows_until_memory_error_is_let_through(tmp_path: Path) -> None:
    limit = _virtual_memory_bytes() + 512 * 1024 * 1024

    assert _exit_code_of_reduce_in_child(tmp_path, memory_limit_bytes=limit, fault="memory") == 42


def test_fault_hang_never_finishes(tmp_path: Path) -> None:
    process = multiprocessing.get_context("fork").Process(
        target=noop.reduce, args=(_context(tmp_path, fault="hang"),)
    )
    process.start()
    try:
        process.join(timeout=0.5)

        assert process.is_alive()
    finally:
        process.kill()
        process.join()
    assert not (tmp_path / "noop.txt").exists()


def test_plugin_manager_finds_the_three_built_in_plugins() -> None:
    names = Plugins().names()

    assert {"noop", "powder_diffraction", "sans"} <= set(names)


def test_plugin_manager_reduces_with_noop(tmp_path: Path) -> None:
    plugins = Plugins()
    variables = resolve_variables(plugins.variables("noop", "BENCH"), {"sleep_s": 0})
    context = _context(tmp_path)
    context.variables = variables

    result = plugins.reduce("noop", context)

    assert result.summary == "slept 0.0 s"


def test_log_lines_logs_that_many_numbered_lines_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="test.noop")

    noop.reduce(_context(tmp_path, log_lines=3, sleep_s=0.03))

    numbered = [r.getMessage() for r in caplog.records if r.getMessage().startswith("noop: line")]
    assert numbered == ["noop: line 1 of 3", "noop: line 2 of 3", "noop: line 3 of 3"]


def test_log_lines_is_an_advanced_count_from_zero() -> None:
    variables = {variable.name: variable for variable in noop.reduction_variables("BENCH")}

    assert variables["log_lines"].type == "int"
    assert variables["log_lines"].default == 0
    assert variables["log_lines"].minimum == 0
    assert variables["log_lines"].advanced


def test_plot_draws_an_svg_plot_listed_among_the_plots(tmp_path: Path) -> None:
    result = noop.reduce(_context(tmp_path, plot=True))
    assert result.plots == [tmp_path.resolve() / "noop.svg"]
    assert (tmp_path / "noop.svg").read_text().startswith("<svg ")
