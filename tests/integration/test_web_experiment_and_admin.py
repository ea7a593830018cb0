"""The experiment page's batch re-runs and the admin page through the app (real database)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, ReductionRun, RerunBatch, RunStatus
from tests.api_client import RUNS, run_body
from tests.integration.web_session import HTML, sign_in

Auth = Callable[..., dict[str, str]]
REF = "1920123"


@pytest.fixture
def experiment(app_client: TestClient, auth: Auth, db: Database) -> None:
    """Experiment 1920123: GEM 1, 2, 3 and WISH 7, all Completed."""
    detector = auth("detector")
    runs = (("GEM", 1), ("GEM", 2), ("GEM", 3), ("WISH", 7))
    for instrument, number in runs:
        response = app_client.post(RUNS, json=run_body(number, instrument), headers=detector)
        assert response.status_code == 201, response.text
    with db.session() as session:
        session.execute(
            update(ReductionRun).values(experiment_ref=REF, status=RunStatus.COMPLETED.value)
        )


def versions(db: Database, instrument: str, number: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(ReductionRun.run_version).where(
                    ReductionRun.instrument == instrument, ReductionRun.run_number == number
                )
            )
        )


@pytest.mark.usefixtures("experiment")
def test_the_experiment_page_lists_its_runs_across_instruments(app_client: TestClient) -> None:
    page = app_client.get(f"/experiments/{REF}", headers=HTML)
    assert page.status_code == 200
    for path in ("/runs/GEM/1", "/runs/GEM/3", "/runs/WISH/7"):
        assert f'href="{path}"' in page.text
    assert "batch-form" not in page.text  # anonymous: no re-run form


def test_an_unknown_experiment_is_the_404_page(app_client: TestClient) -> None:
    page = app_client.get("/experiments/999", headers=HTML)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]


@pytest.mark.usefixtures("experiment")
def test_a_preview_shows_what_a_batch_would_do_and_queues_nothing(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM", "WISH"))
    form = {
        "csrf_token": csrf,
        "action": "preview",
        "selection": "range",
        "run_min": "2",
        "run_max": "7",
        "changes": "sleep_s = 0.5",
    }
    page = app_client.post(f"/experiments/{REF}/rerun", data=form)
    assert page.status_code == 200
    assert "GEM: 2 of 2 runs would be re-run" in page.text
    assert "WISH: 1 of 1 runs would be re-run" in page.text
    assert "sleep_s: 0.0 → 0.5" in page.text
    assert versions(db, "GEM", 2) == [0]


@pytest.mark.usefixtures("experiment")
def test_queuing_ticked_runs_makes_a_batch_and_shows_its_progress(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM", "WISH"))
    form = {
        "csrf_token": csrf,
        "action": "queue",
        "selection": "selected",
        "runs": ["GEM:1", "GEM:3"],
        "reason": "new calibration",
    }
    answer = app_client.post(f"/experiments/{REF}/rerun", data=form, follow_redirects=False)
    assert answer.status_code == 303
    location = answer.headers["location"]
    batch_id = int(re.search(r"batch=(\d+)", location).group(1))  # type: ignore[union-attr]
    assert versions(db, "GEM", 1) == [0, 1] and versions(db, "GEM", 2) == [0]

    page = app_client.get(location, headers=HTML)
    assert "Queued 2 re-runs" in page.text
    assert f'data-refresh="/batches/{batch_id}/progress"' in page.text
    fragment = app_client.get(f"/batches/{batch_id}/progress", headers=HTML)
    assert "0 of 2 re-runs finished" in fragment.text and "<html" not in fragment.text

    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_version == 1)
            .values(status=RunStatus.COMPLETED.value)
        )
    fragment = app_client.get(f"/batches/{batch_id}/progress", headers=HTML)
    assert "2 of 2 re-runs finished" in fragment.text and "Done." in fragment.text


@pytest.mark.usefixtures("experiment")
def test_a_bad_variable_change_is_shown_on_the_form(app_client: TestClient, db: Database) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM", "WISH"))
    form = {"csrf_token": csrf, "action": "queue", "selection": "all", "changes": "sleep_s = -4"}
    page = app_client.post(f"/experiments/{REF}/rerun", data=form)
    assert page.status_code == 422
    assert 'id="batch-error"' in page.text and "sleep_s" in page.text
    with db.session() as session:
        assert session.scalar(select(RerunBatch)) is None


@pytest.mark.usefixtures("experiment")
@pytest.mark.parametrize(
    ("instruments", "reason"),
    [
        (("WISH",), "selected run &#39;GEM:1&#39; is not a run of this experiment"),
        ((), "lists no instruments; a scientist token must"),
    ],
)
def test_a_scientist_cannot_queue_runs_of_an_instrument_not_theirs(
    app_client: TestClient, db: Database, instruments: tuple[str, ...], reason: str
) -> None:
    csrf = sign_in(app_client, "ada", "scientist", instruments)
    form = {"csrf_token": csrf, "action": "queue", "selection": "selected", "runs": ["GEM:1"]}
    page = app_client.post(f"/experiments/{REF}/rerun", data=form)
    assert page.status_code == 422 and reason in page.text
    assert versions(db, "GEM", 1) == [0]


def test_a_scientist_gets_the_403_page_on_admin(app_client: TestClient) -> None:
    sign_in(app_client, "ada", "scientist", ("GEM",))
    page = app_client.get("/admin", headers=HTML)
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]


def test_nobody_signed_in_is_sent_to_sign_in_from_admin(app_client: TestClient) -> None:
    answer = app_client.get("/admin", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=/admin"


def test_an_admin_creates_a_token_sees_it_once_and_revokes_it(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "root", "admin")
    created = app_client.post(
        "/admin/tokens",
        data={"csrf_token": csrf, "name": "wish-bot", "role": "scientist", "instruments": "WISH"},
    )
    assert created.status_code == 200
    secret = re.search(r'value="(ar_[A-Za-z0-9_-]+)"', created.text).group(1)  # type: ignore[union-attr]
    writes = {"Authorization": f"Bearer {secret}"}
    assert app_client.get("/api/v1/runs", headers=writes).status_code == 200

    listing = app_client.get("/admin", headers=HTML)
    assert "wish-bot" in listing.text and secret not in listing.text
    assert "token.create" in listing.text  # the audit trail section

    revoked = app_client.post("/admin/tokens/revoke", data={"csrf_token": csrf, "name": "wish-bot"})
    assert revoked.status_code == 200 and "Token wish-bot is revoked" in revoked.text
    assert app_client.get("/api/v1/runs", headers=writes).status_code == 401
    with db.session() as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "root")))
    assert actions == {"token.create", "token.revoke"}


def test_a_duplicate_token_name_is_refused_on_the_page(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "root", "admin")
    form = {"csrf_token": csrf, "name": "twice", "role": "detector"}
    assert app_client.post("/admin/tokens", data=form).status_code == 200
    again = app_client.post("/admin/tokens", data=form)
    assert "No token was created: a token named &#39;twice&#39; already exists" in again.text


def test_the_audit_trail_is_filtered(app_client: TestClient, auth: Auth) -> None:
    auth("detector")  # created without an actor: no event
    csrf = sign_in(app_client, "root", "admin")
    app_client.post("/admin/tokens", data={"csrf_token": csrf, "name": "a", "role": "detector"})
    app_client.post("/admin/tokens/revoke", data={"csrf_token": csrf, "name": "a"})
    page = app_client.get("/admin", params={"action": "token.revoke"}, headers=HTML)
    audit = page.text.split('id="audit"')[1]
    assert "<code>token.revoke</code>" in audit and "<code>token.create</code>" not in audit
