"""``autoreduce alerts``: run the alert service, send a test message, list the firing alerts."""

from __future__ import annotations

import json
import os
import sys

import click

from autoreduce.cli.startup import cli_settings, migrated_database, start_logging, stop_on_signals


@click.group()
def alerts() -> None:
    """Alerts on errors, silent instruments, stalled runs, latency, processors, queues, disk."""


@alerts.command("run")
def alerts_run() -> None:
    """Judge the alert rules every `alerts.interval_s` and deliver the alerts, until stopped."""
    from autoreduce.alerts import AlertService
    from autoreduce.transport import open_transport

    settings = cli_settings()
    start_logging("alerts", settings)
    database = migrated_database(settings)
    try:
        with open_transport(settings, consumer=f"alerts:{os.getpid()}") as transport:
            service = AlertService(settings, database, transport)
            if not service.receivers:
                click.echo(
                    "warning: no alert receivers configured ([[alerts.webhooks]] or "
                    "[alerts.email]); alerts are recorded but not sent",
                    err=True,
                )
            service.run_forever(stop_on_signals())
    finally:
        database.dispose()


@alerts.command("test")
def alerts_test() -> None:
    """Send a test message to every receiver; exit 1 if one did not take it."""
    from autoreduce.alerts import AlertMessage, DeliveryError, receivers_from
    from autoreduce.db.models import utcnow

    settings = cli_settings()
    receivers = receivers_from(settings)
    if not receivers:
        raise click.UsageError(
            "no alert receivers are configured: add [[alerts.webhooks]] or [alerts.email]"
        )
    message = AlertMessage(
        event="test",
        rule="test",
        instrument=None,
        summary="a test message from `autoreduce alerts test`: this receiver works",
        fired_at=utcnow(),
    )
    failed = 0
    for receiver in receivers:
        try:
            receiver.send(message)
        except DeliveryError as error:
            failed += 1
            click.echo(f"{receiver.name}\tfailed: {error}")
        else:
            click.echo(f"{receiver.name}\tsent")
    if failed:
        sys.exit(1)


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of lines.")
def alerts_list(as_json: bool) -> None:
    """The alerts firing now: id, since, rule, instrument, summary."""
    from autoreduce.alerts import active_alerts

    database = migrated_database(cli_settings())
    try:
        firing = active_alerts(database)
    finally:
        database.dispose()
    if as_json:
        document = [
            {
                "id": alert.id,
                "rule": alert.rule,
                "instrument": alert.instrument,
                "summary": alert.summary,
                "details": alert.details,
                "fired_at": alert.fired_at.isoformat(),
            }
            for alert in firing
        ]
        click.echo(json.dumps(document, indent=2, default=str))
        return
    for alert in firing:
        click.echo(
            f"{alert.id}\t{alert.fired_at.isoformat(timespec='seconds')}\t{alert.rule}\t"
            f"{alert.instrument or '-'}\t{alert.summary}"
        )
    click.echo(f"{len(firing)} alert(s) firing", err=True)
