"""The ``powder_diffraction`` plugin: focus a time-of-flight powder run onto one d-spacing axis.

Events are loaded with scippnexus, converted from time of flight to d-spacing pixel by pixel with
scippneutron (d = h · tof / (2 m_n · L_total · sin θ)), histogrammed, summed over all pixels
("focused") and divided by the integrated monitor counts. Outputs ``<INSTRUMENT><run>_focused.xye``
(d in Å, intensity, sigma), the same curve as scipp HDF5 (``.h5``) and a PNG plot.
"""

from __future__ import annotations

from pathlib import Path

from autoreduce.plugin import ReductionContext, ReductionResult, Variable, hookimpl
from plugins._warm_up import warm_up  # noqa: F401 - the hook, registered with this plugin


@hookimpl
def reduction_variables(instrument: str) -> list[Variable]:
    """The d-spacing range and binning, and whether to normalise by the monitor."""
    return [
        Variable("dspacing_min", "float", 0.4, "Lowest d-spacing to keep, in Å.", minimum=0.0),
        Variable("dspacing_max", "float", 3.5, "Highest d-spacing to keep, in Å.", minimum=0.0),
        Variable(
            "bins",
            "int",
            1500,
            "Number of d-spacing bins of the focused pattern.",
            minimum=10,
            maximum=100_000,
        ),
        Variable(
            "normalise_by_monitor",
            "bool",
            True,
            "Divide the focused counts by the monitor's integrated counts.",
        ),
        Variable(
            "rebin_log",
            "bool",
            False,
            "Use logarithmic d-spacing bins (constant Δd/d) instead of linear ones.",
            advanced=True,
        ),
    ]


@hookimpl
def reduce(context: ReductionContext) -> ReductionResult:
    """Focus the run's events onto d-spacing; write .xye, .h5 and a PNG into ``output_dir``."""
    import scipp as sc

    from plugins._neutron_run import ELASTIC_GRAPH, load_neutron_run, transform
    from plugins._outputs import run_label, run_stem, save_plot, write_xye

    run, variables, log = context.run, context.variables, context.logger
    d_min, d_max = float(variables["dspacing_min"]), float(variables["dspacing_max"])
    n_bins = int(variables["bins"])
    if not 0 < d_min < d_max:
        raise ValueError(f"dspacing_min ({d_min} Å) must be above 0 and below dspacing_max")
    if variables["rebin_log"]:
        edges = sc.geomspace("dspacing", d_min, d_max, num=n_bins + 1, unit="angstrom")
    else:
        edges = sc.linspace("dspacing", d_min, d_max, num=n_bins + 1, unit="angstrom")

    log.info("loading %s", run.data_path)
    neutron_run = load_neutron_run(Path(run.data_path))
    n_events = neutron_run.n_events
    if n_events == 0:
        raise ValueError(f"no events in {run.data_path}")
    log.info("loaded %d events from %d detector(s)", n_events, len(neutron_run.detectors))
    context.progress(0.3)

    focused: sc.DataArray | None = None
    for events in neutron_run.detectors.values():
        pattern = transform(events, "dspacing", ELASTIC_GRAPH).bins.concat().hist(dspacing=edges)
        focused = pattern if focused is None else focused + pattern
    assert focused is not None
    n_focused = int(focused.sum().value)
    if n_focused == 0:
        raise ValueError(
            f"none of the {n_events:,} events in {run.data_path} fall between "
            f"d = {d_min} and {d_max} Å"
        )
    log.info("focused %d of %d events into %d d-spacing bins", n_focused, n_events, n_bins)
    context.progress(0.6)

    if variables["normalise_by_monitor"]:
        monitor_counts = neutron_run.monitor_counts()
        focused = focused / sc.scalar(monitor_counts, unit="counts")
        log.info("normalised by %.0f monitor counts", monitor_counts)
        y_label = "counts per monitor count"
    else:
        y_label = "counts"
    focused.coords["dspacing"] = focused.coords["dspacing"].to(unit="angstrom")

    stem = run_stem(run)
    centres = sc.midpoints(focused.coords["dspacing"]).values
    intensity = focused.values
    sigma = sc.stddevs(focused.data).values
    xye = write_xye(
        context.output_dir / f"{stem}_focused.xye",
        (centres, intensity, sigma),
        run=run,
        what="focused powder pattern",
        column_names=f"d-spacing (Å), intensity ({y_label}), sigma",
        variables=variables,
    )
    h5 = context.output_dir / f"{stem}_focused.h5"
    focused.save_hdf5(h5)
    context.progress(0.8)

    png = save_plot(
        context.output_dir / f"{stem}_focused.png",
        centres,
        intensity,
        sigma,
        title=f"{run_label(run)}: focused",
        x_label="d-spacing (Å)",
        y_label=f"intensity ({y_label})",
    )
    strongest_d = float(centres[int(intensity.argmax())])
    context.progress(1.0)
    return ReductionResult(
        files=[xye.resolve(), h5.resolve()],
        plots=[png.resolve()],
        summary=(
            f"focused {n_focused:,} events into {n_bins} d-spacing bins; "
            f"strongest peak at d = {strongest_d:.3f} Å"
        ),
    )
