"""``autoreduce experiments`` and ``autoreduce failures``: reading across runs, through the API."""

from __future__ import annotations

from datetime import datetime

import click

from autoreduce.api_client import path_part
from autoreduce.cli import tables
from autoreduce.cli.client import (
    EXIT_CODES_HELP,
    ClientCommand,
    ClientGroup,
    api,
    client_options,
    emit,
)

CATEGORIES = ("plugin", "data", "timeout", "memory", "crash", "infrastructure")


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def experiments() -> None:
    """Experiments (proposals, RB numbers): their runs across instruments."""


@experiments.command("show", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("ref")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
def experiments_show(ref: str, limit: int, offset: int) -> None:
    """One experiment: counts by state and a page of its runs (`autoreduce experiments show
    2610001`)."""
    with api() as client:
        answer = client.get(
            f"/api/v1/experiments/{path_part(ref)}", params={"limit": limit, "offset": offset}
        )
    emit(answer, tables.experiment)


@click.command("failures", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.option("--instrument", help="Only this instrument's errors.")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only this kind of error.")
@click.option("--since", type=click.DateTime(), help="Errors since (default: 7 days ago).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
def failures(
    instrument: str | None, category: str | None, since: datetime | None, limit: int, offset: int
) -> None:
    """Recent errors grouped by their cause, newest first (`autoreduce failures --instrument
    GEM`); re-run a group with `autoreduce reruns create --instrument GEM --failure FINGERPRINT`."""
    params = {
        "instrument": instrument,
        "category": category,
        "since": None if since is None else since.isoformat(),
        "limit": limit,
        "offset": offset,
    }
    with api() as client:
        emit(client.get("/api/v1/failures", params=params), tables.failures)
