"""``autoreduce ship-logs``: the per-host log shipper (:mod:`autoreduce.log_shipping`)."""

from __future__ import annotations

import click

from autoreduce.cli.startup import ConfigProblem, cli_settings, start_logging, stop_on_signals


@click.command("ship-logs")
def ship_logs() -> None:
    """Send this host's JSON-lines logs to Elasticsearch (8.x), losing and repeating none."""
    settings = cli_settings()
    if not settings.shipping.elasticsearch_url.get_secret_value():
        raise ConfigProblem(
            ["shipping.elasticsearch_url is not set, so there is nowhere to ship logs"],
            "Set AUTOREDUCE_SHIPPING__ELASTICSEARCH_URL or [shipping] elasticsearch_url.",
        )
    stop = stop_on_signals()
    start_logging("ship-logs", settings)
    from autoreduce import log_shipping

    try:
        log_shipping.serve(settings, stop)
    except ValueError as error:  # an offsets file it cannot read
        raise click.ClickException(str(error)) from None
