"""Plugin approval through the API: list, approve, revoke; runs held until approved.

These apps load the installed plugins (the built-ins, from the ``autoreduce`` distribution) so
each plugin has a real distribution and version; nothing is approved at the start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from autoreduce import __version__
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, QueueMessage, ReductionRun
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from rest_api import create_app
from tests.api_client import RUNS, run_body

PLUGINS = "/api/v1/plugins"


@pytest.fixture
def entry_point_client(settings: Settings, data_files: None) -> Iterator[TestClient]:
    """The API on the installed plugins (no relay thread: tests drive the relay)."""
    with TestClient(create_app(settings, relay=False)) as client:
        yield client


@pytest.fixture
def headers(entry_point_client: TestClient) -> Callable[[str], dict[str, str]]:
    database: Database = entry_point_client.app.state.api.database  # type: ignore[attr-defined]
    counter = iter(range(1000))

    def make(role: str) -> dict[str, str]:
        token = create_token(database, f"{role}-{next(counter)}", role)
        return {"Authorization": f"Bearer {token}"}

    return make


def _noop(client: TestClient) -> dict[str, object]:
    listed = client.get(PLUGINS).json()
    [noop] = [item for item in listed if item["name"] == "noop"]
    return dict(noop)


def _relay_once(client: TestClient) -> int:
    return int(client.app.state.api.relay.relay_once())  # type: ignore[attr-defined]


def _queued_messages(client: TestClient) -> int:
    database: Database = client.app.state.api.database  # type: ignore[attr-defined]
    with database.read_session() as session:
        return len(session.scalars(select(QueueMessage.id)).all())


def test_each_installed_plugin_is_listed_pending_with_its_version_and_instruments(
    entry_point_client: TestClient,
) -> None:
    noop = _noop(entry_point_client)

    assert noop["distribution"] == "autoreduce"
    assert noop["version"] == __version__
    assert noop["state"] == "pending"
    assert noop["approved_by"] is None and noop["approved_at"] is None
    assert noop["instruments"] == ["BADVARS", "GEM", "WISH"]


def test_an_admin_approves_and_revokes_a_plugin_with_audit_events(
    entry_point_client: TestClient, headers: Callable[[str], dict[str, str]]
) -> None:
    admin = headers("admin")

    approved = entry_point_client.post(f"{PLUGINS}/noop/approve", headers=admin)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    assert approved.json()["approved_by"] == "admin-0"
    assert _noop(entry_point_client)["state"] == "approved"

    revoked = entry_point_client.post(f"{PLUGINS}/noop/revoke", headers=admin)
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["approved_by"] is None
    assert revoked.json()["decided_by"] == "admin-0"

    database: Database = entry_point_client.app.state.api.database  # type: ignore[attr-defined]
    with database.read_session() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("plugin.%"))
        ).all()
    assert list(actions) == ["plugin.approve", "plugin.revoke"]


@pytest.mark.parametrize("verb", ["approve", "revoke"])
def test_only_an_admin_decides(
    entry_point_client: TestClient, headers: Callable[[str], dict[str, str]], verb: str
) -> None:
    anonymous = entry_point_client.post(f"{PLUGINS}/noop/{verb}")
    scientist = entry_point_client.post(f"{PLUGINS}/noop/{verb}", headers=headers("scientist"))

    assert anonymous.status_code == 401
    assert scientist.status_code == 403
    assert scientist.headers["content-type"] == "application/problem+json"
    assert _noop(entry_point_client)["state"] == "pending"


def test_an_unknown_plugin_is_a_404_problem_naming_the_installed_ones(
    entry_point_client: TestClient, headers: Callable[[str], dict[str, str]]
) -> None:
    response = entry_point_client.post(f"{PLUGINS}/nope/approve", headers=headers("admin"))

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "no plugin named 'nope'" in response.json()["detail"]
    assert "noop" in response.json()["detail"]


def test_a_run_of_a_pending_plugin_is_held_until_it_is_approved(
    entry_point_client: TestClient, headers: Callable[[str], dict[str, str]]
) -> None:
    client = entry_point_client
    submitted = client.post(RUNS, json=run_body(3), headers=headers("detector"))
    assert submitted.status_code == 201, submitted.text
    run = submitted.json()
    assert run["status"] == "Queued"
    assert run["message"] == f"held: plugin noop {__version__} is pending approval"

    assert _relay_once(client) == 0  # held: nothing reaches the broker
    assert _queued_messages(client) == 0

    client.post(f"{PLUGINS}/noop/approve", headers=headers("admin"))

    assert _relay_once(client) == 1
    assert _queued_messages(client) == 1
    after = client.get(f"{RUNS}/GEM/3").json()["versions"][0]
    assert (after["status"], after["message"]) == ("Queued", "")


def test_revoking_holds_the_runs_not_yet_sent_and_says_so(
    entry_point_client: TestClient, headers: Callable[[str], dict[str, str]]
) -> None:
    client, admin = entry_point_client, headers("admin")
    client.post(f"{PLUGINS}/noop/approve", headers=admin)
    client.post(RUNS, json=run_body(4), headers=headers("detector"))

    client.post(f"{PLUGINS}/noop/revoke", headers=admin)

    assert _relay_once(client) == 0
    database: Database = client.app.state.api.database  # type: ignore[attr-defined]
    with database.read_session() as session:
        message = session.scalar(select(ReductionRun.message).where(ReductionRun.run_number == 4))
    assert message == f"held: plugin noop {__version__} is revoked"


def test_a_plugin_registered_in_process_counts_as_approved_and_needs_no_verdict(
    app_client: TestClient, plugins: Plugins, auth: Callable[..., dict[str, str]]
) -> None:
    [noop] = app_client.get(PLUGINS).json()
    assert (noop["name"], noop["distribution"], noop["state"]) == ("noop", "", "approved")

    response = app_client.post(f"{PLUGINS}/noop/revoke", headers=auth("admin"))

    assert response.status_code == 409
    assert "in-process" in response.json()["detail"]
