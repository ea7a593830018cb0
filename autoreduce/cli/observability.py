"""``autoreduce observability install``: load the index template, ILM policy and dashboards."""

from __future__ import annotations

import click

from autoreduce.redaction import scrub


@click.group()
def observability() -> None:
    """Elasticsearch and Kibana assets (index template, ILM policy, dashboards)."""


@observability.command()
@click.option("--elasticsearch", "elasticsearch_url", required=True, help="Elasticsearch URL.")
@click.option("--kibana", "kibana_url", help="Kibana URL (its saved objects are imported).")
@click.option("--hot-days", default=7, show_default=True, type=click.IntRange(1))
@click.option("--delete-days", default=90, show_default=True, type=click.IntRange(2))
def install(
    elasticsearch_url: str, kibana_url: str | None, hot_days: int, delete_days: int
) -> None:
    """Load the assets (idempotent: running it again changes nothing)."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError
    from requests import RequestException

    from autoreduce import observability as assets

    try:
        done = assets.install(
            elasticsearch_url, kibana_url, hot_days=hot_days, delete_days=delete_days
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    except (ApiError, TransportError, RequestException) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise click.ClickException(f"cannot install the assets: {scrub(reason)}") from None
    click.echo(
        f"installed ILM policy {done.policy}, index template {done.template}"
        + (f" and {done.saved_objects} Kibana saved objects" if kibana_url else "")
    )
