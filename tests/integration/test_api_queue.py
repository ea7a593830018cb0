"""``/api/v1/queue`` and ``/api/v1/dead-letters`` for the admin pages, on SQLite and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, ReductionRun, RunStatus
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.transport.sql import SqlTransport
from tests.api_client import RUNS, run_body

LETTERS = "/api/v1/dead-letters"


@pytest.fixture
def queue(db: Database) -> SqlTransport:
    return SqlTransport(db.url, consumer="test", database=db)


@pytest.fixture
def admin(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth("admin")


def dead_letter(queue: SqlTransport, body: str, reason: str) -> str:
    queue.send(PENDING_QUEUE, body)
    delivery = queue.receive(PENDING_QUEUE, timeout_s=1)
    assert delivery is not None
    queue.dead_letter(delivery, reason)
    return next(d.message_id for d in queue.browse(DEAD_LETTER_QUEUE) if d.body == body)


def run_message(db: Database, run_id: int) -> str:
    with db.session() as session:
        run = session.get(ReductionRun, run_id)
        assert run is not None
        return json.dumps(
            {
                "schema": 1,
                "run_id": run.id,
                "instrument": run.instrument,
                "run_number": run.run_number,
                "run_version": run.run_version,
                "data_path": run.data_path,
                "submitted_at": "2026-11-24T06:40:00Z",
            }
        )


def submitted(client: TestClient, auth: Callable[..., dict[str, str]], run_number: int) -> int:
    response = client.post(RUNS, json=run_body(run_number), headers=auth("detector"))
    assert response.status_code == 201, response.text
    run_id: int = response.json()["id"]
    return run_id


def test_dead_letters_are_listed_with_run_reason_and_when(
    app_client: TestClient, queue: SqlTransport, admin: dict[str, str]
) -> None:
    letter_id = dead_letter(queue, "not json", "invalid run message: body: not JSON")

    response = app_client.get(LETTERS, headers=admin)

    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["id"] == letter_id and item["run"] == "?" and item["run_id"] is None
    assert item["reason"] == "invalid run message: body: not JSON"
    assert item["original_queue"] == PENDING_QUEUE and item["dead_lettered_at"]


def test_one_dead_letter_shows_its_headers_and_body(
    app_client: TestClient, queue: SqlTransport, admin: dict[str, str]
) -> None:
    letter_id = dead_letter(queue, "not json", "bad")

    response = app_client.get(f"{LETTERS}/{letter_id}", headers=admin)

    assert response.status_code == 200
    assert response.json()["body"] == "not json"
    assert response.json()["headers"]["x-dead-letter-reason"] == "bad"


def test_replay_puts_the_letter_back_and_records_who_did_it(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    queue: SqlTransport,
    admin: dict[str, str],
    db: Database,
) -> None:
    run_id = submitted(app_client, auth, 3)
    letter_id = dead_letter(queue, run_message(db, run_id), "gave up after 3 attempts")

    response = app_client.post(f"{LETTERS}/{letter_id}/replay", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["replayed"]["run"] == "GEM 3 v0"
    assert queue.browse(DEAD_LETTER_QUEUE) == []
    [back] = queue.browse(PENDING_QUEUE)
    assert json.loads(back.body)["run_id"] == run_id
    with db.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "dead_letter.replay")
        ).one()
    assert (event.actor, event.instrument) == ("admin-0", "GEM")


def test_replaying_a_letter_of_a_finished_run_is_a_409_and_the_letter_stays(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    queue: SqlTransport,
    admin: dict[str, str],
    db: Database,
) -> None:
    run_id = submitted(app_client, auth, 4)
    with db.session() as session:
        run = session.get(ReductionRun, run_id)
        assert run is not None
        run.status = RunStatus.ERROR
    letter_id = dead_letter(queue, run_message(db, run_id), "gave up")

    response = app_client.post(f"{LETTERS}/{letter_id}/replay", headers=admin)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "already Error" in response.json()["detail"]
    assert len(queue.browse(DEAD_LETTER_QUEUE)) == 1


def test_delete_purges_one_letter_and_records_it(
    app_client: TestClient, queue: SqlTransport, admin: dict[str, str], db: Database
) -> None:
    gone = dead_letter(queue, "first", "bad")
    kept = dead_letter(queue, "second", "bad")

    response = app_client.delete(f"{LETTERS}/{gone}", headers=admin)

    assert response.status_code == 204
    assert [d.message_id for d in queue.browse(DEAD_LETTER_QUEUE)] == [kept]
    with db.session() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "dead_letter.purge" in actions


@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("post", "/replay"), ("delete", "")])
def test_an_unknown_letter_is_a_404_problem(
    app_client: TestClient, admin: dict[str, str], method: str, suffix: str
) -> None:
    response = app_client.request(method.upper(), f"{LETTERS}/424242{suffix}", headers=admin)

    assert response.status_code == 404
    assert response.json()["detail"] == "no dead letter with id '424242'"


@pytest.mark.parametrize("path", [LETTERS, "/api/v1/queue"])
def test_only_admins_may_see_the_queue(
    app_client: TestClient, auth: Callable[..., dict[str, str]], path: str
) -> None:
    anonymous = app_client.get(path)
    scientist = app_client.get(path, headers=auth("scientist", "GEM"))

    assert anonymous.status_code == 401 and scientist.status_code == 403


def test_queue_status_is_the_same_report_as_the_command(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    queue: SqlTransport,
    admin: dict[str, str],
) -> None:
    dead_letter(queue, "junk", "bad")
    submitted(app_client, auth, 5)
    app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]

    response = app_client.get("/api/v1/queue", headers=admin)

    assert response.status_code == 200, response.text
    status = response.json()
    assert [(q["name"], q["messages"]) for q in status["queues"]] == [
        (PENDING_QUEUE, 1),
        (DEAD_LETTER_QUEUE, 1),
    ]
    assert status["outbox"] == {"unsent": 0, "oldest_unsent_at": None, "held": []}
    assert status["runs"]["queued"] == 1


@pytest.mark.parametrize("letter_id", ["²", "9" * 40, "ID:host-1:2:3"])
def test_an_id_that_no_queue_could_hold_is_a_404_not_a_crash(
    app_client: TestClient, admin: dict[str, str], letter_id: str
) -> None:
    response = app_client.delete(f"{LETTERS}/{letter_id}", headers=admin)

    assert response.status_code == 404
