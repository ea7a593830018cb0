"""``autoreduce plugins``: approve the plugins installed on this host (direct to the database).

An operator at a server (API or processor host) approves the version of each plugin installed
*there*: a processor with another version installed holds its runs until that version too is
approved.
"""

from __future__ import annotations

import click

from autoreduce.cli.startup import cli_settings, migrated_database


@click.group()
def plugins() -> None:
    """Plugins installed here and their approval (a plugin runs only once approved)."""


@plugins.command("list")
def plugins_list() -> None:
    """List installed plugins: name, distribution, version, state, decided by, instruments."""
    from autoreduce.plugin_approvals import statuses
    from autoreduce.plugin_manager import installed_plugins

    settings = cli_settings()
    releases = installed_plugins().releases()
    database = migrated_database(settings)
    try:
        with database.read_session() as session:
            found = statuses(session, releases)
    finally:
        database.dispose()
    for status in found:
        release = status.release
        users = [n for n, c in sorted(settings.instruments.items()) if c.plugin == release.name]
        decided = (
            f"{status.decided_by} {status.decided_at:%Y-%m-%d %H:%M}" if status.decided_at else "-"
        )
        click.echo(
            f"{release.name}\t{release.distribution or '-'}\t{release.version or '-'}\t"
            f"{status.state}\t{decided}\t{','.join(users) or '-'}"
        )
    click.echo(f"{len(found)} plugin(s)", err=True)


def _decide(names: tuple[str, ...], builtin: bool, approve: bool) -> None:
    from autoreduce.audit import command_line_actor
    from autoreduce.plugin_approvals import BUILTIN_DISTRIBUTION, ApprovalState, decide
    from autoreduce.plugin_manager import installed_plugins

    releases = {release.name: release for release in installed_plugins().releases()}
    chosen = [releases[name] for name in names if name in releases]
    unknown = [name for name in names if name not in releases]
    if unknown:
        installed = ", ".join(sorted(releases)) or "none"
        raise click.ClickException(
            f"no plugin named {', '.join(unknown)} is installed (installed: {installed})"
        )
    if builtin:
        chosen += [r for r in releases.values() if r.distribution == BUILTIN_DISTRIBUTION]
    if not chosen:
        raise click.UsageError("name a plugin, or give --builtin")
    verdict = ApprovalState.APPROVED if approve else ApprovalState.REVOKED
    database = migrated_database(cli_settings())
    try:
        for release in {release.name: release for release in chosen}.values():
            try:
                decide(database, release, verdict, command_line_actor())
            except ValueError as error:
                raise click.ClickException(str(error)) from None
            click.echo(f"{verdict} {release.name} {release.version} ({release.distribution})")
    finally:
        database.dispose()


@plugins.command("approve")
@click.argument("names", nargs=-1)
@click.option(
    "--builtin", is_flag=True, help="Approve the plugins the autoreduce distribution installs."
)
def plugins_approve(names: tuple[str, ...], builtin: bool) -> None:
    """Approve the plugins NAMES at the versions installed here; their held runs are reduced."""
    _decide(names, builtin, approve=True)


@plugins.command("revoke")
@click.argument("names", nargs=-1, required=True)
def plugins_revoke(names: tuple[str, ...]) -> None:
    """Revoke the plugins NAMES at the versions installed here; their runs are held."""
    _decide(names, builtin=False, approve=False)
