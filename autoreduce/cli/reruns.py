"""``autoreduce reruns``: batch re-runs (create, dry run, show, cancel) through the API.

``create`` waits for the batch with a progress bar (on standard error) until every version it
queued has ended, unless ``--no-wait``; the batch as it then stands is printed.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoreduce.api_client import ApiClient
from autoreduce.cli import tables
from autoreduce.cli.client import (
    EXIT_CODES_HELP,
    FINAL_STATUSES,
    POLL_INTERVAL_S,
    ClientGroup,
    api,
    client_options,
    console,
    emit,
    parse_assignments,
)
from autoreduce.cli.runs import BASE_HELP

RERUNS = "/api/v1/reruns"


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def reruns() -> None:
    """Re-run many runs of one instrument at once, and follow the batch."""


def _run_range(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, separator, high = value.partition("..")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = -1
    if not separator or first < 0 or last < 0:
        raise click.BadParameter(f"{value!r} is not FIRST..LAST", param_hint="--range")
    return first, last


def _run_list(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a list like 1,2,3", param_hint="--runs"
        ) from None
    if not numbers or min(numbers) < 0:
        raise click.BadParameter(f"{value!r} is not a list like 1,2,3", param_hint="--runs")
    return numbers


def _selection(runs: str | None, run_range: str | None, **chosen: str | None) -> dict[str, Any]:
    """The batch's one selection of runs, or a usage error."""
    span = _run_range(run_range)
    given: dict[str, Any] = {name: value for name, value in chosen.items() if value is not None}
    if runs is not None:
        given["runs"] = _run_list(runs)
    if span is not None:
        given["run_min"], given["run_max"] = span
    if len(given) - (span is not None) != 1:
        raise click.UsageError(
            "choose the runs with exactly one of --runs, --range, --experiment, --search, --failure"
        )
    return given


@reruns.command("create", epilog=EXIT_CODES_HELP)
@client_options
@click.option("--instrument", required=True)
@click.option("--runs", help="These run numbers: 101,102,105.")
@click.option("--range", "run_range", help="A range of run numbers, inclusive: 100..120.")
@click.option("--experiment", "experiment_ref", help="Every run of this experiment.")
@click.option("--search", "-q", "q", help="Every run a search finds (the runs list grammar).")
@click.option("--failure", help="Every run in one failure group (its fingerprint).")
@click.option("--var", "assignments", multiple=True, help="NAME=VALUE (JSON, else a string).")
@click.option("--base", default="latest", show_default=True, help=BASE_HELP)
@click.option("--reason", default="", help="Why; kept as each version's description.")
@click.option(
    "--supersede", is_flag=True, help="Cancel a run's Queued version instead of refusing."
)
@click.option("--dry-run", is_flag=True, help="Show what it would do; queue nothing.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow until all end.")
def reruns_create(
    instrument: str,
    runs: str | None,
    run_range: str | None,
    experiment_ref: str | None,
    q: str | None,
    failure: str | None,
    assignments: tuple[str, ...],
    base: str,
    reason: str,
    supersede: bool,
    dry_run: bool,
    wait: bool,
) -> None:
    """Re-run a list, range, experiment, search or failure group of one instrument's runs
    (`autoreduce reruns create --instrument GEM --range 100..120 --var focus_banks=6`)."""
    body = {
        "instrument": instrument,
        **_selection(runs, run_range, experiment_ref=experiment_ref, q=q, failure=failure),
        "variables": parse_assignments(assignments),
        "base": base,
        "reason": reason,
        "supersede": supersede,
        "dry_run": dry_run,
    }
    with api() as client:
        batch = client.post(RERUNS, body)
        if wait and not dry_run and batch.get("id") is not None:
            batch = follow_batch(client, batch)
    emit(batch, tables.batch)


@reruns.command("show", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("batch_id", type=click.IntRange(1))
@click.option("--wait", is_flag=True, help="Follow with a progress bar until every run ends.")
def reruns_show(batch_id: int, wait: bool) -> None:
    """A batch and the state of each version it made (`autoreduce reruns show 7`)."""
    with api() as client:
        batch = client.get(f"{RERUNS}/{batch_id}")
        if wait:
            batch = follow_batch(client, batch)
    emit(batch, tables.batch)


@reruns.command("cancel", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("batch_id", type=click.IntRange(1))
@click.option("--reason", required=True, help="Why it is cancelled (recorded).")
def reruns_cancel(batch_id: int, reason: str) -> None:
    """Cancel every version of a batch still Queued or Processing
    (`autoreduce reruns cancel 7 --reason "wrong calibration"`)."""
    with api() as client:
        emit(client.post(f"{RERUNS}/{batch_id}/cancel", {"reason": reason}), tables.batch)


def _ended(batch: dict[str, Any]) -> int:
    return sum(run["status"] in FINAL_STATUSES for run in batch["runs"])


def follow_batch(client: ApiClient, batch: dict[str, Any]) -> dict[str, Any]:
    """Poll the batch, drawing its progress on standard error, until every run has ended."""
    columns = (
        TextColumn(f"batch {batch['id']}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs ended"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(stderr=True), transient=False) as progress:
        task = progress.add_task("batch", total=len(batch["runs"]), completed=_ended(batch))
        while _ended(batch) < len(batch["runs"]):
            time.sleep(POLL_INTERVAL_S)
            batch = client.get(f"{RERUNS}/{batch['id']}")
            progress.update(task, completed=_ended(batch))
    return batch
