"""``autoreduce reduce``: one reduction in the foreground, as a plugin author tests a plugin.

It runs the plugin in the same isolated child process a queue processor uses (time and memory
limits, ``reduction.log``), with variables checked against the plugin's declarations. No
database, broker, service or configuration file is needed.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import click


def parse_variable(assignment: str) -> tuple[str, Any]:
    """``name=value``: the value as JSON (``5``, ``true``, ``[1, 2]``), else as a string."""
    name, equals, text = assignment.partition("=")
    if not equals or not name.strip():
        raise click.BadParameter(f"{assignment!r} is not NAME=VALUE", param_hint="--var")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return name.strip(), value


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Entry-point name of the plugin.")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The data file to reduce.",
)
@click.option("--var", "assignments", multiple=True, help="A variable, NAME=VALUE (repeatable).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory [default: ./reduced-<plugin>-<timestamp>].",
)
@click.option("--instrument", default="TEST", show_default=True)
@click.option("--run", "run_number", default=0, show_default=True, type=click.IntRange(0))
@click.option("--timeout-s", default=3600.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--memory-mb", default=8192, show_default=True, type=click.IntRange(1))
def reduce(
    plugin_name: str,
    data_path: Path,
    assignments: tuple[str, ...],
    out_dir: Path | None,
    instrument: str,
    run_number: int,
    timeout_s: float,
    memory_mb: int,
) -> None:
    """Reduce one data file with one plugin, here and now; print its outputs and summary.

    Exit 0 when the reduction succeeded, 1 (with the reason) when it failed.
    """
    from autoreduce.nexus import read_run_metadata
    from autoreduce.plugin import RunInfo
    from autoreduce.plugin_manager import UnknownPlugin, installed_plugins
    from autoreduce.variables import VariableError, resolve_variables
    from queue_processor.isolation import LOG_NAME, ReductionJob, run_isolated

    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    plugins = installed_plugins()
    try:
        declared = plugins.variables(plugin_name, instrument)
    except UnknownPlugin as error:
        raise click.BadParameter(str(error), param_hint="--plugin") from None
    try:
        variables = resolve_variables(declared, dict(map(parse_variable, assignments)))
    except VariableError as error:
        raise click.BadParameter(str(error), param_hint="--var") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work_dir = (out_dir or Path(f"reduced-{plugin_name}-{stamp}")).resolve()
    metadata = read_run_metadata(data_path)
    run = RunInfo(
        instrument=instrument,
        run_number=run_number,
        run_version=0,
        experiment_ref=metadata.experiment_ref,
        data_path=data_path.resolve(),
        title=metadata.title,
    )
    click.echo(f"reducing {data_path} with {plugin_name}, variables {json.dumps(variables)}")
    job = ReductionJob(plugin_name, run, variables, work_dir, timeout_s, memory_mb)
    outcome = run_isolated(job, plugins)
    if not outcome.ok:
        click.echo(f"log: {work_dir / LOG_NAME}")
        raise click.ClickException(f"reduction failed: {outcome.reason}")
    for kind, names in (("file", outcome.files), ("plot", outcome.plots)):
        for name in names:
            click.echo(f"{kind}: {work_dir / name}")
    click.echo(f"log: {work_dir / LOG_NAME}")
    click.echo(f"summary: {outcome.summary}")
    peak = f", peak memory {outcome.peak_rss_mb:.0f} MB" if outcome.peak_rss_mb else ""
    click.echo(f"done in {outcome.wall_s:.1f} s{peak}")
