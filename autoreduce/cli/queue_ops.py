"""Operator tools for the queue: ``autoreduce queue``, ``autoreduce processors`` and ``requeue``.

Tables (rich) for people, ``--json`` for scripts. They talk to the database and the broker
directly, like ``autoreduce dlq``: they are the tools for when the API itself may be down.
``requeue`` is a standalone command for the ``runs`` group (``autoreduce runs requeue
--stuck``); until that group exists it is also ``autoreduce queue requeue-stuck``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from autoreduce.cli.startup import cli_settings, migrated_database

if TYPE_CHECKING:
    from rich.console import Console

    from autoreduce.db import Database
    from autoreduce.queue_status import ProcessorReport, QueueStatus
    from autoreduce.requeue import RequeueReport
    from autoreduce.settings import Settings
    from autoreduce.transport import Transport

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_OLDER_THAN_MIN = 10.0

json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table."
)


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


@contextmanager
def _database() -> Iterator[tuple[Settings, Database]]:
    settings = cli_settings()
    database = migrated_database(settings)
    try:
        yield settings, database
    finally:
        database.dispose()


@contextmanager
def _database_and_broker() -> Iterator[tuple[Settings, Database, Transport]]:
    from autoreduce.transport import open_transport

    with (
        _database() as (settings, database),
        open_transport(settings, consumer=f"queue-cli:{os.getpid()}") as transport,
    ):
        yield settings, database, transport


# --- autoreduce queue --------------------------------------------------------------------------
@click.group()
def queue() -> None:
    """The queue at a glance, and the sweep for stuck runs."""


@queue.command("status")
@json_option
def queue_status(as_json: bool) -> None:
    """Depth of the pending queue and the DLQ, outbox backlog, processors and their runs."""
    from autoreduce.queue_status import queue_status as read_status

    with _database_and_broker() as (settings, database, transport):
        status = read_status(database, transport, settings)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
        return
    _print_status(status)


def _print_status(status: QueueStatus) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"broker {status.broker}  (checked {_when(status.checked_at)} UTC)")
    queues = Table("queue", "messages", "in flight", "note", title="Broker queues")
    for report in status.queues:
        messages = "unknown" if report.messages is None else str(report.messages)
        in_flight = "" if report.in_flight is None else str(report.in_flight)
        queues.add_row(report.name, messages, in_flight, report.note)
    console.print(queues)
    outbox = status.outbox
    oldest = f", oldest recorded {_when(outbox.oldest_unsent_at)}" if outbox.unsent else ""
    console.print(f"outbox: {outbox.unsent} unsent{oldest}")
    for held in outbox.held:
        console.print(f"  held: {held.messages} ({held.reason})")
    runs = status.runs
    console.print(f"runs: {runs.queued} queued ({runs.held} held), {runs.processing} processing")
    _print_processors(console, status.processors)


def _print_processors(console: Console, reports: list[ProcessorReport]) -> None:
    from rich.table import Table

    table = Table(
        "id", "host", "pid", "state", "last seen", "current run", "Slurm jobs", title="Processors"
    )
    for report in reports:
        current = report.current_run
        run = "" if current is None else f"{current.run} (attempt {current.attempts})"
        if report.drain_requested_at is not None:
            run = f"{run} [drain asked by {report.drain_requested_by}]".strip()
        table.add_row(
            report.id, report.host, str(report.pid), report.state, _when(report.last_seen_at), run,
            str(report.slurm_jobs or ""),
        )  # fmt: skip
    console.print(table)
    alive = sum(1 for report in reports if report.alive)
    console.print(f"{alive} processor(s) alive")


# --- the stuck-run sweep -----------------------------------------------------------------------
def _sweep_options(command: F) -> F:
    options = [
        click.option(
            "--older-than",
            "older_than_min",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_OLDER_THAN_MIN,
            show_default=True,
            help="Only runs Queued for longer than this many minutes.",
        ),
        click.option("--dry-run", is_flag=True, help="Say what would be re-published; do nothing."),
        click.option(
            "--include-retried",
            is_flag=True,
            help="Also runs waiting for a retry after a crash (their delayed message may be "
            "invisible to a browse on ActiveMQ).",
        ),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _sweep(older_than_min: float, dry_run: bool, include_retried: bool, as_json: bool) -> None:
    from autoreduce.audit import command_line_actor
    from autoreduce.requeue import RequeueRefused, requeue_stuck

    with _database_and_broker() as (_settings, database, transport):
        try:
            report = requeue_stuck(
                database,
                transport,
                older_than_s=older_than_min * 60,
                actor=command_line_actor(),
                dry_run=dry_run,
                include_retried=include_retried,
            )
        except RequeueRefused as error:
            raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(_report_json(report), indent=2))
    else:
        _print_report(report)


def _report_json(report: RequeueReport) -> dict[str, Any]:
    return {
        "older_than_minutes": report.older_than_s / 60,
        "dry_run": report.dry_run,
        "pending_messages_seen": report.pending_messages_seen,
        "runs": [
            {
                "run_id": run.run_id,
                "run": run.run,
                "queued_at": run.queued_at.isoformat(),
                "attempts": run.attempts,
                "action": str(run.action),
                "outbox_id": run.outbox_id,
            }
            for run in report.runs
        ],
    }


ACTION_WORDS = {
    "published-from-outbox": ("publish", "published", "the outbox never delivered it"),
    "republished": ("re-publish", "re-published", "the broker lost its message"),
    "on-broker": ("leave", "left", "its message is on the broker"),
    "sent-meanwhile": ("leave", "left", "the outbox relay sent it meanwhile"),
    "moved-on": ("leave", "left", "no longer Queued: a processor took it"),
}


def _print_report(report: RequeueReport) -> None:
    from rich.table import Table

    from autoreduce.requeue import Action

    console = _console()
    minutes = f"{report.older_than_s / 60:g}"
    if not report.runs:
        console.print(f"no run has been Queued for more than {minutes} minutes")
        return
    verb = 0 if report.dry_run else 1
    table = Table("run", "queued", "attempts", "action", "why", title="Stuck runs")
    for run in report.runs:
        words = ACTION_WORDS[str(run.action)]
        table.add_row(run.run, _when(run.queued_at), str(run.attempts), words[verb], words[2])
    console.print(table)
    sent = report.count(Action.PUBLISHED_FROM_OUTBOX, Action.REPUBLISHED)
    done = "would re-publish" if report.dry_run else "re-published"
    console.print(
        f"{done} {sent} of {len(report.runs)} run(s) Queued for more than {minutes} minutes "
        f"({report.pending_messages_seen} message(s) on the pending queue)"
    )


@click.command("requeue")
@click.option("--stuck", is_flag=True, help="Runs Queued too long with no message (required).")
@_sweep_options
def requeue(
    stuck: bool, older_than_min: float, dry_run: bool, include_retried: bool, as_json: bool
) -> None:
    """Re-publish the message of runs Queued too long whose message was lost or never sent.

    Safe at any time: a run whose message the broker has is left alone.
    """
    if not stuck:
        raise click.UsageError("say which runs: --stuck (the only selection so far)")
    _sweep(older_than_min, dry_run, include_retried, as_json)


@queue.command("requeue-stuck")
@_sweep_options
def queue_requeue_stuck(
    older_than_min: float, dry_run: bool, include_retried: bool, as_json: bool
) -> None:
    """Re-publish the message of runs Queued too long whose message was lost or never sent.

    The same as ``autoreduce runs requeue --stuck``.
    """
    _sweep(older_than_min, dry_run, include_retried, as_json)


# --- autoreduce processors ---------------------------------------------------------------------
@click.group()
def processors() -> None:
    """The queue processors: list them, drain one, resume it."""


@processors.command("list")
@json_option
def processors_list(as_json: bool) -> None:
    """Processors seen lately: state, last heartbeat, the run each holds."""
    from autoreduce.processors import list_processors
    from autoreduce.queue_status import processor_report

    with _database() as (settings, database), database.read_session() as session:
        views = list_processors(
            session,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            history_s=settings.processor_history_s,
        )
        reports = [processor_report(view) for view in views]
    if as_json:
        click.echo(json.dumps([report.model_dump(mode="json") for report in reports], indent=2))
        return
    _print_processors(_console(), reports)


@processors.command("drain")
@click.argument("processor_id")
def processors_drain(processor_id: str) -> None:
    """Let PROCESSOR_ID finish its run, then take no new ones (it idles until resumed)."""
    from autoreduce.audit import command_line_actor
    from autoreduce.processors import UnknownProcessor, request_drain

    with _database() as (_settings, database):
        try:
            asked = request_drain(database, processor_id, command_line_actor())
        except UnknownProcessor:
            raise click.ClickException(
                f"no processor {processor_id!r} (see `autoreduce processors list`)"
            ) from None
    if asked:
        click.echo(
            f"asked {processor_id} to drain: it finishes the run in hand, then takes no new "
            "runs and idles until `autoreduce processors resume` or a restart"
        )
    else:
        click.echo(f"{processor_id} was already asked to drain")


@processors.command("resume")
@click.argument("processor_id")
def processors_resume(processor_id: str) -> None:
    """Withdraw a drain: PROCESSOR_ID takes runs again."""
    from autoreduce.audit import command_line_actor
    from autoreduce.processors import UnknownProcessor, resume

    with _database() as (_settings, database):
        try:
            resumed = resume(database, processor_id, command_line_actor())
        except UnknownProcessor:
            raise click.ClickException(
                f"no processor {processor_id!r} (see `autoreduce processors list`)"
            ) from None
    click.echo(f"{processor_id} takes runs again" if resumed else f"{processor_id} was not drained")
