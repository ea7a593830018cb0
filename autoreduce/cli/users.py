"""``autoreduce user``: local accounts for the web UI (passwords stored as argon2 hashes)."""

from __future__ import annotations

import sys

import click

from autoreduce.cli.startup import cli_settings, migrated_database

ACCOUNT_ROLES = ("admin", "scientist")
_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice without echo."""
    from autoreduce.accounts import check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
        )
    try:
        return check_password(password)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


@click.group()
def user() -> None:
    """Local accounts that sign in to the web UI."""


@user.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ACCOUNT_ROLES))
@click.option("--instrument", "instruments", multiple=True, help="Limit to these instruments.")
@click.option("--display-name", default="", help="The name the web UI shows.")
@_PASSWORD_STDIN
def user_create(
    username: str,
    role: str,
    instruments: tuple[str, ...],
    display_name: str,
    password_stdin: bool,
) -> None:
    """Create the account USERNAME (the password is asked for twice, never echoed)."""
    from autoreduce.accounts import create_account, normal_username
    from autoreduce.audit import command_line_actor

    try:
        normal_username(username)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    password = _read_password(password_stdin)
    database = migrated_database(cli_settings())
    try:
        account = create_account(
            database,
            username,
            password,
            role,
            instruments,
            display_name=display_name,
            actor=command_line_actor(),
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(f"created {account.username} ({account.role})")


@user.command("list")
def user_list() -> None:
    """List accounts: username, role, instruments, display name, created, disabled."""
    from autoreduce.accounts import list_accounts

    database = migrated_database(cli_settings())
    try:
        rows = list_accounts(database)
    finally:
        database.dispose()
    for row in rows:
        instruments = ",".join(row.instruments) or "*"
        disabled = f"\tdisabled {row.disabled_at:%Y-%m-%d %H:%M}" if row.disabled_at else ""
        click.echo(
            f"{row.username}\t{row.role}\t{instruments}\t{row.display_name or '-'}"
            f"\t{row.created_at:%Y-%m-%d}{disabled}"
        )
    click.echo(f"{len(rows)} account(s)", err=True)


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable USERNAME: it can no longer sign in (its name is kept)."""
    from autoreduce.accounts import disable_account
    from autoreduce.audit import command_line_actor

    database = migrated_database(cli_settings())
    try:
        disabled = disable_account(database, username, actor=command_line_actor())
    finally:
        database.dispose()
    if not disabled:
        raise click.ClickException(f"no enabled account named {username!r}")
    click.echo(f"disabled {username.strip().lower()}")


@user.command("passwd")
@click.argument("username")
@_PASSWORD_STDIN
def user_passwd(username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (asked for twice, never echoed)."""
    from autoreduce.accounts import set_password
    from autoreduce.audit import command_line_actor

    password = _read_password(password_stdin)
    database = migrated_database(cli_settings())
    try:
        changed = set_password(database, username, password, actor=command_line_actor())
    finally:
        database.dispose()
    if not changed:
        raise click.ClickException(f"no account named {username!r}")
    click.echo(f"changed the password of {username.strip().lower()}")
