"""The sans plugin on a synthetic Guinier scatterer: a real scipp reduction to I(Q)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from autoreduce.demo.nexus import SANS_RADIUS_OF_GYRATION_ANGSTROM, write_sans_run
from autoreduce.plugin import ReductionContext, ReductionResult, RunInfo
from autoreduce.plugin_manager import Plugins
from autoreduce.variables import resolve_variables
from plugins import sans
from tests.reductions import reduce_directly

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def guinier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-sized synthetic SANS2D run of particles with Rg = 50 Å."""
    return write_sans_run(
        tmp_path_factory.mktemp("archive") / "SANS2D00012345.nxs",
        instrument="SANS2D",
        run_number=12345,
        experiment_ref="1920123",
        title="polymer in D2O",
        seed=11,
    )


def _reduce(data_path: Path, output_dir: Path, **values: Any) -> ReductionResult:
    run = RunInfo("SANS2D", 12345, 0, "1920123", data_path, "polymer in D2O")
    return reduce_directly(sans, run, output_dir, **values)


def _iq(result: ReductionResult) -> npt.NDArray[np.float64]:
    """I(Q)'s columns Q (1/Å), I, sigma."""
    (xye,) = result.files
    return np.loadtxt(xye, unpack=True)


def _fitted_rg(q: npt.NDArray[np.float64], intensity: npt.NDArray[np.float64]) -> float:
    """Rg (Å) from a straight line through ln I against Q², where Q · Rg(expected) < 1."""
    guinier_region = (q * SANS_RADIUS_OF_GYRATION_ANGSTROM < 1.0) & (intensity > 0)
    slope, _ = np.polyfit(q[guinier_region] ** 2, np.log(intensity[guinier_region]), 1)
    return float(np.sqrt(-3.0 * slope))


@pytest.fixture(scope="module")
def default_reduction(
    guinier_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> ReductionResult:
    return _reduce(guinier_run, tmp_path_factory.mktemp("reduced"))


def test_sans_intensity_follows_the_guinier_law_of_the_sample(
    default_reduction: ReductionResult,
) -> None:
    q, intensity, _ = _iq(default_reduction)

    assert _fitted_rg(q, intensity) == pytest.approx(SANS_RADIUS_OF_GYRATION_ANGSTROM, rel=0.1)


def test_sans_intensity_falls_by_orders_of_magnitude_past_the_guinier_region(
    default_reduction: ReductionResult,
) -> None:
    q, intensity, _ = _iq(default_reduction)

    def near(q_value: float) -> float:
        return float(intensity[np.argmin(np.abs(q - q_value))])

    assert near(0.01) > near(0.03) > near(0.06) > near(0.08)
    assert near(0.01) > 100 * near(0.08)


def test_summary_gives_q_range_events_and_guinier_rg(default_reduction: ReductionResult) -> None:
    match = re.fullmatch(
        r"I\(Q\) over Q = ([\d.]+) to ([\d.]+) Å⁻¹ in (\d+) of 100 bins from ([\d,]+) events; "
        r"Guinier Rg ≈ ([\d.]+) Å",
        default_reduction.summary,
    )

    assert match is not None
    assert float(match[1]) >= 0.005
    assert float(match[2]) <= 0.5
    assert 150_000 < int(match[4].replace(",", "")) <= 200_000
    assert float(match[5]) == pytest.approx(SANS_RADIUS_OF_GYRATION_ANGSTROM, rel=0.1)


def test_outputs_are_an_xye_and_a_real_png_inside_output_dir(
    default_reduction: ReductionResult,
) -> None:
    (xye,) = default_reduction.files
    (png,) = default_reduction.plots

    assert (xye.name, png.name) == ("SANS2D12345_iq.xye", "SANS2D12345_iq.png")
    assert xye.parent == png.parent
    assert png.is_absolute()
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 10_000


def test_q_variables_set_range_and_bin_count(guinier_run: Path, tmp_path: Path) -> None:
    result = _reduce(guinier_run, tmp_path, q_min=0.01, q_max=0.2, q_bins=30, log_q_binning=False)

    q, _, _ = _iq(result)

    assert q.size == 30
    assert 0.01 < q.min() < q.max() < 0.2
    np.testing.assert_allclose(np.diff(q), np.diff(q)[0], rtol=1e-4)


def test_log_q_binning_gives_a_constant_relative_bin_width(
    default_reduction: ReductionResult,
) -> None:
    q, _, _ = _iq(default_reduction)

    ratios = q[1:] / q[:-1]

    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)


def test_guinier_law_holds_in_a_narrow_wavelength_band(guinier_run: Path, tmp_path: Path) -> None:
    result = _reduce(guinier_run, tmp_path, wavelength_min=4.0, wavelength_max=8.0)

    q, intensity, _ = _iq(result)

    assert _fitted_rg(q, intensity) == pytest.approx(SANS_RADIUS_OF_GYRATION_ANGSTROM, rel=0.1)
    assert "from 200,000 events" not in result.summary


def test_transmission_scales_the_intensity(guinier_run: Path, tmp_path: Path) -> None:
    _, full, _ = _iq(_reduce(guinier_run, tmp_path / "full"))
    _, half, _ = _iq(_reduce(guinier_run, tmp_path / "half", transmission=0.5))

    np.testing.assert_allclose(half, 2 * full, rtol=1e-6)


def test_plugin_manager_reduces_with_sans(guinier_run: Path, tmp_path: Path) -> None:
    plugins = Plugins()
    context = ReductionContext(
        run=RunInfo("SANS2D", 12345, 2, "1920123", guinier_run),
        variables=resolve_variables(
            plugins.variables("sans", "SANS2D"), {"q_bins": 20, "q_max": 0.3}
        ),
        output_dir=tmp_path,
        logger=logging.getLogger("test.sans"),
    )

    result = plugins.reduce("sans", context)

    assert " in 20 bins " in result.summary


def test_run_without_events_is_an_error_naming_the_file(tmp_path: Path) -> None:
    empty = write_sans_run(
        tmp_path / "SANS2D00000001.nxs",
        instrument="SANS2D",
        run_number=1,
        experiment_ref="1",
        title="beam off",
        n_events=0,
    )

    with pytest.raises(ValueError, match=f"no events in {re.escape(str(empty))}"):
        _reduce(empty, tmp_path / "out")


def test_q_range_the_detector_cannot_see_says_so(guinier_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="none of the 200,000 events"):
        _reduce(guinier_run, tmp_path, q_min=2.0, q_max=3.0)
