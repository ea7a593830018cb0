"""Load a NeXus event run with scippnexus: detector events in time of flight, monitor, beamline.

Shared by the built-in scipp plugins; not a plugin itself (it implements no hooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import scipp as sc
import scippnexus as snx
from scippneutron.conversion.graph import beamline, tof

Graph: TypeAlias = dict[str | tuple[str, ...], Any]

#: Coordinate transformation graph from time of flight to every elastic quantity.
ELASTIC_GRAPH: Graph = {
    node: rule
    for part in (beamline.beamline(scatter=True), tof.elastic("tof"))
    for node, rule in part.items()
}
#: The same for a monitor, which sees the beam before the sample.
MONITOR_GRAPH: Graph = {
    node: rule
    for part in (beamline.beamline(scatter=False), tof.elastic("tof"))
    for node, rule in part.items()
}


def transform(data: sc.DataArray, targets: str | list[str], graph: Graph) -> sc.DataArray:
    """``data`` with coordinates ``targets`` computed through ``graph`` (scipp's
    ``transform_coords``, typed for a data array)."""
    transformed = data.transform_coords(targets, graph=graph)
    if not isinstance(transformed, sc.DataArray):
        raise TypeError(f"transform_coords returned {type(transformed).__name__}")
    return transformed


@dataclass(frozen=True)
class NeutronRun:
    """The parts of one run a reduction needs.

    ``detectors`` maps each NXdetector's name to its events binned by pixel: weight 1 count
    with variance 1, event coordinate ``tof`` (µs, float64), pixel coordinate ``position``
    and scalar coordinates ``source_position`` and ``sample_position`` (m), ready for
    :data:`ELASTIC_GRAPH`.
    ``monitor`` is the first NXmonitor's histogram over ``tof`` (µs), with its own ``position``,
    or None if the file has none.
    """

    path: Path
    detectors: dict[str, sc.DataArray]
    monitor: sc.DataArray | None

    @property
    def n_events(self) -> int:
        """Events on all detectors."""
        return sum(int(events.bins.size().sum().value) for events in self.detectors.values())

    def monitor_counts(self) -> float:
        """Integrated monitor counts; ValueError if there is no monitor or it counted nothing."""
        if self.monitor is None:
            raise ValueError(f"no NXmonitor in {self.path} to normalise by")
        total = float(self.monitor.sum().value)
        if total <= 0:
            raise ValueError(f"the monitor in {self.path} counted no neutrons")
        return total


def _first(group: Any, nx_class: type, what: str, path: Path) -> Any:
    """The first child of ``group`` of ``nx_class``; ValueError naming ``what`` if none."""
    children = group[nx_class]
    if not children:
        raise ValueError(f"no {what} in {path}")
    return next(iter(children.values()))


def _position(component: Any, default: sc.Variable | None = None) -> sc.Variable:
    loaded = snx.compute_positions(component[()])
    position = loaded.get("position", default)
    if position is None:
        raise ValueError(f"cannot work out the position of {component.name}")
    return position


def _detector_events(loaded: sc.DataGroup) -> sc.DataArray | None:
    for value in snx.compute_positions(loaded).values():
        if isinstance(value, sc.DataArray) and value.bins is not None:
            return value
    return None


def load_neutron_run(path: Path) -> NeutronRun:
    """Load the first NXentry of the NeXus file at ``path`` (see :class:`NeutronRun`).

    Raises ValueError with the reason for a file that lacks what a reduction needs.
    """
    if not path.is_file():
        raise ValueError(f"data file {path} not found")
    with snx.File(path) as nexus:
        entry = _first(nexus, snx.NXentry, "NXentry", path)
        instrument = _first(entry, snx.NXinstrument, "NXinstrument", path)
        source_position = _position(_first(instrument, snx.NXsource, "NXsource", path))
        samples = entry[snx.NXsample]
        origin = sc.vector([0.0, 0.0, 0.0], unit="m")
        sample_position = (
            _position(next(iter(samples.values())), default=origin) if samples else origin
        )
        beam = {"source_position": source_position, "sample_position": sample_position}

        detectors: dict[str, sc.DataArray] = {}
        for name, group in instrument[snx.NXdetector].items():
            events = _detector_events(group[()])
            if events is None:
                continue
            events = events.assign_coords(beam)
            # every event counts 1 with Poisson variance 1, so histograms carry their errors
            events.bins.data = sc.bins_like(events, sc.scalar(1.0, variance=1.0, unit="counts"))
            events.bins.coords["tof"] = events.bins.coords.pop("event_time_offset").to(
                unit="us", dtype="float64"
            )
            detectors[name] = events
        if not detectors:
            raise ValueError(f"no NXdetector with event data in {path}")

        monitors = instrument[snx.NXmonitor]
        monitor = None
        if monitors:
            loaded = snx.compute_positions(next(iter(monitors.values()))[()])
            monitor = loaded["data"].rename_dims(time_of_flight="tof")
            monitor.coords["tof"] = monitor.coords.pop("time_of_flight").to(
                unit="us", dtype="float64"
            )
            monitor = monitor.assign_coords(position=loaded["position"], **beam)
            monitor = monitor.astype("float64")
    return NeutronRun(path=path, detectors=detectors, monitor=monitor)
