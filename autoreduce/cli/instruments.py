"""``autoreduce instruments`` and ``autoreduce rules``: instruments, pausing them, and the
variable rules new runs get, through the API."""

from __future__ import annotations

from typing import Any

import click

from autoreduce.api_client import path_part
from autoreduce.cli import tables
from autoreduce.cli.client import (
    EXIT_CODES_HELP,
    ClientGroup,
    api,
    client_options,
    emit,
    parse_assignments,
)

INSTRUMENTS = "/api/v1/instruments"


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def instruments() -> None:
    """The configured instruments; pause and resume them."""


@instruments.command("list", epilog=EXIT_CODES_HELP)
@client_options
def instruments_list() -> None:
    """Each instrument: plugin, paused or not, latest run, runs by state
    (`autoreduce instruments list`)."""
    with api() as client:
        emit(client.get(INSTRUMENTS), tables.instruments)


def _set_paused(name: str, paused: bool) -> None:
    with api() as client:
        emit(
            client.patch(f"{INSTRUMENTS}/{path_part(name)}", {"paused": paused}), tables.instrument
        )


@instruments.command("pause", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("name")
def instruments_pause(name: str) -> None:
    """Hold an instrument's new runs: recorded, not reduced (`autoreduce instruments pause GEM`)."""
    _set_paused(name, True)


@instruments.command("resume", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("name")
def instruments_resume(name: str) -> None:
    """Let an instrument's held runs flow on (`autoreduce instruments resume GEM`)."""
    _set_paused(name, False)


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def rules() -> None:
    """Variable rules: the values new runs of an instrument get."""


def _rules_path(instrument: str) -> str:
    return f"{INSTRUMENTS}/{path_part(instrument)}/variable-rules"


@rules.command("list", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
def rules_list(instrument: str) -> None:
    """The instrument's rules in force (`autoreduce rules list GEM`)."""
    with api() as client:
        emit(client.get(_rules_path(instrument)), tables.rules)


@rules.command("add", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.option("--experiment", "experiment_ref", help="For every run of this experiment.")
@click.option("--from-run", type=click.IntRange(0), help="For this run and every later one.")
@click.option(
    "--var", "assignments", multiple=True, required=True, help="NAME=VALUE (JSON, else a string)."
)
@click.option("--reason", default="", help="Why the rule is set.")
def rules_add(
    instrument: str,
    experiment_ref: str | None,
    from_run: int | None,
    assignments: tuple[str, ...],
    reason: str,
) -> None:
    """Set values for an experiment's runs or from a run on
    (`autoreduce rules add GEM --from-run 44800 --var focus_banks=6 --reason "new detector"`)."""
    if (experiment_ref is None) == (from_run is None):
        raise click.UsageError("give exactly one of --experiment and --from-run")
    body: dict[str, Any] = {"variables": parse_assignments(assignments), "reason": reason}
    if experiment_ref is not None:
        body["experiment_ref"] = experiment_ref
    else:
        body["from_run"] = from_run
    with api() as client:
        emit(client.post(_rules_path(instrument), body), tables.rule)


@rules.command("delete", epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.argument("rule_id", type=click.IntRange(1))
def rules_delete(instrument: str, rule_id: int) -> None:
    """Stop a rule applying to new runs (`autoreduce rules delete GEM 3`)."""
    with api() as client:
        client.delete(f"{_rules_path(instrument)}/{rule_id}")
    emit(
        {"instrument": instrument, "id": rule_id, "deleted": True},
        lambda out, _: out.print(f"deleted {instrument} rule #{rule_id}"),
    )
