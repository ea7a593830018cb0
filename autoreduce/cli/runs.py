"""``autoreduce runs``: list, show, re-run, cancel and read the log of runs, through the API.

The group's commands are listed in :data:`COMMANDS`; a command of another module joins the
group by being added to that list.
"""

from __future__ import annotations

from typing import Any

import click

from autoreduce.api_client import ApiClient, path_part
from autoreduce.cli import tables
from autoreduce.cli.client import (
    EXIT_CODES_HELP,
    ClientCommand,
    ClientGroup,
    api,
    client_options,
    emit,
    parse_assignments,
    wants_json,
)
from autoreduce.cli.queue_ops import requeue

RUNS = "/api/v1/runs"
STATUSES = ("Queued", "Processing", "Completed", "Error", "Skipped", "Cancelled")
BASE_HELP = "What the new version starts from: latest, current, or 'version N'."


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def runs() -> None:
    """Runs and their versions, through the API."""


def run_path(instrument: str, run_number: int) -> str:
    return f"{RUNS}/{path_part(instrument)}/{run_number}"


def latest_version(client: ApiClient, instrument: str, run_number: int) -> int:
    versions: list[dict[str, Any]] = client.get(run_path(instrument, run_number))["versions"]
    return int(versions[-1]["run_version"])


@click.command("list", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.option("--instrument", help="Only this instrument's runs.")
@click.option("--status", type=click.Choice(STATUSES), help="Only versions in this state.")
@click.option("--search", "-q", "q", help="Search, e.g. 'run:100..200 status:Error'.")
@click.option("--run-min", type=click.IntRange(0), help="Run numbers from this one.")
@click.option("--run-max", type=click.IntRange(0), help="Run numbers up to this one.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
def runs_list(**filters: Any) -> None:
    """List run versions, newest first (e.g. `autoreduce runs list --instrument GEM`)."""
    with api() as client:
        emit(client.get(RUNS, params=filters), tables.run_page)


@click.command("show", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.argument("run_number", type=click.IntRange(0))
def runs_show(instrument: str, run_number: int) -> None:
    """Every version of one run: state, variables, outputs (`autoreduce runs show GEM 44733`)."""
    with api() as client:
        emit(client.get(run_path(instrument, run_number)), tables.run_versions)


@click.command("rerun", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.argument("run_number", type=click.IntRange(0))
@click.option("--var", "assignments", multiple=True, help="NAME=VALUE (JSON, else a string).")
@click.option("--base", default="latest", show_default=True, help=BASE_HELP)
@click.option("--reason", default="", help="Why; kept as the version's description.")
@click.option("--dry-run", is_flag=True, help="Show the version it would make; queue nothing.")
def runs_rerun(
    instrument: str,
    run_number: int,
    assignments: tuple[str, ...],
    base: str,
    reason: str,
    dry_run: bool,
) -> None:
    """Queue a new version of a run with changed variables
    (`autoreduce runs rerun GEM 44733 --var focus_banks=6 --reason "new calibration"`)."""
    body = {
        "variables": parse_assignments(assignments),
        "base": base,
        "reason": reason,
        "dry_run": dry_run,
    }
    with api() as client:
        answer = client.post(f"{run_path(instrument, run_number)}/reruns", body)
    emit(answer, tables.rerun_plan)  # the new version, or (dry run) the version it would be


@click.command("cancel", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.argument("run_number", type=click.IntRange(0))
@click.option("--version", "run_version", type=click.IntRange(0), help="Default: the latest.")
@click.option("--reason", required=True, help="Why it is cancelled (recorded).")
def runs_cancel(instrument: str, run_number: int, run_version: int | None, reason: str) -> None:
    """Cancel a Queued or Processing run version
    (`autoreduce runs cancel GEM 44733 --reason "wrong sample"`)."""
    with api() as client:
        if run_version is None:
            run_version = latest_version(client, instrument, run_number)
        path = f"{run_path(instrument, run_number)}/versions/{run_version}/cancel"
        answer = client.post(path, {"reason": reason})

    def render(out: Any, run: dict[str, Any]) -> None:
        pending = " (its processor is stopping it)" if run["status"] == "Processing" else ""
        out.print(f"{instrument} {run_number} v{run_version}: {run['status']}{pending}")

    emit(answer, render)


@click.command("log", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.argument("instrument")
@click.argument("run_number", type=click.IntRange(0))
@click.option("--version", "run_version", type=click.IntRange(0), help="Default: the latest.")
@click.option("--follow", "-f", is_flag=True, help="Print lines as they come, until the run ends.")
def runs_log(instrument: str, run_number: int, run_version: int | None, follow: bool) -> None:
    """A run version's reduction log (`autoreduce runs log GEM 44733 --follow`).

    With --json: `{"text": ...}`, or with --follow `{"lines": [{"seq", "text"}], "status",
    "message"}` once the run has ended.
    """
    with api() as client:
        if run_version is None:
            run_version = latest_version(client, instrument, run_number)
        path = f"{run_path(instrument, run_number)}/versions/{run_version}/log"
        if not follow:
            text = client.text(path)
            if wants_json():
                emit({"text": text}, lambda out, doc: None)
            else:
                click.echo(text, nl=False)
            return
        lines: list[dict[str, Any]] = []
        for event in client.follow_log(path):
            if event.is_end:
                ending = {"status": event.status, "message": event.message}
                if wants_json():
                    emit({"lines": lines, **ending}, lambda out, doc: None)
                else:
                    click.echo(f"-- {event.status}: {event.message}".rstrip(": "), err=True)
                return
            if wants_json():
                lines.append({"seq": event.seq, "text": event.text})
            else:
                click.echo(event.text)


COMMANDS: list[click.Command] = [
    *(runs_list, runs_show, runs_rerun, runs_cancel, runs_log),
    requeue,  # `runs requeue --stuck`: on the database, not the API
]
"""The commands of ``autoreduce runs``; add one here to put it in the group."""

for command in COMMANDS:
    runs.add_command(command)
