"""The powder_diffraction plugin on a synthetic silicon run: a real scipp reduction."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import scipp as sc

from autoreduce.demo.nexus import SILICON_D_SPACINGS_ANGSTROM, write_powder_run
from autoreduce.plugin import ReductionContext, ReductionResult, RunInfo
from autoreduce.plugin_manager import Plugins
from autoreduce.variables import resolve_variables
from plugins import powder_diffraction
from tests.reductions import reduce_directly

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def silicon_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-sized synthetic WISH run of silicon."""
    return write_powder_run(
        tmp_path_factory.mktemp("archive") / "WISH00044733.nxs",
        instrument="WISH",
        run_number=44733,
        experiment_ref="1920123",
        title="Si standard",
        seed=7,
    )


def _reduce(data_path: Path, output_dir: Path, **values: Any) -> ReductionResult:
    run = RunInfo("WISH", 44733, 0, "1920123", data_path, "Si standard")
    return reduce_directly(powder_diffraction, run, output_dir, **values)


def _pattern(result: ReductionResult) -> npt.NDArray[np.float64]:
    """The focused pattern's columns d (Å), intensity, sigma."""
    (xye,) = [path for path in result.files if path.suffix == ".xye"]
    return np.loadtxt(xye, unpack=True)


@pytest.fixture(scope="module")
def default_reduction(
    silicon_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> ReductionResult:
    return _reduce(silicon_run, tmp_path_factory.mktemp("reduced"))


@pytest.mark.parametrize("expected_d", SILICON_D_SPACINGS_ANGSTROM)
def test_powder_peaks_land_at_their_d_spacings(
    default_reduction: ReductionResult, expected_d: float
) -> None:
    d, intensity, _ = _pattern(default_reduction)
    window = np.abs(d - expected_d) < 0.03 * expected_d

    peak_d = d[window][np.argmax(intensity[window])]

    assert peak_d == pytest.approx(expected_d, abs=0.006)
    assert intensity[window].max() > 10 * np.median(intensity)


def test_summary_names_events_bins_and_the_strongest_peak(
    default_reduction: ReductionResult,
) -> None:
    match = re.fullmatch(
        r"focused ([\d,]+) events into 1500 d-spacing bins; strongest peak at d = ([\d.]+) Å",
        default_reduction.summary,
    )

    assert match is not None
    assert 150_000 < int(match[1].replace(",", "")) <= 200_000
    assert float(match[2]) == pytest.approx(3.1355, abs=0.006)


def test_outputs_are_absolute_paths_inside_output_dir(default_reduction: ReductionResult) -> None:
    outputs = [*default_reduction.files, *default_reduction.plots]
    names = sorted(path.name for path in outputs)

    assert names == ["WISH44733_focused.h5", "WISH44733_focused.png", "WISH44733_focused.xye"]
    assert all(path.is_absolute() and path.is_file() for path in outputs)
    assert len({path.parent for path in outputs}) == 1


def test_plot_is_a_real_png(default_reduction: ReductionResult) -> None:
    (png,) = default_reduction.plots

    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 10_000


def test_xye_header_names_the_run_and_its_variables(default_reduction: ReductionResult) -> None:
    (xye,) = [path for path in default_reduction.files if path.suffix == ".xye"]
    header = [line for line in xye.read_text().splitlines() if line.startswith("#")]

    assert "WISH 44733 v0: Si standard" in header[0]
    assert any('"bins": 1500' in line for line in header)


def test_h5_output_is_the_focused_pattern(default_reduction: ReductionResult) -> None:
    (h5,) = [path for path in default_reduction.files if path.suffix == ".h5"]
    d, intensity, _ = _pattern(default_reduction)

    focused = sc.io.load_hdf5(h5)

    assert isinstance(focused, sc.DataArray)
    assert focused.sizes == {"dspacing": d.size}
    np.testing.assert_allclose(focused.values, intensity, rtol=1e-6)


def test_bins_variable_sets_the_pattern_length(silicon_run: Path, tmp_path: Path) -> None:
    result = _reduce(silicon_run, tmp_path, bins=200)

    d, _, _ = _pattern(result)

    assert d.size == 200


def test_d_range_variables_bound_the_pattern(silicon_run: Path, tmp_path: Path) -> None:
    result = _reduce(silicon_run, tmp_path, dspacing_min=1.5, dspacing_max=2.0, bins=500)

    d, intensity, _ = _pattern(result)

    assert d.min() > 1.5 and d.min() < d.max() < 2.0
    assert d[np.argmax(intensity)] == pytest.approx(1.9201, abs=0.006)


def test_rebin_log_gives_a_constant_relative_bin_width(silicon_run: Path, tmp_path: Path) -> None:
    result = _reduce(silicon_run, tmp_path, rebin_log=True, bins=300)

    d, _, _ = _pattern(result)
    relative_width = np.diff(d) / d[:-1]

    assert relative_width.max() == pytest.approx(relative_width.min(), rel=1e-3)


def test_monitor_normalisation_divides_by_the_monitor_counts(
    silicon_run: Path, tmp_path: Path
) -> None:
    with h5py.File(silicon_run) as nexus:
        monitor_counts = float(nexus["entry/instrument/monitor/data"][()].sum())

    _, raw, _ = _pattern(_reduce(silicon_run, tmp_path / "raw", normalise_by_monitor=False))
    _, normalised, _ = _pattern(_reduce(silicon_run, tmp_path / "normalised"))

    peak = np.argmax(raw)
    assert raw[peak] / normalised[peak] == pytest.approx(monitor_counts, rel=1e-5)


def test_plugin_manager_reduces_with_powder_diffraction(silicon_run: Path, tmp_path: Path) -> None:
    plugins = Plugins()
    context = ReductionContext(
        run=RunInfo("WISH", 44733, 1, "1920123", silicon_run),
        variables=resolve_variables(plugins.variables("powder_diffraction", "WISH"), {"bins": 100}),
        output_dir=tmp_path,
        logger=logging.getLogger("test.powder"),
    )

    result = plugins.reduce("powder_diffraction", context)

    assert "into 100 d-spacing bins" in result.summary


def test_progress_is_reported_up_to_one(silicon_run: Path, tmp_path: Path) -> None:
    reported: list[float] = []
    context = ReductionContext(
        run=RunInfo("WISH", 44733, 0, "1920123", silicon_run),
        variables=resolve_variables(powder_diffraction.reduction_variables("WISH"), {"bins": 50}),
        output_dir=tmp_path,
        logger=logging.getLogger("test.powder"),
        progress=reported.append,
    )

    powder_diffraction.reduce(context)

    assert reported == sorted(reported)
    assert reported[-1] == 1.0


def test_run_without_events_is_an_error_naming_the_file(tmp_path: Path) -> None:
    empty = write_powder_run(
        tmp_path / "WISH00000001.nxs",
        instrument="WISH",
        run_number=1,
        experiment_ref="1",
        title="beam off",
        n_events=0,
    )

    with pytest.raises(ValueError, match=f"no events in {re.escape(str(empty))}"):
        _reduce(empty, tmp_path / "out")


def test_d_range_without_events_says_so(silicon_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"none of the 200,000 events .* fall between d = 5.0"):
        _reduce(silicon_run, tmp_path, dspacing_min=5.0, dspacing_max=6.0)


def test_monitor_normalisation_without_a_monitor_says_so(silicon_run: Path, tmp_path: Path) -> None:
    no_monitor = tmp_path / "WISH00044734.nxs"
    no_monitor.write_bytes(silicon_run.read_bytes())
    with h5py.File(no_monitor, "a") as nexus:
        del nexus["entry/instrument/monitor"]

    with pytest.raises(ValueError, match="no NXmonitor"):
        _reduce(no_monitor, tmp_path / "out")
