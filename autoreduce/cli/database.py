"""``autoreduce db``: the database schema."""

from __future__ import annotations

import click

from autoreduce.cli.startup import DatabaseUnreachable, cli_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest revision."""
    from autoreduce.db import Database, is_unreachable, safe_url

    settings = cli_settings()
    url = settings.resolved_database_url
    database = Database(url)
    try:
        before, after = database.upgrade()
    except Exception as error:
        if is_unreachable(error):
            raise DatabaseUnreachable(url, error) from None
        raise
    finally:
        database.dispose()
    if before is None:
        click.echo(f"created the database schema (revision {after}) in {safe_url(url)}")
    elif before == after:
        click.echo(f"database schema already up to date (revision {after})")
    else:
        click.echo(f"upgraded the database schema from revision {before} to {after}")
