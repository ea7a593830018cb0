"""What every client command shares: the API, ``--json``, and exit codes that mean something.

The client commands (``runs``, ``reruns``, ``failures``, ``instruments``, ``rules``,
``experiments``, ``plugins``, ``login``) talk to the API over HTTP only; they never import
``rest_api``.
People get tables (rich); ``--json`` prints the API's JSON, one document, for scripts.

Exit codes: 0 done; 1 the API said no (a 4xx, its ``detail`` printed); 2 a usage or
configuration error; 3 the API cannot be reached (the URL tried is printed); 4 not signed in, or
the credentials are refused or not allowed (401/403); 5 the API failed (5xx).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console

from autoreduce.api_client import (
    ApiClient,
    ApiError,
    ApiUnreachable,
    NotAuthorised,
    ServerFault,
)
from autoreduce.client_config import load_credentials

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_AUTHORISED = 4
EXIT_SERVER_FAULT = 5

EXIT_CODES_HELP = (
    "Exit codes: 0 done, 1 the API said no (4xx), 2 usage error, 3 the API cannot be reached, "
    "4 not signed in or not allowed (401/403), 5 the API failed (5xx)."
)

FINAL_STATUSES = frozenset({"Completed", "Error", "Skipped", "Cancelled", "Refused"})
"""The states a run version (a job, a batch's run) ends in."""
POLL_INTERVAL_S = 0.5  # how often a command that waits asks the API again

_JSON = "autoreduce.client.json"
_API_URL = "autoreduce.client.api_url"

F = TypeVar("F", bound=Callable[..., Any])


class ClientFailure(click.ClickException):
    """An :class:`ApiError` as the command's last line; the API said no (exit 1)."""

    exit_code = EXIT_REFUSED


class ApiUnreachableFailure(ClientFailure):
    exit_code = EXIT_UNREACHABLE


class NotAuthorisedFailure(ClientFailure):
    exit_code = EXIT_NOT_AUTHORISED


class ServerFaultFailure(ClientFailure):
    exit_code = EXIT_SERVER_FAULT


def client_failure(error: ApiError) -> ClientFailure:
    """The click exception that ends a command on ``error``, with the exit code of its kind."""
    if isinstance(error, ApiUnreachable):
        return ApiUnreachableFailure(str(error))
    if isinstance(error, NotAuthorised):
        return NotAuthorisedFailure(str(error))
    if isinstance(error, ServerFault):
        return ServerFaultFailure(str(error))
    return ClientFailure(str(error))  # ApiRefused, and any other ApiError


class ClientCommand(click.Command):
    """A client command: an :class:`ApiError` ends it with one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise client_failure(error) from None


class ClientGroup(click.Group):
    """A group of client commands; each command's API errors end it with one line."""

    command_class = ClientCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise client_failure(error) from None


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta[key] = value
        return value

    return callback


def client_options(command: F) -> F:
    """``--json`` and ``--api-url`` on a client command (read back by :func:`emit`, :func:`api`)."""
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_remember(_JSON),
        help="Print the API's JSON (one document) instead of a table.",
    )(command)
    command = click.option(
        "--api-url",
        metavar="URL",
        expose_value=False,
        callback=_remember(_API_URL),
        help="The API (default: $AUTOREDUCE_API_URL, then `autoreduce login`'s).",
    )(command)
    return command


def wants_json() -> bool:
    return bool(click.get_current_context().meta.get(_JSON))


@contextmanager
def api() -> Iterator[ApiClient]:
    """A client of the API the options, the environment or the user's login name."""
    client = ApiClient(load_credentials(click.get_current_context().meta.get(_API_URL)))
    try:
        yield client
    finally:
        client.close()


def console(*, stderr: bool = False) -> Console:
    """Where tables go: standard output (or error), wrapped only on a terminal."""
    return Console(stderr=stderr, soft_wrap=not stderr, highlight=False)


def emit(document: Any, render: Callable[[Console, Any], None]) -> None:
    """``document`` as JSON with ``--json``, else as ``render`` draws it for people."""
    if wants_json():
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        render(console(), document)


def parse_assignments(assignments: tuple[str, ...]) -> dict[str, Any]:
    """``--var NAME=VALUE`` options as a dict; each value is JSON, else a string."""
    from autoreduce.cli.reduce import parse_variable

    return dict(map(parse_variable, assignments))
