"""``autoreduce client``: OAuth2 clients (their secrets stored hashed, shown once)."""

from __future__ import annotations

import click

from autoreduce.cli.startup import cli_settings, migrated_database

ROLES = ("admin", "scientist", "detector")


@click.group()
def client() -> None:
    """OAuth2 clients: machines that obtain access tokens with an id and a secret."""


@client.command("create")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--instrument", "instruments", multiple=True, help="Limit to these instruments.")
def client_create(name: str, role: str, instruments: tuple[str, ...]) -> None:
    """Create a client and print its id and secret (the only time the secret is shown)."""
    from autoreduce.audit import command_line_actor
    from autoreduce.oauth_clients import create_client

    database = migrated_database(cli_settings())
    try:
        created = create_client(
            database, name, role, instruments=list(instruments), actor=command_line_actor()
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(f"client_id: {created.client_id}")
    click.echo(f"client_secret: {created.client_secret}")
    click.echo("the secret is shown only this once; keep it somewhere safe", err=True)


@client.command("list")
def client_list() -> None:
    """List clients: id, name, role, instruments, created (by whom), revoked."""
    from autoreduce.oauth_clients import list_clients

    database = migrated_database(cli_settings())
    try:
        rows = list_clients(database)
    finally:
        database.dispose()
    for row in rows:
        instruments = ",".join(row.instruments) or "*"
        revoked = f"\trevoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        created = f"{row.created_at:%Y-%m-%d} by {row.created_by}"
        click.echo(f"{row.client_id}\t{row.name}\t{row.role}\t{instruments}\t{created}{revoked}")
    click.echo(f"{len(rows)} client(s)", err=True)


@client.command("revoke")
@click.argument("client_id", metavar="ID")
def client_revoke(client_id: str) -> None:
    """Revoke the client ID: no new tokens, and the ones it holds are refused at once."""
    from autoreduce.audit import command_line_actor
    from autoreduce.oauth_clients import revoke_client

    database = migrated_database(cli_settings())
    try:
        revoked = revoke_client(database, client_id, actor=command_line_actor())
    finally:
        database.dispose()
    if not revoked:
        raise click.ClickException(f"no active client with id {client_id!r}")
    click.echo(f"revoked {client_id}")
