"""The ``autoreduce`` command: one subcommand per service, plus the operator's tools.

This is the only module of ``autoreduce`` that imports the service packages, and each
subcommand imports its own service only when it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from autoreduce import __version__
from autoreduce.logs import configure_logging
from autoreduce.settings import Settings, load_settings
from autoreduce.transport import Transport

ROLES = ("admin", "scientist", "detector")


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as error:  # a bad config file is the operator's to fix: say what is wrong
        raise click.ClickException(f"invalid configuration: {error}") from None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


@click.group()
@click.version_option(__version__, prog_name="autoreduce")
def main() -> None:
    """Reduce scientific data the moment an instrument writes it."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def api(host: str, port: int) -> None:
    """Serve the REST API, the web UI and the outbox relay."""
    settings = _settings()
    configure_logging("api", settings.logs_dir)
    import rest_api

    rest_api.serve(settings, host=host, port=port)


@main.command()
@click.option("--poll", "poll_s", type=float, help="Poll every SECONDS (network filesystems).")
@click.option("--from", "from_run", type=int, help="Submit runs from RUN on (first start).")
@click.option("--instrument", "instruments", multiple=True, help="Only these instruments.")
def detect(poll_s: float | None, from_run: int | None, instruments: tuple[str, ...]) -> None:
    """Watch every configured lastruns.txt and submit new runs to the API."""
    settings = _settings()
    configure_logging("detect", settings.logs_dir)
    import run_detection

    run_detection.serve(
        settings,
        poll_interval_s=poll_s,
        from_run=from_run,
        instruments=list(instruments) or None,
        stop=_stop_on_signals(),
    )


@main.command()
@click.option("--id", "processor_id", help="Name of this processor (default host:pid:random).")
def process(processor_id: str | None) -> None:
    """Consume the pending queue and reduce each run in an isolated child process."""
    settings = _settings()
    configure_logging(f"process-{os.getpid()}", settings.logs_dir)
    import queue_processor

    queue_processor.serve(settings, processor_id=processor_id)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--processors", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--poll", "poll_s", type=float, help="Detector polls every SECONDS.")
def up(host: str, port: int, processors: int, poll_s: float | None) -> None:
    """Run every service at once (API, detector, N processors) until Ctrl-C."""
    from autoreduce.local import local_supervisor

    settings = _settings()
    configure_logging("up", settings.logs_dir)
    supervisor = local_supervisor(
        settings, host=host, port=port, processors=processors, poll_s=poll_s
    )
    supervisor.start()
    click.echo(f"autoreduce is up: API and web UI at http://{host}:{port}/ (Ctrl-C stops it)")
    supervisor.run()


@main.command()
@click.option("--dir", "directory", default="demo", show_default=True, type=click.Path())
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--interval", "interval_s", default=3.0, show_default=True, type=float)
@click.option("--processors", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--exit-when-done", is_flag=True, help="Stop once every run is finished.")
def demo(
    directory: str,
    port: int,
    runs: int,
    interval_s: float,
    processors: int,
    exit_when_done: bool,
) -> None:
    """Create a demo archive, start everything and play instruments writing runs."""
    from autoreduce.demo.runner import run_demo

    code = run_demo(
        Path(directory),
        port=port,
        runs=runs,
        interval_s=interval_s,
        processors=processors,
        exit_when_done=exit_when_done,
    )
    sys.exit(code)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest revision."""
    from autoreduce.db import Database

    settings = _settings()
    Database(settings.resolved_database_url).upgrade()
    click.echo("database schema is up to date")


@main.group()
def token() -> None:
    """API tokens (stored hashed; shown once)."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--instrument", "instruments", multiple=True, help="Limit to these instruments.")
def token_create(name: str, role: str, instruments: tuple[str, ...]) -> None:
    """Create a token and print it (the only time it is shown)."""
    from autoreduce.db import Database
    from autoreduce.tokens import create_token

    database = Database(_settings().resolved_database_url)
    database.upgrade()
    try:
        secret = create_token(database, name, role, instruments=list(instruments))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(secret)


@token.command("list")
def token_list() -> None:
    """List tokens: name, role, instruments, created, revoked."""
    from autoreduce.db import Database
    from autoreduce.tokens import list_tokens

    for row in list_tokens(Database(_settings().resolved_database_url)):
        instruments = ",".join(row.instruments or []) or "*"
        revoked = f" revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        click.echo(f"{row.name}\t{row.role}\t{instruments}\t{row.created_at:%Y-%m-%d}{revoked}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the token called NAME."""
    from autoreduce.db import Database
    from autoreduce.tokens import revoke_token

    if not revoke_token(Database(_settings().resolved_database_url), name):
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"revoked {name}")


@main.group()
def dlq() -> None:
    """The dead-letter queue: messages that could not be processed, with their reasons."""


def _dlq_transport() -> Transport:
    from autoreduce.transport import open_transport

    return open_transport(_settings(), consumer=f"dlq-cli:{os.getpid()}")


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
def dlq_list(limit: int) -> None:
    """List dead letters: id, run, reason."""
    from autoreduce.dead_letters import list_dead_letters

    with _dlq_transport() as transport:
        letters = list_dead_letters(transport, limit)
    for letter in letters:
        click.echo(f"{letter.message_id}\t{letter.run}\t{letter.reason}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("message_id")
def dlq_show(message_id: str) -> None:
    """Show one dead letter's headers and body."""
    from autoreduce.dead_letters import find_dead_letter

    with _dlq_transport() as transport:
        letter = find_dead_letter(transport, message_id)
    if letter is None:
        raise click.ClickException(f"no dead letter with id {message_id}")
    for name, value in sorted(letter.headers.items()):
        click.echo(f"{name}: {value}")
    click.echo("")
    click.echo(letter.body)


@dlq.command("replay")
@click.argument("message_id", required=False)
@click.option("--all", "replay_every", is_flag=True, help="Replay every dead letter.")
def dlq_replay(message_id: str | None, replay_every: bool) -> None:
    """Put one dead letter (or --all) back on the queue it came from."""
    from autoreduce.dead_letters import replay, replay_all

    if bool(message_id) == replay_every:
        raise click.UsageError("give either a MESSAGE_ID or --all")
    with _dlq_transport() as transport:
        if replay_every:
            letters = replay_all(transport)
        else:
            letter = replay(transport, str(message_id))
            if letter is None:
                raise click.ClickException(f"no dead letter with id {message_id}")
            letters = [letter]
    for letter in letters:
        click.echo(f"replayed {letter.message_id} ({letter.run}) to {letter.original_queue}")


@dlq.command("purge")
@click.confirmation_option(prompt="Delete every dead letter for good?")
def dlq_purge() -> None:
    """Delete every dead letter."""
    from autoreduce.messages import DEAD_LETTER_QUEUE

    with _dlq_transport() as transport:
        count = transport.purge(DEAD_LETTER_QUEUE)
    click.echo(f"purged {count} dead letter(s)")


if __name__ == "__main__":
    main()
