"""The admin page's OAuth clients, plugins and dead-letter sections through the app (real
database, real SQL queue): every action, a scientist refused, a form without its CSRF token
refused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce import __version__
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, ReductionRun, RunStatus
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from autoreduce.transport.sql import SqlTransport
from rest_api import create_app
from tests.api_client import RUNS, run_body
from tests.integration.web_session import HTML, sign_in

Auth = Callable[..., dict[str, str]]
TOKEN_URL = "/api/v1/oauth/token"


def actions_by(db: Database, actor: str) -> list[str]:
    with db.read_session() as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.actor == actor).order_by(AuditEvent.id)
            )
        )


# OAuth clients


def test_an_admin_creates_a_client_sees_its_secret_once_and_revokes_it(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "root", "admin")
    form = {"csrf_token": csrf, "name": "gem-pipe", "role": "scientist", "instruments": "GEM"}
    created = app_client.post("/admin/clients", data=form)
    assert created.status_code == 200, created.text
    client_id = re.search(r'id="client-id" value="(arc_[0-9a-f]+)"', created.text).group(1)  # type: ignore[union-attr]
    secret = re.search(
        r'id="client-secret" class="secret" value="(ars_[\w-]+)"', created.text
    ).group(1)  # type: ignore[union-attr]
    grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    assert app_client.post(TOKEN_URL, data=grant).status_code == 200

    listing = app_client.get("/admin", headers=HTML)
    clients = listing.text.split('id="clients"')[1].split('id="plugins"')[0]
    assert "gem-pipe" in clients and client_id in clients and secret not in listing.text

    revoked = app_client.post(
        "/admin/clients/revoke", data={"csrf_token": csrf, "client_id": client_id}
    )
    assert revoked.status_code == 200 and f"Client {client_id} is revoked" in revoked.text
    assert app_client.post(TOKEN_URL, data=grant).status_code in (400, 401)
    assert actions_by(db, "root") == ["client.create", "client.revoke"]


def test_a_bad_client_is_a_notice_not_a_client(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "root", "admin")
    form = {"csrf_token": csrf, "name": "x", "role": "detector", "instruments": "NOWHERE"}
    page = app_client.post("/admin/clients", data=form)
    assert "No client was created: instrument &#39;NOWHERE&#39; is not configured" in page.text
    again = app_client.post(
        "/admin/clients/revoke", data={"csrf_token": csrf, "client_id": "arc_0"}
    )
    assert "There is no live client with id arc_0" in again.text


# Plugins


@pytest.fixture
def entry_point_client(settings: Settings, data_files: None) -> Iterator[TestClient]:
    """The app on the installed plugins, so ``noop`` has a distribution and needs a verdict."""
    with TestClient(create_app(settings, relay=False)) as client:
        yield client


def noop_row(client: TestClient) -> str:
    page = client.get("/admin", headers=HTML)
    return page.text.split('id="plugin-noop"')[1].split("</tr>")[0]


def test_an_admin_approves_and_revokes_a_plugin_and_its_held_run_goes_out(
    entry_point_client: TestClient, auth: Auth
) -> None:
    client = entry_point_client
    database: Database = client.app.state.api.database  # type: ignore[attr-defined]
    csrf = sign_in(client, "root", "admin")
    row = noop_row(client)
    assert "autoreduce" in row and __version__ in row and "Pending" in row
    assert "BADVARS, GEM, WISH" in row and "/admin/plugins/noop/approve" in row

    detector = {"Authorization": f"Bearer {create_token(database, 'det', 'detector')}"}
    held = client.post(RUNS, json=run_body(3), headers=detector).json()
    assert held["message"].startswith("held: plugin noop")

    approved = client.post("/admin/plugins/noop/approve", data={"csrf_token": csrf})
    assert f"Plugin noop {__version__} is approved" in approved.text
    row = noop_row(client)
    assert "Approved" in row and "by root" in row and "/admin/plugins/noop/approve" not in row
    with database.read_session() as session:
        assert session.get(ReductionRun, held["id"]).message == ""  # type: ignore[union-attr]

    revoked = client.post("/admin/plugins/noop/revoke", data={"csrf_token": csrf})
    assert f"Plugin noop {__version__} is revoked" in revoked.text
    assert "Revoked" in noop_row(client)
    assert actions_by(database, "root") == ["plugin.approve", "plugin.revoke"]


def test_an_unknown_plugin_is_the_404_page(entry_point_client: TestClient) -> None:
    csrf = sign_in(entry_point_client, "root", "admin")
    page = entry_point_client.post("/admin/plugins/nope/approve", data={"csrf_token": csrf})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "no plugin named" in page.text


def test_an_in_process_plugin_needs_no_verdict(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "root", "admin")
    assert "needs no verdict" in noop_row(app_client)
    page = app_client.post("/admin/plugins/noop/approve", data={"csrf_token": csrf})
    assert page.status_code == 200 and "Nothing was recorded" in page.text


# The queue and its dead letters


@pytest.fixture
def queue(db: Database) -> SqlTransport:
    return SqlTransport(db.url, consumer="test", database=db)


def dead_letter(queue: SqlTransport, body: str, reason: str) -> str:
    queue.send(PENDING_QUEUE, body)
    delivery = queue.receive(PENDING_QUEUE, timeout_s=1)
    assert delivery is not None
    queue.dead_letter(delivery, reason)
    return next(d.message_id for d in queue.browse(DEAD_LETTER_QUEUE) if d.body == body)


def submitted_message(client: TestClient, auth: Auth, db: Database, number: int) -> str:
    response = client.post(RUNS, json=run_body(number), headers=auth("detector"))
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    body = {"schema": 1, "run_id": run_id, "instrument": "GEM", "run_number": number}
    return json.dumps({**body, "run_version": 0, "data_path": "x", "submitted_at": "2026-01-01"})


def test_the_queue_section_shows_the_status_and_each_letter_with_its_reason(
    app_client: TestClient, queue: SqlTransport
) -> None:
    letter_id = dead_letter(queue, "not json", "invalid run message: body: not JSON")
    sign_in(app_client, "root", "admin")
    section = app_client.get("/admin", headers=HTML).text.split('id="queue"')[1]
    assert f"<code>{DEAD_LETTER_QUEUE}</code>" in section and "1 message" in section
    assert "invalid run message: body: not JSON" in section
    assert f'href="/admin/dead-letters/{letter_id}"' in section

    shown = app_client.get(f"/admin/dead-letters/{letter_id}", headers=HTML)
    assert shown.status_code == 200
    assert "x-dead-letter-reason" in shown.text and "not json" in shown.text


def test_replay_puts_a_letter_back_and_purge_deletes_one(
    app_client: TestClient, queue: SqlTransport, db: Database
) -> None:
    first = dead_letter(queue, "first", "bad")
    second = dead_letter(queue, "second", "worse")
    csrf = sign_in(app_client, "root", "admin")

    replayed = app_client.post(f"/admin/dead-letters/{first}/replay", data={"csrf_token": csrf})
    assert replayed.status_code == 200 and f"is back on {PENDING_QUEUE}" in replayed.text
    assert [d.body for d in queue.browse(PENDING_QUEUE)] == ["first"]

    purged = app_client.post(f"/admin/dead-letters/{second}/purge", data={"csrf_token": csrf})
    assert purged.status_code == 200 and "is purged" in purged.text
    assert queue.browse(DEAD_LETTER_QUEUE) == []
    assert actions_by(db, "root") == ["dead_letter.replay", "dead_letter.purge"]


def test_replaying_a_letter_of_a_final_run_is_a_notice_naming_the_rerun(
    app_client: TestClient, queue: SqlTransport, auth: Auth, db: Database
) -> None:
    letter_id = dead_letter(queue, submitted_message(app_client, auth, db, 4), "crashed")
    with db.session() as session:
        session.execute(update(ReductionRun).values(status=RunStatus.COMPLETED.value))
    csrf = sign_in(app_client, "root", "admin")

    page = app_client.post(f"/admin/dead-letters/{letter_id}/replay", data={"csrf_token": csrf})

    assert (
        page.status_code == 200 and "Not replayed: run GEM 4 v0 is already Completed" in page.text
    )
    assert 'href="/runs/GEM/4#rerun-heading"' in page.text
    assert len(queue.browse(DEAD_LETTER_QUEUE)) == 1 and actions_by(db, "root") == []


def test_an_unknown_letter_is_the_404_page(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "root", "admin")
    shown = app_client.get("/admin/dead-letters/999999", headers=HTML)
    purged = app_client.post("/admin/dead-letters/999999/purge", data={"csrf_token": csrf})
    for page in (shown, purged):
        assert page.status_code == 404 and "text/html" in page.headers["content-type"]


# Who may, and forms without their token

WRITES = (
    ("/admin/clients", {"name": "c", "role": "detector"}),
    ("/admin/clients/revoke", {"client_id": "arc_0"}),
    ("/admin/plugins/noop/approve", {}),
    ("/admin/dead-letters/1/replay", {}),
    ("/admin/dead-letters/1/purge", {}),
)


@pytest.mark.parametrize(("path", "form"), WRITES)
def test_a_scientist_is_refused_every_action(
    app_client: TestClient, queue: SqlTransport, path: str, form: dict[str, str]
) -> None:
    dead_letter(queue, "kept", "bad")
    csrf = sign_in(app_client, "ada", "scientist", ("GEM",))
    page = app_client.post(path, data={"csrf_token": csrf, **form})
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    assert len(queue.browse(DEAD_LETTER_QUEUE)) == 1


@pytest.mark.parametrize(("path", "form"), WRITES)
def test_a_form_without_its_csrf_token_is_refused(
    app_client: TestClient, queue: SqlTransport, db: Database, path: str, form: dict[str, str]
) -> None:
    dead_letter(queue, "kept", "bad")
    sign_in(app_client, "root", "admin")
    page = app_client.post(path, data={"csrf_token": "forged", **form})
    assert page.status_code == 403
    assert len(queue.browse(DEAD_LETTER_QUEUE)) == 1 and actions_by(db, "root") == []


def test_a_scientist_cannot_read_a_dead_letter(app_client: TestClient, queue: SqlTransport) -> None:
    letter_id = dead_letter(queue, "secret body", "bad")
    sign_in(app_client, "ada", "scientist", ("GEM",))
    page = app_client.get(f"/admin/dead-letters/{letter_id}", headers=HTML)
    assert page.status_code == 403 and "secret body" not in page.text
