"""The ``sans`` plugin: reduce a time-of-flight small-angle scattering run to I(Q).

Events are loaded with scippnexus and converted pixel by pixel with scippneutron from time of
flight to wavelength λ and Q = 4π sin(θ) / λ; those inside the wavelength band are histogrammed
in Q. Each Q bin is divided by what the beam could have put there: Σ over pixels and wavelengths
of monitor(λ) · solid angle(pixel) for the (pixel, λ) pairs that map into it (the monitor
spectrum when normalising by the monitor, a flat spectrum otherwise), and by the sample's
transmission. Outputs ``<INSTRUMENT><run>_iq.xye`` (Q in Å⁻¹, I, sigma) and a log-log PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autoreduce.plugin import ReductionContext, ReductionResult, Variable, hookimpl
from plugins._warm_up import warm_up  # noqa: F401 - the hook, registered with this plugin

if TYPE_CHECKING:
    import numpy as np
    import scipp as sc

    from plugins._neutron_run import NeutronRun

#: Wavelength bins (logarithmic) on which the beam's spectrum is mapped into Q.
NORMALISATION_WAVELENGTH_BINS = 400
#: Guinier fits use Q · Rg below this (the law's usual range of validity).
GUINIER_MAX_Q_RG = 1.3


@hookimpl
def reduction_variables(instrument: str) -> list[Variable]:
    """The wavelength band, the Q range and binning, and the normalisation."""
    return [
        Variable("wavelength_min", "float", 1.0, "Shortest wavelength to use, in Å.", minimum=0),
        Variable("wavelength_max", "float", 10.0, "Longest wavelength to use, in Å.", minimum=0),
        Variable("q_min", "float", 0.005, "Lowest Q of I(Q), in Å⁻¹.", minimum=0.0),
        Variable("q_max", "float", 0.5, "Highest Q of I(Q), in Å⁻¹.", minimum=0.0),
        Variable("q_bins", "int", 100, "Number of Q bins.", minimum=2, maximum=100_000),
        Variable(
            "log_q_binning",
            "bool",
            True,
            "Logarithmic Q bins (constant ΔQ/Q); linear bins when off.",
            advanced=True,
        ),
        Variable(
            "normalise_by_monitor",
            "bool",
            True,
            "Normalise by the monitor's wavelength spectrum (otherwise by a flat spectrum).",
        ),
        Variable(
            "transmission",
            "float",
            1.0,
            "The sample's transmission (0 to 1), the same at every wavelength; I(Q) is divided "
            "by it.",
            advanced=True,
            minimum=0.001,
            maximum=1.0,
        ),
    ]


def _beam_spectrum(
    neutron_run: NeutronRun, wavelength_edges: sc.Variable, by_monitor: bool
) -> sc.DataArray:
    """The incident spectrum on ``wavelength_edges``: the monitor's, or flat (1 per Å)."""
    import scipp as sc

    from plugins._neutron_run import MONITOR_GRAPH, transform

    if not by_monitor:
        widths = wavelength_edges[1:] - wavelength_edges[:-1]
        return sc.DataArray(
            widths.to(unit="angstrom") / sc.Unit("angstrom"),
            coords={"wavelength": wavelength_edges},
        )
    neutron_run.monitor_counts()  # raises if there is no usable monitor
    assert neutron_run.monitor is not None
    monitor = transform(neutron_run.monitor, "wavelength", MONITOR_GRAPH)
    monitor = sc.values(monitor.drop_coords(["tof", "Ltotal"]))
    spectrum = monitor.rebin(wavelength=wavelength_edges)
    if float(spectrum.sum().value) <= 0:
        raise ValueError(
            f"the monitor in {neutron_run.path} counted nothing between "
            f"{wavelength_edges[0].value} and {wavelength_edges[-1].value} Å"
        )
    return spectrum


def _beam_in_q(events: sc.DataArray, spectrum: sc.DataArray, q_edges: sc.Variable) -> sc.DataArray:
    """Σ spectrum(λ) · relative solid angle over the (pixel, λ) pairs falling in each Q bin."""
    import scipp as sc

    from plugins._neutron_run import ELASTIC_GRAPH, transform

    scattered = events.coords["position"] - events.coords["sample_position"]
    distance = sc.norm(scattered)
    # a flat panel facing the beam: solid angle ∝ cos(angle to its normal) / distance²
    solid_angle = (scattered.fields.z / distance) * (distance.min() / distance) ** 2
    two_theta = transform(events, "two_theta", ELASTIC_GRAPH).coords["two_theta"]
    weights = sc.DataArray(
        spectrum.data * solid_angle,
        coords={
            "two_theta": two_theta,
            "wavelength": sc.midpoints(spectrum.coords["wavelength"]),
        },
    )
    in_q = transform(weights, "Q", {"Q": ELASTIC_GRAPH["Q"]})
    return in_q.flatten(to="pixel_wavelength").hist(Q=q_edges)


def _guinier_rg(q: np.ndarray, intensity: np.ndarray, sigma: np.ndarray) -> float | None:
    """Radius of gyration (Å) from ln I = ln I0 - Q² Rg² / 3 on the low-Q points, or None."""
    import numpy as np  # here: a processor loading this plugin's entry point stays small

    usable = np.isfinite(intensity) & (intensity > 0) & (sigma > 0)
    q, intensity, sigma = q[usable], intensity[usable], sigma[usable]
    if q.size < 4:
        return None
    q_limit = q[min(7, q.size - 1)]
    rg = None
    for _ in range(10):
        low = q <= q_limit
        if low.sum() < 4:
            return rg
        slope, _ = np.polyfit(q[low] ** 2, np.log(intensity[low]), 1, w=intensity[low] / sigma[low])
        if slope >= 0:
            return rg
        new_rg = float(np.sqrt(-3.0 * slope))
        if rg is not None and abs(new_rg - rg) < 1e-3 * rg:
            return new_rg
        rg, q_limit = new_rg, GUINIER_MAX_Q_RG / new_rg
    return rg


@hookimpl
def reduce(context: ReductionContext) -> ReductionResult:
    """Reduce the run's events to I(Q); write .xye and a log-log PNG into ``output_dir``."""
    import scipp as sc

    from plugins._neutron_run import ELASTIC_GRAPH, load_neutron_run, transform
    from plugins._outputs import run_label, run_stem, save_plot, write_xye

    run, variables, log = context.run, context.variables, context.logger
    lambda_min, lambda_max = float(variables["wavelength_min"]), float(variables["wavelength_max"])
    q_min, q_max, n_bins = float(variables["q_min"]), float(variables["q_max"]), variables["q_bins"]
    if not 0 < lambda_min < lambda_max:
        raise ValueError(
            f"wavelength_min ({lambda_min} Å) must be above 0 and below wavelength_max"
        )
    if not 0 < q_min < q_max:
        raise ValueError(f"q_min ({q_min} Å⁻¹) must be above 0 and below q_max")
    spacing = sc.geomspace if variables["log_q_binning"] else sc.linspace
    q_edges = spacing("Q", q_min, q_max, num=int(n_bins) + 1, unit="1/angstrom")
    band = sc.array(dims=["wavelength"], values=[lambda_min, lambda_max], unit="angstrom")

    log.info("loading %s", run.data_path)
    neutron_run = load_neutron_run(Path(run.data_path))
    n_events = neutron_run.n_events
    if n_events == 0:
        raise ValueError(f"no events in {run.data_path}")
    log.info("loaded %d events from %d detector(s)", n_events, len(neutron_run.detectors))
    context.progress(0.3)

    spectrum = _beam_spectrum(
        neutron_run,
        sc.geomspace(
            "wavelength",
            lambda_min,
            lambda_max,
            num=NORMALISATION_WAVELENGTH_BINS + 1,
            unit="angstrom",
        ),
        by_monitor=bool(variables["normalise_by_monitor"]),
    )
    counts = beam = None
    for events in neutron_run.detectors.values():
        in_q = transform(events, ["wavelength", "Q"], ELASTIC_GRAPH)
        detector_counts = in_q.bins.concat().bin(wavelength=band).hist(Q=q_edges)
        detector_counts = detector_counts["wavelength", 0].drop_coords("wavelength")
        detector_beam = _beam_in_q(events, spectrum, q_edges)
        counts = detector_counts if counts is None else counts + detector_counts
        beam = detector_beam if beam is None else beam + detector_beam
    assert counts is not None and beam is not None
    n_used = int(counts.sum().value)
    if n_used == 0:
        raise ValueError(
            f"none of the {n_events:,} events in {run.data_path} fall between "
            f"λ = {lambda_min} and {lambda_max} Å and Q = {q_min} and {q_max} Å⁻¹"
        )
    log.info("histogrammed %d of %d events into %d Q bins", n_used, n_events, n_bins)
    context.progress(0.6)

    covered = beam.values > 0
    intensity_q = counts / beam.data / sc.scalar(float(variables["transmission"]))
    q = sc.midpoints(q_edges).values[covered]
    intensity = intensity_q.values[covered]
    sigma = sc.stddevs(intensity_q.data).values[covered]
    if not covered.all():
        log.info("%d Q bins outside the detector's coverage left out", int((~covered).sum()))
    if q.size == 0:
        raise ValueError(f"the detector covers none of Q = {q_min} to {q_max} Å⁻¹")
    rg = _guinier_rg(q, intensity, sigma)

    stem = run_stem(run)
    xye = write_xye(
        context.output_dir / f"{stem}_iq.xye",
        (q, intensity, sigma),
        run=run,
        what="I(Q)",
        column_names="Q (1/Å), I (counts per unit incident beam, relative), sigma",
        variables=variables,
    )
    context.progress(0.8)
    png = save_plot(
        context.output_dir / f"{stem}_iq.png",
        q,
        intensity,
        sigma,
        title=f"{run_label(run)}: I(Q)",
        x_label="Q (Å⁻¹)",
        y_label="I(Q) (relative)",
        log_log=True,
    )
    bins_used = f"{q.size}" if covered.all() else f"{q.size} of {n_bins}"
    guinier = f"; Guinier Rg ≈ {rg:.1f} Å" if rg is not None else ""
    context.progress(1.0)
    return ReductionResult(
        files=[xye.resolve()],
        plots=[png.resolve()],
        summary=(
            f"I(Q) over Q = {q[0]:.4g} to {q[-1]:.4g} Å⁻¹ in {bins_used} bins from "
            f"{n_used:,} events{guinier}"
        ),
    )
