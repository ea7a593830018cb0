"""``autoreduce dlq``: an operator lists, shows, replays and purges dead letters."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from autoreduce.cli import main
from autoreduce.db import Database
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.transport.sql import SqlTransport

RUN_BODY = json.dumps({"instrument": "GEM", "run_number": 7, "run_version": 0})


@pytest.fixture
def queue(database: Database, monkeypatch: pytest.MonkeyPatch) -> SqlTransport:
    monkeypatch.setenv("AUTOREDUCE_DATABASE_URL", database.url)
    monkeypatch.setenv("AUTOREDUCE_BROKER_URL", "sql://")
    transport = SqlTransport(database.url, consumer="test", database=database)
    for body in (RUN_BODY, "not json at all"):
        transport.send(PENDING_QUEUE, body, {"x-outbox-id": "1"})
        delivery = transport.receive(PENDING_QUEUE, timeout_s=1)
        assert delivery is not None
        transport.dead_letter(delivery, f"reason for {body[:8]}")
    return transport


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["dlq", *args], input=input, catch_exceptions=False)


def test_list_shows_each_dead_letter_with_its_run_and_reason(queue: SqlTransport) -> None:
    result = cli("list")

    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 0 and len(lines) == 2
    assert lines[0].split("\t")[1:] == ["GEM 7 v0", 'reason for {"instru']
    assert lines[1].split("\t")[1:] == ["?", "reason for not json"]


def test_show_prints_headers_and_body(queue: SqlTransport) -> None:
    message_id = queue.browse(DEAD_LETTER_QUEUE)[0].message_id

    result = cli("show", message_id)

    assert result.exit_code == 0
    assert "x-dead-letter-reason: reason for" in result.stdout
    assert "x-original-queue: autoreduce.reduction.pending" in result.stdout
    assert result.stdout.rstrip().endswith(RUN_BODY)


def test_replay_moves_one_letter_back_to_its_queue_without_the_dead_letter_headers(
    queue: SqlTransport,
) -> None:
    message_id = queue.browse(DEAD_LETTER_QUEUE)[0].message_id

    result = cli("replay", message_id)

    assert result.exit_code == 0 and "replayed" in result.stdout
    [back] = queue.browse(PENDING_QUEUE)
    assert back.body == RUN_BODY
    assert "x-dead-letter-reason" not in back.headers
    assert back.headers["x-replayed-from-dlq"] == "true"
    assert back.headers["x-outbox-id"] == "1"
    assert len(queue.browse(DEAD_LETTER_QUEUE)) == 1


def test_replay_all_empties_the_dead_letter_queue(queue: SqlTransport) -> None:
    result = cli("replay", "--all")

    assert result.exit_code == 0
    assert queue.browse(DEAD_LETTER_QUEUE) == []
    assert len(queue.browse(PENDING_QUEUE)) == 2


def test_an_unknown_id_or_a_missing_argument_is_a_clear_error(queue: SqlTransport) -> None:
    unknown = CliRunner().invoke(main, ["dlq", "show", "999999"])
    neither = CliRunner().invoke(main, ["dlq", "replay"])

    assert unknown.exit_code == 1 and "no dead letter with id 999999" in unknown.output
    assert neither.exit_code == 2 and "either a MESSAGE_ID or --all" in neither.output


def test_purge_asks_first_then_deletes_every_dead_letter(queue: SqlTransport) -> None:
    declined = cli("purge", input="n\n")
    assert declined.exit_code == 1 and len(queue.browse(DEAD_LETTER_QUEUE)) == 2

    result = cli("purge", "--yes")

    assert "purged 2 dead letter(s)" in result.stdout
    assert queue.browse(DEAD_LETTER_QUEUE) == []
