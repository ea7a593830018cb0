"""``autoreduce dlq``: an operator lists, shows, replays and purges dead letters."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from autoreduce.cli import main
from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus
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


def dead_letter_of_a_run(database: Database, queue: SqlTransport, status: RunStatus) -> str:
    """A dead letter naming a real run in ``status``; its message id."""
    with database.session() as session:
        session.merge(Instrument(name="GEM"))
        run = ReductionRun(
            instrument="GEM", run_number=123, run_version=0, status=status, data_path="/x"
        )
        session.add(run)
        session.flush()
        run_id = run.id
    body = json.dumps({"run_id": run_id, "instrument": "GEM", "run_number": 123, "run_version": 0})
    queue.send(PENDING_QUEUE, body)
    delivery = queue.receive(PENDING_QUEUE, timeout_s=1)
    assert delivery is not None
    queue.dead_letter(delivery, "gave up after 3 attempts")
    [letter] = [d for d in queue.browse(DEAD_LETTER_QUEUE) if d.body == body]
    return letter.message_id


@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.SKIPPED])
def test_replaying_a_run_already_final_says_so_and_keeps_the_letter(
    database: Database, queue: SqlTransport, status: RunStatus
) -> None:
    message_id = dead_letter_of_a_run(database, queue, status)

    result = CliRunner().invoke(main, ["dlq", "replay", message_id])

    assert result.exit_code == 1
    assert (
        f"run GEM 123 v0 is already {status}; replaying would do nothing — re-run it with "
        "POST /api/v1/runs/GEM/123/reruns"
    ) in result.output
    assert message_id in [d.message_id for d in queue.browse(DEAD_LETTER_QUEUE)]
    assert queue.browse(PENDING_QUEUE) == []


def test_replay_all_keeps_the_letters_of_final_runs_and_replays_the_rest(
    database: Database, queue: SqlTransport
) -> None:
    kept_id = dead_letter_of_a_run(database, queue, RunStatus.ERROR)

    result = cli("replay", "--all")

    assert result.exit_code == 0
    assert f"kept {kept_id}: run GEM 123 v0 is already Error" in result.stdout
    assert [d.message_id for d in queue.browse(DEAD_LETTER_QUEUE)] == [kept_id]
    assert len(queue.browse(PENDING_QUEUE)) == 2


def test_a_queued_run_is_replayed(database: Database, queue: SqlTransport) -> None:
    message_id = dead_letter_of_a_run(database, queue, RunStatus.QUEUED)

    result = cli("replay", message_id)

    assert result.exit_code == 0 and f"replayed {message_id} (GEM 123 v0)" in result.stdout
