"""The audit trail on real SQLite and MariaDB: every write recorded with who, what, when, where."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from autoreduce.audit import command_line_actor
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent
from autoreduce.tokens import create_token, revoke_token
from tests.api_client import RUNS, count, run_body

AUDIT = "/api/v1/audit"


def events(client: TestClient, admin: dict[str, str], **params: object) -> list[dict[str, object]]:
    response = client.get(AUDIT, params=params, headers=admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_submissions_reruns_and_pauses_are_recorded_with_who_what_and_where(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    admin = auth("admin")
    app_client.post(RUNS, json=run_body(3), headers=auth("detector"))
    app_client.post(
        f"{RUNS}/GEM/3/reruns",
        json={"variables": {"sleep_s": 1}, "reason": "new vanadium"},
        headers=auth("scientist", "GEM"),
    )
    app_client.patch("/api/v1/instruments/GEM", json={"paused": True}, headers=admin)
    app_client.patch("/api/v1/instruments/GEM", json={"paused": False}, headers=admin)

    trail = events(app_client, admin)

    assert [(e["action"], e["target"], e["actor"], e["role"]) for e in trail] == [
        ("instrument.resume", "instrument GEM", "admin-0", "admin"),
        ("instrument.pause", "instrument GEM", "admin-0", "admin"),
        ("run.rerun", "GEM 3 v1", "scientist-2", "scientist"),
        ("run.submit", "GEM 3 v0", "detector-1", "detector"),
    ]
    assert all(e["address"] == "testclient" and e["instrument"] == "GEM" for e in trail)
    rerun = trail[2]["details"]
    assert rerun == {"variables": {"sleep_s": 1}, "reason": "new vanadium", "base": "latest"}


def test_a_refused_write_and_an_idempotent_resubmission_leave_no_event(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    detector = auth("detector")
    app_client.post(RUNS, json=run_body(4), headers=detector)

    app_client.post(RUNS, json=run_body(4), headers=detector)  # 200: nothing changed
    app_client.post(
        f"{RUNS}/GEM/4/reruns", json={"variables": {"fault": "?"}}, headers=auth("admin")
    )
    app_client.patch("/api/v1/instruments/GEM", json={"paused": True}, headers=auth("scientist"))

    assert count(db, AuditEvent) == 1


def test_the_trail_is_for_admins_only(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    assert app_client.get(AUDIT).status_code == 401  # even on a public-read instance
    assert app_client.get(AUDIT, headers=auth("scientist", "GEM")).status_code == 403


def test_the_trail_is_filtered_and_paged_newest_first(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    admin, detector = auth("admin"), auth("detector")
    for run_number in (1, 2, 3):
        app_client.post(RUNS, json=run_body(run_number), headers=detector)
    app_client.post(RUNS, json=run_body(1, "WISH"), headers=detector)

    gem = events(app_client, admin, action="run.submit", instrument="GEM", limit=2)
    page = app_client.get(AUDIT, params={"instrument": "GEM", "limit": 2}, headers=admin).json()
    rest = events(app_client, admin, instrument="GEM", before_id=page["next_before_id"])

    assert [e["target"] for e in gem] == ["GEM 3 v0", "GEM 2 v0"]
    assert [e["target"] for e in rest] == ["GEM 1 v0"]
    assert events(app_client, admin, actor="nobody") == []


def test_tokens_made_and_revoked_at_the_command_line_are_recorded_without_their_value(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    actor = command_line_actor()
    secret = create_token(db, "beamline-pc", "detector", ["GEM"], actor=actor)
    revoke_token(db, "beamline-pc", actor=actor)

    trail = events(app_client, auth("admin"), actor=actor.name)

    assert [e["action"] for e in trail] == ["token.revoke", "token.create"]
    assert trail[1]["details"] == {"role": "detector", "instruments": ["GEM"]}
    assert all(secret not in str(e) for e in trail)
    assert trail[0]["role"] == "operator" and trail[0]["target"] == "token beamline-pc"
