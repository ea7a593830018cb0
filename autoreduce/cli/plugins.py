"""``autoreduce plugins``: the plugins and their approval, through the API or on this host.

By default the commands are clients of the API (``GET /api/v1/plugins``,
``POST /api/v1/plugins/{name}/approve|revoke``): they see and decide the versions installed on
the API's host. With ``--local`` (implied by ``approve --builtin``) they act on the versions
installed *here*, straight on the database: how an operator approves the built-ins on a new
installation, or the version installed on a processor host that differs from the API's (its
runs are held until that version too is approved). Both ways print the same document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from autoreduce.api_client import path_part
from autoreduce.cli import tables
from autoreduce.cli.client import EXIT_CODES_HELP, ClientGroup, api, client_options, emit

if TYPE_CHECKING:
    from autoreduce.plugin_approvals import PluginStatus
    from autoreduce.plugin_manager import PluginRelease
    from autoreduce.settings import Settings

PLUGINS = "/api/v1/plugins"

LOCAL_HELP = (
    "Act on the versions installed on this host, straight on the database (an operator on a "
    "server), instead of through the API."
)


def _local_option(command: Any) -> Any:
    return click.option("--local", is_flag=True, help=LOCAL_HELP)(command)


def _refuse_api_url_with_local() -> None:
    if click.get_current_context().meta.get("autoreduce.client.api_url"):
        raise click.UsageError("--api-url names the API; --local acts on this host's database")


@click.group(cls=ClientGroup, epilog=EXIT_CODES_HELP)
def plugins() -> None:
    """Plugins and their approval (a plugin runs only at a version an admin approved).

    Through the API by default (the versions installed on the API's host); with --local, the
    versions installed on this host, written straight to the database."""


def _item(status: PluginStatus, settings: Settings) -> dict[str, Any]:
    """``status`` as the API's plugin item (the same keys), for this host's installed version."""
    release = status.release
    approved = status.state == "approved" and status.decided_by is not None
    decided_at = status.decided_at.isoformat() if status.decided_at else None
    return {
        "name": release.name,
        "distribution": release.distribution,
        "version": release.version,
        "state": str(status.state),
        "approved_by": status.decided_by if approved else None,
        "approved_at": decided_at if approved else None,
        "decided_by": status.decided_by,
        "decided_at": decided_at,
        "instruments": sorted(
            name for name, config in settings.instruments.items() if config.plugin == release.name
        ),
    }


def _local_list() -> list[dict[str, Any]]:
    from autoreduce.cli.startup import cli_settings, migrated_database
    from autoreduce.plugin_approvals import statuses
    from autoreduce.plugin_manager import installed_plugins

    settings = cli_settings()
    releases = sorted(installed_plugins().releases(), key=lambda release: release.name)
    database = migrated_database(settings)
    try:
        with database.read_session() as session:
            return [_item(status, settings) for status in statuses(session, releases)]
    finally:
        database.dispose()


@plugins.command("list", epilog=EXIT_CODES_HELP)
@client_options
@_local_option
def plugins_list(local: bool) -> None:
    """Each plugin: distribution, version, approved/revoked/pending, who decided and when, the
    instruments using it (`autoreduce plugins list`, `autoreduce plugins list --local`)."""
    if local:
        _refuse_api_url_with_local()
        emit(_local_list(), tables.plugins)
        return
    with api() as client:
        emit(client.get(PLUGINS), tables.plugins)


def _chosen_here(names: tuple[str, ...], builtin: bool) -> list[PluginRelease]:
    """The releases installed here named by ``names`` (and the built-ins with ``builtin``)."""
    from autoreduce.plugin_approvals import BUILTIN_DISTRIBUTION
    from autoreduce.plugin_manager import installed_plugins

    releases = {release.name: release for release in installed_plugins().releases()}
    unknown = [name for name in names if name not in releases]
    if unknown:
        installed = ", ".join(sorted(releases)) or "none"
        raise click.ClickException(
            f"no plugin named {', '.join(unknown)} is installed (installed: {installed})"
        )
    chosen = [releases[name] for name in names]
    if builtin:
        chosen += [r for r in releases.values() if r.distribution == BUILTIN_DISTRIBUTION]
    return list({release.name: release for release in chosen}.values())


def _decide_here(names: tuple[str, ...], builtin: bool, approve: bool) -> list[dict[str, Any]]:
    from autoreduce.audit import command_line_actor
    from autoreduce.cli.startup import cli_settings, migrated_database
    from autoreduce.plugin_approvals import ApprovalState, decide

    chosen = _chosen_here(names, builtin)
    verdict = ApprovalState.APPROVED if approve else ApprovalState.REVOKED
    settings = cli_settings()
    database = migrated_database(settings)
    decided = []
    try:
        for release in chosen:
            try:
                status = decide(database, release, verdict, command_line_actor())
            except ValueError as error:
                raise click.ClickException(str(error)) from None
            decided.append(_item(status, settings))
    finally:
        database.dispose()
    return decided


def _decide(names: tuple[str, ...], *, local: bool, builtin: bool, approve: bool) -> None:
    if not names and not builtin:
        raise click.UsageError("name a plugin, or give --builtin" if approve else "name a plugin")
    if local or builtin:
        _refuse_api_url_with_local()
        emit(_decide_here(names, builtin, approve), tables.plugin_verdicts)
        return
    action = "approve" if approve else "revoke"
    with api() as client:
        decided = [client.post(f"{PLUGINS}/{path_part(name)}/{action}", {}) for name in names]
    emit(decided, tables.plugin_verdicts)


@plugins.command("approve", epilog=EXIT_CODES_HELP)
@client_options
@_local_option
@click.argument("names", nargs=-1)
@click.option(
    "--builtin",
    is_flag=True,
    help="Approve the plugins the autoreduce distribution installs here (implies --local).",
)
def plugins_approve(names: tuple[str, ...], local: bool, builtin: bool) -> None:
    """Approve the plugins NAMES at their installed versions; their held runs are then reduced
    (`autoreduce plugins approve reflectometry`, `autoreduce plugins approve --builtin`)."""
    _decide(names, local=local, builtin=builtin, approve=True)


@plugins.command("revoke", epilog=EXIT_CODES_HELP)
@client_options
@_local_option
@click.argument("names", nargs=-1, required=True)
def plugins_revoke(names: tuple[str, ...], local: bool) -> None:
    """Revoke the plugins NAMES at their installed versions; their new runs are held
    (`autoreduce plugins revoke reflectometry`)."""
    _decide(names, local=local, builtin=False, approve=False)
