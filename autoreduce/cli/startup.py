"""What every subcommand does first: read the settings, reach the database, speak plainly.

Expected conditions — a bad configuration, an unreachable database or broker — end a command
with one line that says what to do (exit 2 for configuration, 1 otherwise), never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from autoreduce.logs import configure_logging
from autoreduce.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # the database layer is imported when a command needs it, not to start one
    from autoreduce.db import Database

logger = logging.getLogger("autoreduce.cli")
_DATABASE_URL = "autoreduce.database_url"  # the click context's meta key: for error messages


class ConfigProblem(click.ClickException):
    """The configuration cannot be used: each problem on its own line, exit status 2."""

    exit_code = 2

    def __init__(self, problems: list[str], advice: str = "") -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.advice = advice

    def show(self, file: Any = None) -> None:
        for problem in self.problems:
            click.echo(f"Error: {problem}", err=True)
        if self.advice:
            click.echo(self.advice, err=True)


class DatabaseUnreachable(click.ClickException):
    """The database did not answer; the URL is shown without its password."""

    def __init__(self, url: str | None, error: BaseException) -> None:
        from autoreduce.db import safe_url

        cause = getattr(error, "orig", None) or error
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        where = f" at {safe_url(url)}" if url else ""
        super().__init__(f"cannot reach the database{where}: {reason}")


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand whose module is imported only when the subcommand is named.

    ``target`` is ``"module:attribute"`` within :mod:`autoreduce.cli`; ``help`` is the first
    paragraph of the command's own help, shown by ``autoreduce --help`` without importing it.
    """

    name: str
    target: str
    help: str

    def load(self) -> click.Command:
        module, attribute = self.target.split(":")
        command = getattr(importlib.import_module(f"autoreduce.cli.{module}"), attribute)
        assert isinstance(command, click.Command), self.target
        return command


class AutoreduceGroup(click.Group):
    """The top-level group: loads a subcommand when named; one line for expected failures."""

    def __init__(self, *args: Any, lazy: Sequence[LazyCommand] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {command.name: command for command in lazy}
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy.get(cmd_name)
        if lazy is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # `autoreduce --help`: the table's help, no import
            return click.Command(cmd_name, help=lazy.help)
        command = lazy.load()
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            raise ConfigProblem(error.problems) from None
        except Exception as error:
            expected = _expected_failure(ctx, error)
            if expected is None:
                raise
            raise expected from None


def _expected_failure(ctx: click.Context, error: Exception) -> click.ClickException | None:
    """The one-line answer to an expected failure (broker, schema, database); None otherwise."""
    from alembic.util import CommandError

    from autoreduce.db import is_unreachable
    from autoreduce.transport import TransportError

    if isinstance(error, TransportError):
        return click.ClickException(f"cannot use the broker: {error}")
    if isinstance(error, CommandError):  # Alembic: e.g. a revision this version does not know
        return click.ClickException(
            f"cannot migrate the database schema: {error} (was it migrated by a newer autoreduce?)"
        )
    if is_unreachable(error):
        return DatabaseUnreachable(ctx.meta.get(_DATABASE_URL), error)
    return None


def cli_settings() -> Settings:
    """The settings, or exit 2 with each problem on one line."""
    try:
        settings = load_settings()
    except ConfigError as error:
        raise ConfigProblem(error.problems) from None
    click.get_current_context().meta[_DATABASE_URL] = settings.resolved_database_url
    return settings


def service_settings() -> Settings:
    """The settings a service starts with: valid, and every instrument's plugin installed."""
    from autoreduce.config_check import plugin_problems
    from autoreduce.plugin_manager import installed_plugins

    settings = cli_settings()
    problems = plugin_problems(settings, installed_plugins())
    if problems:
        raise ConfigProblem(problems)
    return settings


def start_logging(service: str, settings: Settings, **fields: object) -> None:
    """Log ``service`` to ``<logs_dir>/<service>.jsonl``; warn of ignored environment variables."""
    from autoreduce.config_check import environment_warnings

    configure_logging(service, settings.logs_dir, fields=fields)
    for warning in environment_warnings(os.environ):
        logger.warning(warning)


def migrated_database(settings: Settings) -> Database:
    """The database, its schema brought up to date first (so a fresh data dir just works)."""
    from autoreduce.db import Database, is_unreachable

    database = Database(settings.resolved_database_url)
    try:
        database.upgrade()
    except Exception as error:
        database.dispose()
        if is_unreachable(error):
            raise DatabaseUnreachable(settings.resolved_database_url, error) from None
        raise
    return database


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
