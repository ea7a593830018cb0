"""A run version's log through the API on real SQLite and MariaDB: as text, and followed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunLogLine, RunOutput, RunStatus, utcnow
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from rest_api import create_app
from tests.api_client import RUNS, run_body
from tests.sse import Event, parse


def log_url(run_number: int = 44733, version: int = 0, instrument: str = "GEM") -> str:
    return f"{RUNS}/{instrument}/{run_number}/versions/{version}/log"


def recorded_run(
    app_client: TestClient, auth: Callable[..., dict[str, str]], run_number: int = 44733, **values
) -> int:
    """Submit a run through the API, then put it in the state ``values`` say; its id."""
    response = app_client.post(RUNS, json=run_body(run_number), headers=auth("detector"))
    assert response.status_code == 201, response.text
    run_id: int = response.json()["id"]
    database: Database = app_client.app.state.api.database  # type: ignore[attr-defined]
    if values:
        with database.session() as session:
            session.execute(update(ReductionRun).where(ReductionRun.id == run_id).values(**values))
    return run_id


def ship(db: Database, run_id: int, *texts: str, first_seq: int = 1) -> None:
    """Lines as a processor ships them."""
    rows = [
        {"run_id": run_id, "attempt": 1, "seq": seq, "logged_at": utcnow(), "text": text}
        for seq, text in enumerate(texts, start=first_seq)
    ]
    with db.session() as session:
        session.execute(insert(RunLogLine), rows)


def completed_with_log_file(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database, tmp_path: Path
) -> int:
    output_dir = tmp_path / "outputs" / "GEM" / "44733" / "v0"
    output_dir.mkdir(parents=True)
    (output_dir / "reduction.log").write_text("reducing GEM 44733\nsummed 3 banks\n")
    run_id = recorded_run(app_client, auth, status=RunStatus.COMPLETED, output_dir=str(output_dir))
    with db.session() as session:
        session.add(RunOutput(run_id=run_id, kind="log", name="reduction.log", size_bytes=34))
    return run_id


# --- the log as text ------------------------------------------------------------------------


def test_a_completed_run_answers_its_reduction_log_as_text(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database, tmp_path: Path
) -> None:
    completed_with_log_file(app_client, auth, db, tmp_path)

    response = app_client.get(log_url())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "reducing GEM 44733\nsummed 3 banks\n"


def test_a_processing_run_answers_the_lines_shipped_so_far(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run_id = recorded_run(app_client, auth, status=RunStatus.PROCESSING)
    ship(db, run_id, "reducing GEM 44733", "progress 50%")

    response = app_client.get(log_url())

    assert response.status_code == 200
    assert response.text == "reducing GEM 44733\nprogress 50%\n"


def test_a_final_run_whose_log_file_this_host_cannot_read_answers_the_shipped_lines(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run_id = recorded_run(
        app_client, auth, status=RunStatus.ERROR, output_dir="/elsewhere/on/the/processor"
    )
    ship(db, run_id, "Traceback (most recent call last):", "RuntimeError: boom")

    assert app_client.get(log_url()).text == (
        "Traceback (most recent call last):\nRuntimeError: boom\n"
    )


# --- not found ------------------------------------------------------------------------------


def test_an_unknown_run_or_version_is_a_404_problem(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    recorded_run(app_client, auth)

    for url in (log_url(run_number=12), log_url(version=1), log_url(instrument="WISH")):
        response = app_client.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"] == "application/problem+json"
        assert "not found" in response.json()["detail"]


def test_a_token_of_another_instrument_sees_no_log_not_even_followed(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database, tmp_path: Path
) -> None:
    completed_with_log_file(app_client, auth, db, tmp_path)
    wish_only = auth("scientist", "WISH")

    assert app_client.get(log_url(), headers=wish_only).status_code == 404
    assert (
        app_client.get(log_url(), params={"follow": "true"}, headers=wish_only).status_code == 404
    )
    assert app_client.get(log_url(), headers=auth("scientist", "GEM")).status_code == 200


def test_a_skipped_run_without_any_log_is_a_404_saying_so(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    recorded_run(app_client, auth, status=RunStatus.SKIPPED, message="calibration run")

    response = app_client.get(log_url())

    assert response.status_code == 404
    assert response.json()["detail"] == "run 'GEM' 44733 v0 has no log (Skipped)"


# --- followed -------------------------------------------------------------------------------


def test_following_a_final_run_sends_each_line_with_its_number_then_the_end(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run_id = recorded_run(app_client, auth, status=RunStatus.ERROR, message="plugin raised")
    ship(db, run_id, "first", "second: with a colon", "third")

    response = app_client.get(log_url(), params={"follow": "true"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert parse(response.text) == [
        Event("first", id="1"),
        Event("second: with a colon", id="2"),
        Event("third", id="3"),
        Event(json.dumps({"status": "Error", "message": "plugin raised"}), type="end"),
    ]


def test_last_event_id_resumes_after_that_line(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run_id = recorded_run(app_client, auth, status=RunStatus.COMPLETED)
    ship(db, run_id, *(f"line {n}" for n in range(1, 8)))

    response = app_client.get(log_url(), params={"follow": "true"}, headers={"Last-Event-ID": "5"})

    assert [(e.id, e.data) for e in parse(response.text)[:-1]] == [
        ("6", "line 6"),
        ("7", "line 7"),
    ]
    assert parse(response.text)[-1].type == "end"


def test_a_stream_longer_than_one_read_sends_every_line_once_in_order(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run_id = recorded_run(app_client, auth, status=RunStatus.COMPLETED)
    ship(db, run_id, *(f"line {n}" for n in range(1, 1201)))

    lines = parse(app_client.get(log_url(), params={"follow": "true"}).text)[:-1]

    assert [e.id for e in lines] == [str(n) for n in range(1, 1201)]


def test_a_malformed_last_event_id_is_a_422(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    recorded_run(app_client, auth, status=RunStatus.COMPLETED)

    response = app_client.get(log_url(), params={"follow": "1"}, headers={"Last-Event-ID": "x"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]


def test_a_finished_stream_gives_its_follower_slot_back(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    recorded_run(app_client, auth, status=RunStatus.COMPLETED)
    slots = app_client.app.state.api.log_followers  # type: ignore[attr-defined]

    for _ in range(slots.limit + 1):
        assert app_client.get(log_url(), params={"follow": "true"}).status_code == 200

    assert slots.taken == 0


def test_beyond_the_cap_on_followers_a_stream_is_a_503_problem(
    settings: Settings, plugins: Plugins, data_files: None
) -> None:
    capped = settings.model_copy(update={"max_log_followers": 0})
    with TestClient(create_app(capped, relay=False, plugins=plugins)) as client:
        token = create_token(client.app.state.api.database, "detector", "detector")  # type: ignore[attr-defined]
        client.post(RUNS, json=run_body(), headers={"Authorization": f"Bearer {token}"})
        response = client.get(log_url(), params={"follow": "true"})

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "max_log_followers" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
