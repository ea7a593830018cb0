"""Write a reduced 1-D curve as a three-column text file and as a PNG plot.

Shared by the built-in scipp plugins; not a plugin itself (it implements no hooks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from autoreduce.plugin import RunInfo


def run_stem(run: RunInfo) -> str:
    """The file-name stem of a run's outputs, e.g. ``WISH44733``."""
    return f"{run.instrument}{run.run_number}"


def run_label(run: RunInfo) -> str:
    """A human title for a run's outputs: instrument, run, version and title."""
    label = f"{run.instrument} {run.run_number} v{run.run_version}"
    return f"{label}: {run.title}" if run.title else label


def write_xye(
    path: Path,
    columns: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    *,
    run: RunInfo,
    what: str,
    column_names: str,
    variables: dict[str, Any],
) -> Path:
    """Write x, y, sigma columns to ``path`` with ``#`` comment lines naming the run."""
    header = "\n".join(
        [
            f"{run_label(run)}: {what}",
            f"experiment: {run.experiment_ref or 'unknown'}",
            f"data file: {run.data_path}",
            f"variables: {json.dumps(variables, sort_keys=True)}",
            f"columns: {column_names}",
        ]
    )
    np.savetxt(path, np.column_stack(columns), fmt="%.8g", header=header)
    return path


def save_plot(
    path: Path,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    sigma: npt.ArrayLike,
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_log: bool = False,
) -> Path:
    """Plot y ± sigma against x into the PNG at ``path``."""
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        x_values, y_values = np.asarray(x), np.asarray(y)
        if log_log:
            axes.errorbar(x_values, y_values, yerr=sigma, fmt=".", markersize=3, elinewidth=0.5)
            axes.set_xscale("log")
            axes.set_yscale("log")
        else:
            axes.plot(x_values, y_values, linewidth=0.8)
            axes.fill_between(
                x_values, y_values - np.asarray(sigma), y_values + np.asarray(sigma), alpha=0.3
            )
        axes.set_title(title)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
