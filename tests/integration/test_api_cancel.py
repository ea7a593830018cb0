"""Cancelling a run version through the API, on real SQLite and MariaDB."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus
from tests.api_client import RUNS, run_body

Auth = Callable[..., dict[str, str]]


def cancel_url(run_number: int = 44733, version: int = 0, instrument: str = "GEM") -> str:
    return f"{RUNS}/{instrument}/{run_number}/versions/{version}/cancel"


@pytest.fixture
def queued(app_client: TestClient, auth: Auth) -> dict[str, Any]:
    """GEM 44733 v0, detected and Queued."""
    response = app_client.post(RUNS, json=run_body(), headers=auth("detector"))
    assert response.status_code == 201
    item: dict[str, Any] = response.json()
    return item


def set_state(db: Database, run_id: int, status: RunStatus) -> None:
    """Move a run as a processor would (Processing: attempt 1 of processor p9)."""
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.id == run_id)
            .values(status=status.value, attempts=1, processor="p9")
        )


def test_a_queued_version_is_cancelled_at_once_with_who_when_and_why(
    app_client: TestClient, auth: Auth, queued: dict[str, Any]
) -> None:
    response = app_client.post(
        cancel_url(), json={"reason": "wrong sample position"}, headers=auth("scientist", "GEM")
    )

    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "Cancelled"
    assert (run["cancel_requested_by"], run["cancel_reason"]) == (
        "scientist-1",
        "wrong sample position",
    )
    at = datetime.fromisoformat(run["cancel_requested_at"])
    assert run["message"] == (
        f"cancelled by scientist-1 at {at:%Y-%m-%dT%H:%M:%S}Z: wrong sample position"
    )
    assert run["finished_at"] == run["cancel_requested_at"]


def test_the_run_item_shows_who_cancelled_it_and_why(
    app_client: TestClient, auth: Auth, queued: dict[str, Any]
) -> None:
    app_client.post(cancel_url(), json={"reason": "beam dump"}, headers=auth("admin"))

    [version] = app_client.get(f"{RUNS}/GEM/44733").json()["versions"]

    assert version["status"] == "Cancelled"
    assert (version["cancel_requested_by"], version["cancel_reason"]) == ("admin-1", "beam dump")
    assert re.fullmatch(r"cancelled by admin-1 at \S+Z: beam dump", version["message"])


def test_a_processing_version_answers_202_with_the_request_recorded(
    app_client: TestClient, auth: Auth, db: Database, queued: dict[str, Any]
) -> None:
    set_state(db, queued["id"], RunStatus.PROCESSING)

    response = app_client.post(
        cancel_url(), json={"reason": "too slow"}, headers=auth("scientist", "GEM")
    )

    assert response.status_code == 202
    run = response.json()
    assert (run["status"], run["message"]) == ("Processing", "")
    assert run["cancel_requested_at"] is not None and run["finished_at"] is None
    assert (run["cancel_requested_by"], run["cancel_reason"]) == ("scientist-1", "too slow")


def test_asking_again_to_cancel_a_processing_version_keeps_the_first_request(
    app_client: TestClient, auth: Auth, db: Database, queued: dict[str, Any]
) -> None:
    set_state(db, queued["id"], RunStatus.PROCESSING)
    first = app_client.post(cancel_url(), json={"reason": "first"}, headers=auth("admin")).json()

    again = app_client.post(cancel_url(), json={"reason": "second"}, headers=auth("admin"))

    assert again.status_code == 202
    assert again.json()["cancel_reason"] == "first"
    assert again.json()["cancel_requested_at"] == first["cancel_requested_at"]


@pytest.mark.parametrize(
    "final", [RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.SKIPPED, RunStatus.CANCELLED]
)
def test_a_final_version_is_409_naming_its_state(
    app_client: TestClient, auth: Auth, db: Database, queued: dict[str, Any], final: RunStatus
) -> None:
    set_state(db, queued["id"], final)

    response = app_client.post(cancel_url(), json={"reason": "late"}, headers=auth("admin"))

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"run 'GEM' 44733 v0 is already {final}; only a Queued or Processing run can be cancelled"
    )
    [version] = app_client.get(f"{RUNS}/GEM/44733").json()["versions"]
    assert (version["status"], version["cancel_requested_at"]) == (final, None)


def test_cancelling_twice_is_409_the_second_time(
    app_client: TestClient, auth: Auth, queued: dict[str, Any]
) -> None:
    app_client.post(cancel_url(), json={"reason": "once"}, headers=auth("admin"))

    again = app_client.post(cancel_url(), json={"reason": "twice"}, headers=auth("admin"))

    assert again.status_code == 409
    assert "already Cancelled" in again.json()["detail"]


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        (cancel_url(instrument="MARI"), "run 'MARI' 44733 v0 not found"),
        (cancel_url(run_number=7), "run 'GEM' 7 v0 not found"),
        (cancel_url(version=1), "run 'GEM' 44733 v1 not found"),
    ],
)
def test_an_unknown_instrument_run_or_version_is_404(
    app_client: TestClient, auth: Auth, queued: dict[str, Any], url: str, detail: str
) -> None:
    response = app_client.post(url, json={"reason": "r"}, headers=auth("admin"))

    assert response.status_code == 404
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(
    ("role", "instruments"),
    [("scientist", ("WISH",)), ("scientist", ()), ("detector", ("GEM",))],
)
def test_a_caller_not_allowed_on_the_instrument_is_403_and_nothing_changes(
    app_client: TestClient,
    auth: Auth,
    queued: dict[str, Any],
    role: str,
    instruments: tuple[str, ...],
) -> None:
    response = app_client.post(cancel_url(), json={"reason": "r"}, headers=auth(role, *instruments))

    assert response.status_code == 403
    assert app_client.get(f"{RUNS}/GEM/44733").json()["versions"][0]["status"] == "Queued"


def test_cancelling_without_a_token_is_401(app_client: TestClient, queued: dict[str, Any]) -> None:
    response = app_client.post(cancel_url(), json={"reason": "r"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "  "}, {"reason": "r", "force": True}]
)
def test_a_cancel_without_a_reason_or_with_unknown_fields_is_422(
    app_client: TestClient, auth: Auth, queued: dict[str, Any], body: dict[str, Any]
) -> None:
    response = app_client.post(cancel_url(), json=body, headers=auth("admin"))

    assert response.status_code == 422
    assert app_client.get(f"{RUNS}/GEM/44733").json()["versions"][0]["status"] == "Queued"
