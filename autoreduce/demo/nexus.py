"""Write synthetic NeXus event files that the built-in plugins reduce into known answers.

Both kinds share one layout, chosen so that scippnexus loads it without help::

    /entry                     NXentry: title, experiment_identifier, run_number, start/end_time
      instrument               NXinstrument: name
        source                 NXsource, depends_on a translation of L1 along -z
        detector               NXdetector: detector_number (1-D), x/y/z_pixel_offset (absolute
                               pixel positions in m), depends_on a zero translation, and
          events               NXevent_data: event_id, event_time_offset (µs, float32),
                               event_time_zero (ns since the ``offset`` attribute), event_index
        monitor                NXmonitor upstream of the sample: ``data`` (counts) histogrammed
                               over ``time_of_flight`` bin edges (µs)
      sample                   NXsample at the origin (zero translation)

The source pulses at 10 Hz (a 100 ms frame, as on ISIS target station 2), so every event's
``event_time_offset`` is its time of flight from the source. Events are drawn so that

- powder: each pixel sees silicon Bragg peaks at :data:`SILICON_D_SPACINGS_ANGSTROM` (Gaussian,
  relative width :data:`POWDER_RELATIVE_WIDTH`) on a flat background in d-spacing;
- SANS: counts follow flux(λ) · solid angle · I(Q), with I(Q) the Guinier law
  ``exp(-Q² Rg² / 3)`` (Rg = :data:`SANS_RADIUS_OF_GYRATION_ANGSTROM`) plus a flat background,
  and the monitor records the same flux(λ), so a monitor-normalised I(Q) recovers the law.

Runs are deterministic given ``seed`` and are written atomically (temporary name, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt
import scipp.constants

NeutronRunKind = Literal["powder", "sans"]

#: Time of flight per Å of wavelength per metre of flight path, in µs (m_n / h, ≈ 252.78):
#: the same constants scippneutron converts with, so the reduction lands exactly on the peaks.
TOF_US_PER_ANGSTROM_METRE: float = (
    (scipp.constants.m_n / scipp.constants.h).to(unit="us/(angstrom*m)").value
)
PULSE_PERIOD_NS = 100_000_000
START_TIME = "2026-11-24T06:00:00Z"

SILICON_D_SPACINGS_ANGSTROM = (3.1355, 1.9201, 1.6375, 1.3577, 1.2459, 1.1086)
SILICON_RELATIVE_INTENSITIES = (100.0, 60.0, 35.0, 9.0, 13.0, 17.0)
POWDER_RELATIVE_WIDTH = 0.0025
POWDER_BACKGROUND_FRACTION = 0.15
POWDER_BANK_TWO_THETA_DEG = (30.0, 60.0, 90.0, 150.0)
POWDER_L1_M = 17.0
POWDER_L2_M = 1.5

SANS_RADIUS_OF_GYRATION_ANGSTROM = 50.0
SANS_BACKGROUND_RELATIVE = 0.002
SANS_L1_M = 11.0
SANS_L2_M = 4.0
SANS_PIXELS_PER_SIDE = 64
SANS_PIXEL_PITCH_M = 0.005
SANS_WAVELENGTH_RANGE_ANGSTROM = (1.0, 10.0)

MONITOR_Z_M = -2.0
MONITOR_TOF_EDGES_US = np.linspace(0.0, 100_000.0, 2001)


def _flux(wavelength_angstrom: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Relative incident flux per Å: a broad moderator spectrum peaking near 3 Å."""
    return np.asarray(np.exp(-0.5 * ((wavelength_angstrom - 3.0) / 2.5) ** 2))


def _draw_wavelengths(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Draw ``n`` wavelengths (Å) from :func:`_flux` on the SANS/monitor wavelength range."""
    low, high = SANS_WAVELENGTH_RANGE_ANGSTROM
    drawn: list[npt.NDArray[np.float64]] = [np.empty(0)]
    count = 0
    while count < n:
        candidates = rng.uniform(low, high, size=2 * n)
        kept = candidates[rng.uniform(size=candidates.size) < _flux(candidates)]
        drawn.append(kept)
        count += kept.size
    return np.concatenate(drawn)[:n]


@contextmanager
def _atomic_nexus_file(path: Path) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file beside ``path``; rename it onto ``path`` once written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as nexus:
            nexus.attrs["NX_class"] = "NXroot"
            yield nexus
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _dataset(
    parent: h5py.Group, name: str, values: Any, units: str | None = None, **options: Any
) -> h5py.Dataset:
    dataset = parent.create_dataset(name, data=values, **options)
    if units is not None:
        dataset.attrs["units"] = units
    return dataset


def _place_along_z(component: h5py.Group, distance_m: float) -> None:
    """Give ``component`` a ``depends_on`` chain: one translation of ``distance_m`` along z."""
    transformations = _group(component, "transformations", "NXtransformations")
    location = _dataset(transformations, "location", distance_m, units="m")
    location.attrs["transformation_type"] = "translation"
    location.attrs["vector"] = [0.0, 0.0, 1.0]
    location.attrs["depends_on"] = "."
    component["depends_on"] = f"{transformations.name}/location"


def _write_entry(
    nexus: h5py.File, *, instrument: str, run_number: int, experiment_ref: str, title: str
) -> tuple[h5py.Group, h5py.Group]:
    entry = _group(nexus, "entry", "NXentry")
    entry["title"] = title
    entry["experiment_identifier"] = experiment_ref
    entry["run_number"] = np.int64(run_number)
    entry["start_time"] = START_TIME
    entry["end_time"] = START_TIME
    entry["definition"] = "NXtofraw"
    instrument_group = _group(entry, "instrument", "NXinstrument")
    instrument_group["name"] = instrument
    sample = _group(entry, "sample", "NXsample")
    sample["name"] = title
    _place_along_z(sample, 0.0)
    return entry, instrument_group


def _write_source(instrument_group: h5py.Group, l1_m: float) -> None:
    source = _group(instrument_group, "source", "NXsource")
    source["name"] = "synthetic spallation source"
    source["probe"] = "neutron"
    _place_along_z(source, -l1_m)


def _write_monitor(
    instrument_group: h5py.Group, rng: np.random.Generator, l1_m: float, n_counts: int
) -> None:
    """An upstream monitor that saw ``n_counts`` neutrons drawn from the incident flux."""
    flight_path_m = l1_m + MONITOR_Z_M
    tof_us = _draw_wavelengths(rng, n_counts) * TOF_US_PER_ANGSTROM_METRE * flight_path_m
    counts, _ = np.histogram(tof_us, bins=MONITOR_TOF_EDGES_US)
    monitor = _group(instrument_group, "monitor", "NXmonitor")
    monitor.attrs["signal"] = "data"
    monitor.attrs["axes"] = ["time_of_flight"]
    _dataset(monitor, "data", counts.astype(np.int32), units="counts", compression="gzip")
    _dataset(monitor, "time_of_flight", MONITOR_TOF_EDGES_US, units="us")
    _place_along_z(monitor, MONITOR_Z_M)


def _write_detector(
    instrument_group: h5py.Group,
    rng: np.random.Generator,
    pixel_positions_m: npt.NDArray[np.float64],
    pixel_index: npt.NDArray[np.int64],
    tof_us: npt.NDArray[np.float64],
) -> None:
    """A detector whose pixels sit at ``pixel_positions_m``; one event per (pixel, tof) pair."""
    detector = _group(instrument_group, "detector", "NXdetector")
    detector_number = np.arange(1, len(pixel_positions_m) + 1, dtype=np.int32)
    _dataset(detector, "detector_number", detector_number)
    for axis, name in enumerate(("x_pixel_offset", "y_pixel_offset", "z_pixel_offset")):
        _dataset(detector, name, pixel_positions_m[:, axis], units="m")
    _place_along_z(detector, 0.0)

    n_pulses = 100
    pulse = np.sort(rng.integers(0, n_pulses, size=tof_us.size))
    events = _group(detector, "events", "NXevent_data")
    compressed: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    event_id = detector_number[pixel_index]
    _dataset(events, "event_id", event_id, **compressed)
    _dataset(events, "event_time_offset", tof_us.astype(np.float32), "us", **compressed)
    pulse_times_ns = np.arange(n_pulses, dtype=np.int64) * PULSE_PERIOD_NS
    time_zero = _dataset(events, "event_time_zero", pulse_times_ns, units="ns")
    time_zero.attrs["offset"] = START_TIME
    event_index = np.searchsorted(pulse, np.arange(n_pulses)).astype(np.int64)
    _dataset(events, "event_index", event_index)


def _powder_pixels() -> npt.NDArray[np.float64]:
    """Positions (m) of 4 banks of 16 x 16 pixels (2 cm pitch) facing the sample at 2θ."""
    offsets = (np.arange(16) - 7.5) * 0.02
    across, up = np.meshgrid(offsets, offsets, indexing="ij")
    banks = []
    for two_theta_deg in POWDER_BANK_TWO_THETA_DEG:
        two_theta = np.deg2rad(two_theta_deg)
        centre = POWDER_L2_M * np.array([np.sin(two_theta), 0.0, np.cos(two_theta)])
        horizontal = np.array([np.cos(two_theta), 0.0, -np.sin(two_theta)])
        vertical = np.array([0.0, 1.0, 0.0])
        bank = centre + across.reshape(-1, 1) * horizontal + up.reshape(-1, 1) * vertical
        banks.append(bank)
    return np.concatenate(banks)


def write_powder_run(
    path: Path,
    *,
    instrument: str,
    run_number: int,
    experiment_ref: str,
    title: str,
    n_events: int = 200_000,
    seed: int | None = None,
) -> Path:
    """Write a powder-diffraction run of silicon: ``n_events`` events on 1,024 pixels.

    Bragg peaks sit at :data:`SILICON_D_SPACINGS_ANGSTROM` (Å) in every pixel, over a flat
    background between 0.3 and 4.0 Å; L1 = 17 m, L2 = 1.5 m, banks at 2θ = 30°, 60°, 90°, 150°.
    Returns ``path``.
    """
    rng = np.random.default_rng(seed)
    pixels = _powder_pixels()
    pixel_index = rng.integers(0, len(pixels), size=n_events)
    is_background = rng.uniform(size=n_events) < POWDER_BACKGROUND_FRACTION
    weights = np.asarray(SILICON_RELATIVE_INTENSITIES) / sum(SILICON_RELATIVE_INTENSITIES)
    peak = rng.choice(len(SILICON_D_SPACINGS_ANGSTROM), size=n_events, p=weights)
    peak_d = np.asarray(SILICON_D_SPACINGS_ANGSTROM)[peak]
    d_angstrom = np.where(
        is_background,
        rng.uniform(0.3, 4.0, size=n_events),
        rng.normal(peak_d, POWDER_RELATIVE_WIDTH * peak_d),
    )
    l2_m = np.linalg.norm(pixels, axis=1)
    sin_theta = np.sin(0.5 * np.arccos(pixels[:, 2] / l2_m))
    flight_path_m = POWDER_L1_M + l2_m
    tof_us = (
        2.0
        * d_angstrom
        * sin_theta[pixel_index]
        * flight_path_m[pixel_index]
        * TOF_US_PER_ANGSTROM_METRE
    )
    with _atomic_nexus_file(path) as nexus:
        _, instrument_group = _write_entry(
            nexus,
            instrument=instrument,
            run_number=run_number,
            experiment_ref=experiment_ref,
            title=title,
        )
        _write_source(instrument_group, POWDER_L1_M)
        _write_monitor(instrument_group, rng, POWDER_L1_M, n_counts=max(n_events // 2, 1))
        _write_detector(instrument_group, rng, pixels, pixel_index, tof_us)
    return path


def _sans_pixels() -> npt.NDArray[np.float64]:
    """Positions (m) of a square panel of 64 x 64 pixels (5 mm pitch) centred on the beam."""
    offsets = np.arange(SANS_PIXELS_PER_SIDE) - (SANS_PIXELS_PER_SIDE - 1) / 2
    x, y = np.meshgrid(offsets * SANS_PIXEL_PITCH_M, offsets * SANS_PIXEL_PITCH_M, indexing="ij")
    z = np.full(x.size, SANS_L2_M)
    return np.column_stack([x.ravel(), y.ravel(), z])


def _guinier_with_background(q_inverse_angstrom: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Relative I(Q): the Guinier law with I0 = 1 plus the flat background."""
    rg = SANS_RADIUS_OF_GYRATION_ANGSTROM
    return np.exp(-(q_inverse_angstrom**2) * rg**2 / 3.0) + SANS_BACKGROUND_RELATIVE


def write_sans_run(
    path: Path,
    *,
    instrument: str,
    run_number: int,
    experiment_ref: str,
    title: str,
    n_events: int = 200_000,
    seed: int | None = None,
) -> Path:
    """Write a small-angle scattering run: ``n_events`` events on a 64 x 64 pixel panel.

    Counts follow flux(λ) · solid angle · I(Q) with I(Q) the Guinier law for
    Rg = :data:`SANS_RADIUS_OF_GYRATION_ANGSTROM` (Å) plus a flat background, λ from 1 to 10 Å,
    L1 = 11 m, L2 = 4 m, the beam hitting the panel's centre. Returns ``path``.
    """
    rng = np.random.default_rng(seed)
    pixels = _sans_pixels()
    l2_m = np.linalg.norm(pixels, axis=1)
    sin_theta = np.sin(0.5 * np.arccos(pixels[:, 2] / l2_m))
    solid_angle = pixels[:, 2] / l2_m**3
    relative_solid_angle = solid_angle / solid_angle.max()
    peak_intensity = float(_guinier_with_background(np.zeros(1))[0])

    kept_wavelengths: list[npt.NDArray[np.float64]] = [np.empty(0)]
    kept_pixels: list[npt.NDArray[np.int64]] = [np.empty(0, dtype=np.int64)]
    count = 0
    while count < n_events:
        wavelength = _draw_wavelengths(rng, 4 * n_events)
        pixel = rng.integers(0, len(pixels), size=wavelength.size)
        q = 4.0 * np.pi * sin_theta[pixel] / wavelength
        acceptance = relative_solid_angle[pixel] * _guinier_with_background(q) / peak_intensity
        accepted = rng.uniform(size=wavelength.size) < acceptance
        kept_wavelengths.append(wavelength[accepted])
        kept_pixels.append(pixel[accepted])
        count += int(accepted.sum())
    wavelength = np.concatenate(kept_wavelengths)[:n_events]
    pixel_index = np.concatenate(kept_pixels)[:n_events]
    tof_us = wavelength * (SANS_L1_M + l2_m[pixel_index]) * TOF_US_PER_ANGSTROM_METRE

    with _atomic_nexus_file(path) as nexus:
        _, instrument_group = _write_entry(
            nexus,
            instrument=instrument,
            run_number=run_number,
            experiment_ref=experiment_ref,
            title=title,
        )
        _write_source(instrument_group, SANS_L1_M)
        _write_monitor(instrument_group, rng, SANS_L1_M, n_counts=max(n_events, 1))
        _write_detector(instrument_group, rng, pixels, pixel_index, tof_us)
    return path


def write_synthetic_run(kind: NeutronRunKind, path: Path, **options: Any) -> Path:
    """Write a synthetic run of ``kind`` ("powder" or "sans") with :func:`write_powder_run`'s
    keyword arguments; returns ``path``."""
    writers = {"powder": write_powder_run, "sans": write_sans_run}
    if kind not in writers:
        raise ValueError(f"unknown synthetic run kind {kind!r}; known: {', '.join(writers)}")
    return writers[kind](path, **options)
