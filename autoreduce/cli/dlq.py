"""``autoreduce dlq``: list, show, replay and purge dead letters."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from autoreduce.cli.startup import cli_settings, migrated_database

if TYPE_CHECKING:
    from autoreduce.db import Database
    from autoreduce.transport import Transport


@click.group()
def dlq() -> None:
    """The dead-letter queue: messages that could not be processed, with their reasons."""


@contextmanager
def _dead_letter_queue() -> Iterator[tuple[Transport, Database]]:
    """The transport and the (migrated) database: the SQL queue lives in the database."""
    from autoreduce.transport import open_transport

    settings = cli_settings()
    database = migrated_database(settings)
    try:
        with open_transport(settings, consumer=f"dlq-cli:{os.getpid()}") as transport:
            yield transport, database
    finally:
        database.dispose()


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
def dlq_list(limit: int) -> None:
    """List dead letters: id, run, reason."""
    from autoreduce.dead_letters import list_dead_letters

    with _dead_letter_queue() as (transport, _):
        letters = list_dead_letters(transport, limit)
    for letter in letters:
        click.echo(f"{letter.message_id}\t{letter.run}\t{letter.reason}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("message_id")
def dlq_show(message_id: str) -> None:
    """Show one dead letter's headers and body."""
    from autoreduce.dead_letters import find_dead_letter

    with _dead_letter_queue() as (transport, _):
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
    """Put one dead letter (or --all) back on the queue it came from.

    A letter whose run is already Completed, Error or Skipped stays in the dead-letter queue:
    replaying it would do nothing; submit a re-run instead.
    """
    from autoreduce.dead_letters import find_dead_letter, replay, replay_all, replay_refusal

    if bool(message_id) == replay_every:
        raise click.UsageError("give either a MESSAGE_ID or --all")
    with _dead_letter_queue() as (transport, database):
        if replay_every:
            letters, kept = replay_all(
                transport, refusal=lambda letter: replay_refusal(database, letter)
            )
        else:
            found = find_dead_letter(transport, str(message_id))
            if found is None:
                raise click.ClickException(f"no dead letter with id {message_id}")
            refusal = replay_refusal(database, found)
            if refusal:
                raise click.ClickException(f"{refusal} (the letter stays in the dead-letter queue)")
            letter = replay(transport, str(message_id))
            if letter is None:
                raise click.ClickException(f"no dead letter with id {message_id}")
            letters, kept = [letter], []
    for letter in letters:
        click.echo(f"replayed {letter.message_id} ({letter.run}) to {letter.original_queue}")
    for letter, reason in kept:
        click.echo(f"kept {letter.message_id}: {reason}")


@dlq.command("purge")
@click.confirmation_option(prompt="Delete every dead letter for good?")
def dlq_purge() -> None:
    """Delete every dead letter."""
    from autoreduce.messages import DEAD_LETTER_QUEUE

    with _dead_letter_queue() as (transport, _):
        count = transport.purge(DEAD_LETTER_QUEUE)
    click.echo(f"purged {count} dead letter(s)")
