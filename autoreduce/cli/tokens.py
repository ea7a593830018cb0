"""``autoreduce token``: API tokens (stored hashed; shown once)."""

from __future__ import annotations

import click

from autoreduce.cli.startup import cli_settings, migrated_database

ROLES = ("admin", "scientist", "detector")


@click.group()
def token() -> None:
    """API tokens (stored hashed; shown once)."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--instrument", "instruments", multiple=True, help="Limit to these instruments.")
def token_create(name: str, role: str, instruments: tuple[str, ...]) -> None:
    """Create a token and print it (the only time it is shown)."""
    from autoreduce.audit import command_line_actor
    from autoreduce.tokens import create_token

    database = migrated_database(cli_settings())
    try:
        secret = create_token(
            database, name, role, instruments=list(instruments), actor=command_line_actor()
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(secret)


@token.command("list")
def token_list() -> None:
    """List tokens: name, role, instruments, created, revoked."""
    from autoreduce.tokens import list_tokens

    database = migrated_database(cli_settings())
    try:
        rows = list_tokens(database)
    finally:
        database.dispose()
    for row in rows:
        instruments = ",".join(row.instruments or []) or "*"
        revoked = f" revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        click.echo(f"{row.name}\t{row.role}\t{instruments}\t{row.created_at:%Y-%m-%d}{revoked}")
    click.echo(f"{len(rows)} token(s)", err=True)


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the token called NAME."""
    from autoreduce.audit import command_line_actor
    from autoreduce.tokens import revoke_token

    database = migrated_database(cli_settings())
    try:
        revoked = revoke_token(database, name, actor=command_line_actor())
    finally:
        database.dispose()
    if not revoked:
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"revoked {name}")
