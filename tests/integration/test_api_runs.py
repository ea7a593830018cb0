"""The HTTP API on real SQLite and MariaDB: submit, list, read, re-run, pause, download, health."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h5py
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import update

from autoreduce.db import Database, ReadOnlySessionError
from autoreduce.db.models import (
    Instrument,
    OutboxMessage,
    ProcessorHeartbeat,
    ReductionRun,
    RunOutput,
    RunStatus,
)
from autoreduce.messages import PENDING_QUEUE, RunMessage, parse_run_message
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.tokens import create_token, revoke_token
from autoreduce.transport import open_transport
from rest_api import create_app
from rest_api.dependencies import get_session
from tests.api_client import RUNS, count, data_file, outbox_bodies, run_body

# --- submitting a detected run ---------------------------------------------------------------


def test_new_run_is_201_and_the_same_run_again_is_200_with_one_row(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    headers = auth("detector")

    first = app_client.post(RUNS, json=run_body(), headers=headers)
    again = app_client.post(RUNS, json=run_body(), headers=headers)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert count(db, ReductionRun) == 1
    assert count(db, OutboxMessage) == 1


def test_recorded_run_is_queued_with_resolved_variables_and_its_submitter(
    app_client: TestClient, auth: Callable[..., dict[str, str]], settings: Settings
) -> None:
    detected_at = "2026-11-24T06:40:00.123+01:00"

    run = app_client.post(
        RUNS, json=run_body(detected_at=detected_at), headers=auth("detector")
    ).json()

    assert run["status"] == "Queued"
    assert (run["run_version"], run["reason"], run["submitted_by"]) == (0, "detected", "detector-0")
    assert run["variables"] == {"sleep_s": 0.0, "fault": "none"}
    assert run["data_path"] == str(data_file(settings, "GEM", 44733).resolve())
    assert run["detected_at"] == "2026-11-24T05:40:00.123000Z"
    assert run["queued_at"].endswith("Z")


def test_run_and_its_outbox_message_are_recorded_together(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()

    [message] = outbox_bodies(db)
    assert message.run_id == run["id"]
    assert (message.instrument, message.run_number, message.run_version) == ("GEM", 44733, 0)
    assert message.variables == run["variables"]
    assert message.submitted_by == "detector-0"


@pytest.mark.usefixtures("data_files")
def test_a_failure_while_writing_the_outbox_records_no_run(
    settings: Settings,
    plugins: Plugins,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_to_json(self: RunMessage) -> str:
        raise RuntimeError("serialiser broke")

    app = create_app(settings, relay=False, plugins=plugins)
    with TestClient(app, raise_server_exceptions=False) as client:
        db: Database = app.state.api.database
        token = create_token(db, "det", "detector")
        monkeypatch.setattr(RunMessage, "to_json", broken_to_json)

        response = client.post(RUNS, json=run_body(), headers={"Authorization": f"Bearer {token}"})

        assert response.status_code == 500
        assert "serialiser" not in response.json()["detail"]
        assert count(db, ReductionRun) == 0
        assert count(db, OutboxMessage) == 0


def test_unknown_instrument_is_404_naming_it_and_the_configured_ones(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = app_client.post(RUNS, json=run_body(instrument="MARI"), headers=auth("detector"))

    assert response.status_code == 404
    assert "'MARI'" in response.json()["detail"]
    assert "BADVARS, BROKEN, GEM, WISH" in response.json()["detail"]


def test_unknown_plugin_still_records_the_run_in_error_without_a_message(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    response = app_client.post(RUNS, json=run_body(instrument="BROKEN"), headers=auth("detector"))

    assert response.status_code == 201
    assert response.json()["status"] == "Error"
    assert "not_installed" in response.json()["message"]
    assert count(db, OutboxMessage) == 0


def test_invalid_variables_still_record_the_run_in_error_with_the_reason(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    body = run_body(instrument="BADVARS")  # its TOML default sleep_s = -1 breaks the minimum

    response = app_client.post(RUNS, json=body, headers=auth("detector"))

    assert response.status_code == 201
    assert response.json()["status"] == "Error"
    assert "sleep_s" in response.json()["message"]
    assert count(db, OutboxMessage) == 0


# --- authentication ---------------------------------------------------------------------------


def test_missing_token_is_401_with_a_bearer_challenge(app_client: TestClient) -> None:
    response = app_client.post(RUNS, json=run_body())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["detail"]


@pytest.mark.parametrize("authorization", ["Bearer ar_wrong", "Basic abc", "Bearer ", "ar_x"])
def test_a_bad_token_is_401(app_client: TestClient, authorization: str) -> None:
    response = app_client.post(RUNS, json=run_body(), headers={"Authorization": authorization})

    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


def test_a_revoked_token_is_401(app_client: TestClient, db: Database) -> None:
    token = create_token(db, "old-detector", "detector")
    revoke_token(db, "old-detector")

    response = app_client.post(RUNS, json=run_body(), headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


def test_a_scientist_token_cannot_submit_runs(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = app_client.post(RUNS, json=run_body(), headers=auth("scientist", "GEM"))

    assert response.status_code == 403
    assert "detector or admin" in response.json()["detail"]


def test_a_token_limited_to_other_instruments_is_403(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    response = app_client.post(RUNS, json=run_body(), headers=auth("detector", "WISH"))

    assert response.status_code == 403
    assert "'GEM'" in response.json()["detail"]
    assert count(db, ReductionRun) == 0


# --- invalid and odd input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"instrument": "GEM"},
        run_body(run_number=-1),
        run_body(run_number=2**63),
        run_body(run_number=10**30),
        run_body(run_number="forty"),
        run_body(data_path="relative/path.nxs"),
        run_body(data_path="/a/\x00b.nxs"),
        run_body(detected_at="yesterday"),
        run_body(detected_at="0001-01-01T00:00:00+05:00"),
        run_body(variables=[1, 2]),
        run_body(variables={"sleep_s": 1}),  # a detected run's values come from the rules
        run_body(unexpected="field"),
        [1, 2, 3],
        "a string",
    ],
)
def test_invalid_bodies_are_422_with_a_readable_reason(
    app_client: TestClient, auth: Callable[..., dict[str, str]], body: Any
) -> None:
    response = app_client.post(RUNS, json=body, headers=auth("detector"))

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"instrument": "GEM", "run_number": 1, "data_path": "/a"}', "text/plain"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'{"instrument": "\\ud800", "run_number": 1, "data_path": "/a"}', "application/json"),
        (
            b'{"instrument": "GEM", "run_number": 1, "data_path": "/a", "variables": '
            b'{"sleep_s": NaN}}',
            "application/json",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"", "application/json"),
    ],
)
def test_malformed_requests_are_client_errors(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    content: bytes,
    content_type: str,
) -> None:
    headers = {**auth("detector"), "Content-Type": content_type}

    response = app_client.post(RUNS, content=content, headers=headers)

    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "instrument": st.sampled_from(["GEM", "gem", "ÜMLAUT", "", "G" * 40]) | st.text(),
            "run_number": st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=5),
            "data_path": st.text(max_size=30) | st.just("/ok.nxs"),
            "detected_at": st.datetimes().map(str) | st.text(max_size=10),
            "variables": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
        },
    )
)
def test_no_submitted_body_makes_a_server_error(
    app_client: TestClient, auth: Callable[..., dict[str, str]], body: dict[str, Any]
) -> None:
    response = app_client.post(RUNS, json=body, headers=auth("detector"))

    assert response.status_code < 500, response.text
    assert "detail" in response.json() or response.status_code in (200, 201)


@pytest.mark.parametrize(
    "path",
    [
        f"{RUNS}/GEM/{2**63}",
        f"{RUNS}/GEM/-1",
        f"{RUNS}/%C3%9CMLAUT/1",
        f"{RUNS}/GEM%00/1",
        f"{RUNS}?run_min={2**64}",
        f"{RUNS}?status=Finished",
        f"{RUNS}?limit=0",
        f"{RUNS}?limit=501",
        f"{RUNS}?offset=-1",
        f"{RUNS}?offset={2**63 - 1}",
        f"{RUNS}?since=0001-01-01T00:00:00%2B05:00",
        f"{RUNS}?since=not-a-date",
        f"{RUNS}?instrument=%F0%9F%98%80&q=%25_%00",
        "/api/v1/outputs/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/outputs/../../etc/passwd",
        f"/api/v1/outputs/{2**70}",
        "/api/v1/outputs/-5",
    ],
)
def test_odd_read_requests_are_answered_without_a_server_error(
    app_client: TestClient, path: str
) -> None:
    response = app_client.get(path)

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)


# --- the relay publishes to the broker --------------------------------------------------------


@pytest.mark.usefixtures("data_files")
def test_the_relay_publishes_a_recorded_run_to_the_sql_queue(
    settings: Settings, plugins: Plugins
) -> None:
    app = create_app(settings, plugins=plugins)
    with TestClient(app) as client:
        token = create_token(app.state.api.database, "det", "detector")
        run = client.post(RUNS, json=run_body(), headers={"Authorization": f"Bearer {token}"})
        with open_transport(settings, consumer="test") as queue:
            delivery = queue.receive(PENDING_QUEUE, timeout_s=5)
            assert delivery is not None
            assert queue.ack(delivery)

    message = parse_run_message(delivery.body)
    assert message.run_id == run.json()["id"]
    assert message.reason == "detected"


def test_a_paused_instrument_holds_its_runs_until_it_resumes(
    app_client: TestClient, auth: Callable[..., dict[str, str]], settings: Settings
) -> None:
    admin = auth("admin")
    relay = app_client.app.state.api.relay  # type: ignore[attr-defined]
    paused = app_client.patch("/api/v1/instruments/GEM", json={"paused": True}, headers=admin)

    recorded = app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert recorded.status_code == 201
    assert relay.relay_once() == 0
    resumed = app_client.patch("/api/v1/instruments/GEM", json={"paused": False}, headers=admin)
    assert resumed.json()["paused"] is False
    assert relay.relay_once() == 1
    with open_transport(settings) as queue:
        delivery = queue.receive(PENDING_QUEUE, timeout_s=5)
    assert delivery is not None
    assert parse_run_message(delivery.body).run_id == recorded.json()["id"]


def test_pausing_needs_an_admin_and_a_configured_instrument(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    body = {"paused": True}

    by_scientist = app_client.patch("/api/v1/instruments/GEM", json=body, headers=auth("scientist"))
    unknown = app_client.patch("/api/v1/instruments/MARI", json=body, headers=auth("admin"))
    not_bool = app_client.patch(
        "/api/v1/instruments/GEM", json={"paused": "yes"}, headers=auth("admin")
    )

    assert (by_scientist.status_code, unknown.status_code, not_bool.status_code) == (403, 404, 422)


# --- reading runs -----------------------------------------------------------------------------


@pytest.fixture
def some_runs(app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database) -> None:
    """GEM 1..5 and WISH 1..2; GEM 2 is in Error, GEM 3 has a title and RB, WISH queued early."""
    headers = auth("detector")
    for instrument, number in [("GEM", n) for n in range(1, 6)] + [("WISH", 1), ("WISH", 2)]:
        app_client.post(RUNS, json=run_body(number, instrument), headers=headers)
    with db.session() as session:
        gem = ReductionRun.instrument == "GEM"
        session.execute(
            update(ReductionRun)
            .where(gem, ReductionRun.run_number == 2)
            .values(status=RunStatus.ERROR.value, message="boom")
        )
        session.execute(
            update(ReductionRun)
            .where(gem, ReductionRun.run_number == 3)
            .values(title="Vanadium 100%_sample", experiment_ref="1920123")
        )
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.instrument == "WISH")
            .values(queued_at=datetime(2020, 1, 1, tzinfo=UTC))
        )


def listed(client: TestClient, **params: Any) -> list[tuple[str, int]]:
    response = client.get(RUNS, params=params)
    assert response.status_code == 200, response.text
    return [(item["instrument"], item["run_number"]) for item in response.json()["items"]]


@pytest.mark.usefixtures("some_runs")
def test_runs_are_listed_newest_first_with_total_and_paging(app_client: TestClient) -> None:
    page = app_client.get(RUNS, params={"limit": 2, "offset": 1}).json()

    assert (page["total"], page["total_exact"], page["limit"], page["offset"]) == (7, True, 2, 1)
    # newest recorded first (by id), across instruments: not by run number
    assert [(i["instrument"], i["run_number"]) for i in page["items"]] == [("WISH", 1), ("GEM", 5)]
    assert (page["next_offset"], page["next_after"]) == (3, page["items"][-1]["id"])


@pytest.mark.usefixtures("some_runs")
def test_pages_by_key_follow_on_from_the_previous_page(app_client: TestClient) -> None:
    seen: list[tuple[str, int]] = []
    after: int | None = None
    for _ in range(10):
        page = app_client.get(RUNS, params={"limit": 3, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [(i["instrument"], i["run_number"]) for i in body["items"]]
        after = body["next_after"]
        if after is None:
            break

    assert seen == listed(app_client, limit=50)
    assert len(seen) == 7
    first_id = app_client.get(RUNS, params={"limit": 1}).json()["items"][0]["id"]
    older = app_client.get(RUNS, params={"after": first_id, "instrument": "GEM"}).json()
    assert [i["run_number"] for i in older["items"]] == [5, 4, 3, 2, 1]


def test_a_total_past_the_bound_says_it_is_not_exact(
    app_client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rest_api.routes import runs

    monkeypatch.setattr(runs, "TOTAL_LIMIT", 2)
    with db.session() as session:
        session.add(Instrument(name="GEM"))
        for number in range(1, 5):
            session.add(ReductionRun(instrument="GEM", run_number=number, data_path="/x"))

    page = app_client.get(RUNS, params={"limit": 1}).json()

    assert (page["total"], page["total_exact"]) == (2, False)
    assert page["next_offset"] == 1
    exact = app_client.get(RUNS, params={"limit": 1, "run_min": 4}).json()
    assert (exact["total"], exact["total_exact"], exact["next_offset"]) == (1, True, None)


@pytest.mark.usefixtures("some_runs")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"instrument": "WISH"}, [("WISH", 2), ("WISH", 1)]),
        ({"status": "Error"}, [("GEM", 2)]),
        ({"instrument": "GEM", "run_min": 2, "run_max": 3}, [("GEM", 3), ("GEM", 2)]),
        ({"q": "100%_s"}, [("GEM", 3)]),
        ({"q": "1920"}, [("GEM", 3)]),
        ({"q": "100%_x"}, []),
        ({"until": "2021-01-01T00:00:00Z"}, [("WISH", 2), ("WISH", 1)]),
        ({"since": "2021-01-01T00:00:00+00:00", "instrument": "WISH"}, []),
    ],
)
def test_runs_are_filtered(
    app_client: TestClient, params: dict[str, Any], expected: list[tuple[str, int]]
) -> None:
    assert listed(app_client, **params) == expected


def test_an_unknown_status_filter_is_422(app_client: TestClient) -> None:
    response = app_client.get(RUNS, params={"status": "Finished"})

    assert response.status_code == 422
    assert "status" in response.json()["detail"]


def test_one_run_is_read_with_all_its_versions(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    app_client.post(RUNS, json=run_body(7), headers=auth("detector"))
    app_client.post(f"{RUNS}/GEM/7/reruns", json={"variables": {}}, headers=auth("admin"))

    response = app_client.get(f"{RUNS}/GEM/7")

    assert response.status_code == 200
    assert (response.json()["instrument"], response.json()["run_number"]) == ("GEM", 7)
    assert [v["run_version"] for v in response.json()["versions"]] == [0, 1]


def test_reading_an_unknown_run_is_404(app_client: TestClient) -> None:
    response = app_client.get(f"{RUNS}/GEM/404")

    assert response.status_code == 404
    assert "404" in response.json()["detail"]


def test_timings_are_reported_in_seconds(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()
    queued = datetime.fromisoformat(run["queued_at"])
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.id == run["id"])
            .values(
                status=RunStatus.COMPLETED.value,
                started_at=queued + timedelta(seconds=2),
                finished_at=queued + timedelta(seconds=12.5),
            )
        )

    [item] = app_client.get(f"{RUNS}/GEM/44733").json()["versions"]

    assert (item["queue_wait_s"], item["reduction_s"]) == (2.0, 10.5)


# --- re-runs ----------------------------------------------------------------------------------


def test_a_rerun_is_version_1_with_the_changed_variables_and_its_message(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    response = app_client.post(
        f"{RUNS}/GEM/44733/reruns",
        json={"variables": {"sleep_s": 2.5}, "reason": "ignored"},
        headers=auth("scientist", "GEM"),
    )

    assert response.status_code == 201
    run = response.json()
    assert (run["run_version"], run["status"], run["reason"]) == (1, "Queued", "rerun")
    assert run["variables"] == {"sleep_s": 2.5, "fault": "none"}
    last = outbox_bodies(db)[-1]
    assert (last.run_id, last.run_version, last.reason) == (run["id"], 1, "rerun")


def test_invalid_rerun_variables_are_422_with_the_reason(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    response = app_client.post(
        f"{RUNS}/GEM/44733/reruns", json={"variables": {"fault": "explode"}}, headers=auth("admin")
    )

    assert response.status_code == 422
    assert "fault" in response.json()["detail"]
    assert count(db, ReductionRun) == 1


def test_a_rerun_of_an_unknown_run_is_404(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = app_client.post(f"{RUNS}/GEM/1/reruns", json={}, headers=auth("admin"))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("role", "instruments"), [("detector", ()), ("scientist", ()), ("scientist", ("WISH",))]
)
def test_reruns_need_a_scientist_of_the_instrument_or_an_admin(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    role: str,
    instruments: tuple[str, ...],
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    response = app_client.post(
        f"{RUNS}/GEM/44733/reruns", json={}, headers=auth(role, *instruments)
    )

    assert response.status_code == 403


# --- instruments, outputs, processors, health ---------------------------------------------------


def test_instruments_show_plugin_variables_counts_and_plugin_errors(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    app_client.post(RUNS, json=run_body(12), headers=auth("detector"))

    instruments = {i["name"]: i for i in app_client.get("/api/v1/instruments").json()}

    assert sorted(instruments) == ["BADVARS", "BROKEN", "GEM", "WISH"]
    gem = instruments["GEM"]
    assert (gem["plugin"], gem["paused"], gem["latest_run_number"]) == ("noop", False, 12)
    assert gem["run_counts"]["Queued"] == 1
    assert [v["name"] for v in gem["variables"]] == ["sleep_s", "fault"]
    assert gem["variables"][1]["choices"][0] == "none" and gem["variables"][1]["advanced"]
    assert instruments["BROKEN"]["variables"] == []
    assert "not_installed" in instruments["BROKEN"]["error"]


@pytest.fixture
def run_with_outputs(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database, tmp_path: Path
) -> dict[str, int]:
    """A completed run with a plot, a log, a missing file and an entry escaping its directory."""
    output_dir = tmp_path / "outputs" / "GEM" / "v0"
    output_dir.mkdir(parents=True)
    (output_dir / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (output_dir / "reduction.log").write_text("done\n")
    (tmp_path / "secret.txt").write_text("not yours")
    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()
    names = {"plot": "plot.png", "log": "reduction.log", "missing": "gone.nxs"}
    names["escape"] = "../../../secret.txt"
    ids = {}
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.id == run["id"])
            .values(output_dir=str(output_dir))
        )
        for kind, name in names.items():
            output = RunOutput(run_id=run["id"], kind=kind, name=name, size_bytes=4)
            session.add(output)
            session.flush()
            ids[kind] = output.id
    return ids


def test_a_plot_is_downloaded_as_png(
    app_client: TestClient, run_with_outputs: dict[str, int]
) -> None:
    response = app_client.get(f"/api/v1/outputs/{run_with_outputs['plot']}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == b"\x89PNG\r\n\x1a\nfake"


def test_a_runs_outputs_are_listed_with_their_urls(
    app_client: TestClient, run_with_outputs: dict[str, int]
) -> None:
    [run] = app_client.get(f"{RUNS}/GEM/44733").json()["versions"]

    plot = next(o for o in run["outputs"] if o["kind"] == "plot")
    assert plot == {
        "id": run_with_outputs["plot"],
        "kind": "plot",
        "name": "plot.png",
        "size_bytes": 4,
        "url": f"/api/v1/outputs/{run_with_outputs['plot']}",
    }
    assert app_client.get(plot["url"]).status_code == 200


@pytest.mark.parametrize("kind", ["missing", "escape"])
def test_missing_files_and_paths_outside_the_output_dir_are_404(
    app_client: TestClient, run_with_outputs: dict[str, int], kind: str
) -> None:
    response = app_client.get(f"/api/v1/outputs/{run_with_outputs[kind]}")

    assert response.status_code == 404
    assert "not yours" not in response.text


def test_an_unknown_output_is_404(app_client: TestClient) -> None:
    assert app_client.get("/api/v1/outputs/999").status_code == 404


def test_processors_are_listed_alive_first_then_recently_dead_ones(
    app_client: TestClient, db: Database
) -> None:
    now = datetime.now(UTC)
    long_ago = now - timedelta(hours=1)
    forgotten = now - timedelta(days=2)
    runs = [("a", now, None), ("b", long_ago, None), ("c", now, now), ("d", forgotten, forgotten)]
    with db.session() as session:
        for name, seen, stopped in runs:
            session.add(
                ProcessorHeartbeat(
                    id=name,
                    host="h",
                    pid=1,
                    started_at=long_ago,
                    last_seen_at=seen,
                    stopped_at=stopped,
                )
            )

    processors = app_client.get("/api/v1/processors").json()

    # alive first, then the most recently seen; those gone for over a day are not listed
    assert [(p["id"], p["alive"]) for p in processors] == [("a", True), ("c", False), ("b", False)]


def test_health_is_ok_when_database_and_broker_answer(app_client: TestClient) -> None:
    response = app_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_is_503_with_reasons_when_the_database_is_unreachable(
    make_settings: Callable[..., Settings], plugins: Plugins
) -> None:
    settings = make_settings(
        GEM="noop", database_url="mysql+pymysql://root@127.0.0.1:1/autoreduce", public_read=True
    )

    with TestClient(create_app(settings, plugins=plugins)) as client:
        response = client.get("/health")
        runs = client.get(RUNS)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"].startswith("unreachable") and body["broker"].startswith("unreachable")
    assert runs.status_code == 503 and "database" in runs.json()["detail"]


def test_the_session_of_read_routes_refuses_writes(app_client: TestClient, db: Database) -> None:
    dependency = get_session(app_client.app.state.api)  # type: ignore[attr-defined]
    session = next(dependency)

    session.add(Instrument(name="GEM", is_paused=False, created_at=datetime.now(UTC)))
    with pytest.raises(ReadOnlySessionError):
        session.flush()

    dependency.close()
    assert count(db, Instrument) == 0


def test_openapi_lists_the_endpoints(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]

    assert {"/api/v1/runs", "/api/v1/runs/{instrument}/{run_number}/reruns", "/health"} <= set(
        paths
    )
    assert app_client.get("/docs").status_code == 200


def test_the_instruments_row_is_created_with_the_first_run(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    with db.session() as session:
        assert session.get(Instrument, "GEM") is not None
    assert (
        json.loads(json.dumps(outbox_bodies(db)[0].model_dump(mode="json")))["run_number"] == 44733
    )


def test_identical_submissions_racing_each_other_record_one_run(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    headers = auth("detector")

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda _: app_client.post(RUNS, json=run_body(), headers=headers), range(8))
        )

    assert sorted(r.status_code for r in responses).count(201) == 1
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert (count(db, ReductionRun), count(db, OutboxMessage)) == (1, 1)


def test_concurrent_reruns_get_distinct_versions(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))
    admin = auth("admin")

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(
            pool.map(
                lambda _: app_client.post(f"{RUNS}/GEM/44733/reruns", json={}, headers=admin),
                range(4),
            )
        )

    assert all(r.status_code in (201, 409) for r in responses)
    created = sorted(r.json()["run_version"] for r in responses if r.status_code == 201)
    assert created == list(range(1, len(created) + 1)) and created
    assert count(db, OutboxMessage) == 1 + len(created)


def test_experiment_ref_and_title_are_read_from_the_nexus_file(
    app_client: TestClient, auth: Callable[..., dict[str, str]], settings: Settings
) -> None:
    data_path = data_file(settings, "GEM", 44733)
    with h5py.File(data_path, "w") as nexus:
        entry = nexus.create_group("raw_data_1")
        entry.attrs["NX_class"] = "NXentry"
        entry["experiment_identifier"] = "1920123"
        entry["title"] = "Vanadium rod"

    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()

    assert (run["experiment_ref"], run["title"]) == ("1920123", "Vanadium rod")
