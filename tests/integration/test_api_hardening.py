"""The API against hostile and mistaken clients: files outside the archive, squatted run numbers,
huge bodies, unknown parameters, anonymous reads, and errors that say what they are.

Each test names the finding of the hardening issue it covers (F3 … F13).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunOutput
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from rest_api import create_app
from tests.api_client import RUNS, count, data_file, outbox_bodies, run_body

PROBLEM = "application/problem+json"
HANG_CHECK_S = 20.0  # a hang guard, not a speed assertion: a working API answers at once


def assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` whose detail holds ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["status"], body["type"]) == (status, "about:blank")
    assert body["title"] and isinstance(body["detail"], str)
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


# --- F3: the API finds the data file, and only inside the archive ------------------------------


def test_a_run_whose_file_is_not_written_yet_is_409_with_the_path_looked_for(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    response = app_client.post(RUNS, json=run_body(999), headers=auth("detector"))

    assert_problem(response, 409, "does not exist yet", "GEM00000999.nxs")
    assert count(db, ReductionRun) == 0


@pytest.mark.parametrize(
    "data_path",
    [
        "/etc/passwd",
        "/proc/self/environ",
        "{archive}/../outside.nxs",
        "{archive}/link-out.nxs",
        "{archive}/NDXGEM",
        "{archive}/no-such-file.nxs",
    ],
)
def test_a_named_data_path_outside_the_archive_or_not_a_file_is_422(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    db: Database,
    settings: Settings,
    data_path: str,
) -> None:
    archive = settings.archive.root
    (archive.parent / "outside.nxs").write_text("secret")
    (archive / "link-out.nxs").symlink_to(archive.parent / "outside.nxs")

    response = app_client.post(
        RUNS,
        json=run_body(data_path=data_path.format(archive=archive)),
        headers=auth("detector"),
    )

    assert_problem(response, 422, "data_path")
    assert count(db, ReductionRun) == 0


def test_a_fifo_as_data_file_is_refused_without_freezing_the_api(
    app_client: TestClient, auth: Callable[..., dict[str, str]], settings: Settings
) -> None:
    fifo = data_file(settings, "GEM", 77)
    fifo.unlink()
    os.mkfifo(fifo)
    answers: dict[str, Any] = {}
    headers = auth("detector")

    def submit() -> None:
        answers["named"] = app_client.post(
            RUNS, json=run_body(77, data_path=str(fifo)), headers=headers
        )
        answers["found"] = app_client.post(RUNS, json=run_body(77), headers=headers)

    worker = threading.Thread(target=submit, daemon=True)
    worker.start()
    worker.join(HANG_CHECK_S)

    assert not worker.is_alive(), "a FIFO data file held the request"
    assert_problem(answers["named"], 422, "not a regular file")
    assert answers["found"].status_code == 409  # the template's match is refused too
    assert app_client.get("/health").status_code == 200


def test_a_title_stored_outside_the_file_is_not_read_into_the_run(
    app_client: TestClient, auth: Callable[..., dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:SECRET-MARKER\n".ljust(64, b" "))
    path = data_file(settings, "GEM", 44733)
    with h5py.File(path, "w") as nexus:
        entry = nexus.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("title", shape=(1,), dtype="S64", external=[(str(secret), 0, 64)])

    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()

    assert "SECRET-MARKER" not in run["title"]
    assert app_client.get(RUNS, params={"q": "SECRET"}).json()["total"] == 0


# --- F4: run-number squatting -------------------------------------------------------------------


def test_a_resubmission_with_another_data_file_is_409_naming_both_and_logged(
    app_client: TestClient,
    auth: Callable[..., dict[str, str]],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="autoreduce.api")
    headers = auth("detector")
    wrong = data_file(settings, "GEM", 5)  # another run's file, inside the archive
    squatted = app_client.post(RUNS, json=run_body(6, data_path=str(wrong)), headers=headers)

    real = app_client.post(RUNS, json=run_body(6), headers=headers)

    assert squatted.status_code == 201
    body = assert_problem(real, 409, "already recorded", str(wrong.resolve()))
    assert str(data_file(settings, "GEM", 6).resolve()) in body["detail"]
    assert any("conflicting submission" in r.getMessage() for r in caplog.records)


def test_the_same_run_from_the_template_twice_is_idempotent(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    headers = auth("detector")

    first = app_client.post(RUNS, json=run_body(3), headers=headers)
    again = app_client.post(RUNS, json=run_body(3), headers=headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


# --- F5: limits on what a client can send -------------------------------------------------------


@pytest.fixture
def small_limits(
    make_settings: Callable[..., Settings], plugins: Plugins, database_url: str, data_files: None
) -> Iterator[TestClient]:
    settings = make_settings(
        GEM="noop",
        database_url=database_url,
        public_read=True,
        max_request_bytes=2048,
        max_variables_bytes=100,
        max_page_bytes=3000,
    )
    for run_number in range(1, 8):
        data_file(settings, "GEM", run_number)
    with TestClient(create_app(settings, relay=False, plugins=plugins)) as client:
        yield client


def test_a_body_over_the_limit_is_413_before_authentication(small_limits: TestClient) -> None:
    response = small_limits.post(
        RUNS, content=b"x" * 4096, headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413, "2048 bytes")


def test_a_chunked_body_over_the_limit_is_413(small_limits: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    response = small_limits.post(
        RUNS, content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413)


def test_rerun_variables_over_their_limit_are_422(
    small_limits: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    db: Database = small_limits.app.state.api.database  # type: ignore[attr-defined]
    from autoreduce.tokens import create_token

    admin = {"Authorization": f"Bearer {create_token(db, 'a', 'admin')}"}
    small_limits.post(RUNS, json=run_body(1), headers=admin)

    response = small_limits.post(
        f"{RUNS}/GEM/1/reruns", json={"variables": {"fault": "x" * 200}}, headers=admin
    )

    assert_problem(response, 422, "max_variables_bytes")


def test_a_page_of_runs_stops_before_its_byte_limit_and_says_where_to_go_on(
    small_limits: TestClient,
) -> None:
    db: Database = small_limits.app.state.api.database  # type: ignore[attr-defined]
    from autoreduce.tokens import create_token

    admin = {"Authorization": f"Bearer {create_token(db, 'a', 'admin')}"}
    for run_number in range(1, 8):
        assert small_limits.post(RUNS, json=run_body(run_number), headers=admin).status_code == 201

    page = small_limits.get(RUNS, params={"limit": 7}).json()

    assert 0 < len(page["items"]) < 7
    assert page["next_offset"] == len(page["items"])
    assert page["total"] == 7
    rest = small_limits.get(RUNS, params={"limit": 7, "offset": page["next_offset"]}).json()
    seen = [i["run_number"] for i in page["items"]] + [i["run_number"] for i in rest["items"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)


# --- F6: unknown parameters and fields, stored reasons, odd values -------------------------------


@pytest.mark.parametrize(
    "path",
    [f"{RUNS}?experiment_ref=1920123", f"{RUNS}/GEM/1?verbose=1", "/api/v1/instruments?x=1"],
)
def test_an_unknown_query_parameter_is_422_naming_it(app_client: TestClient, path: str) -> None:
    name = path.split("?")[1].split("=")[0]

    body = assert_problem(app_client.get(path), 422, name)

    assert body["errors"][0]["loc"] == ["query", name]


def test_a_rerun_body_without_its_variables_wrapper_is_422(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    response = app_client.post(
        f"{RUNS}/GEM/44733/reruns", json={"sleep_s": 2}, headers=auth("admin")
    )

    assert_problem(response, 422, "sleep_s")
    assert count(db, ReductionRun) == 1


def test_a_reruns_reason_is_stored_as_its_description(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    app_client.post(RUNS, json=run_body(), headers=auth("detector"))

    made = app_client.post(
        f"{RUNS}/GEM/44733/reruns",
        json={"variables": {}, "reason": "new vanadium"},
        headers=auth("admin"),
    )

    assert made.json()["description"] == "new vanadium"
    versions = app_client.get(f"{RUNS}/GEM/44733").json()["versions"]
    assert [v["description"] for v in versions] == ["", "new vanadium"]


def test_a_nul_in_the_search_is_422(app_client: TestClient) -> None:
    assert_problem(app_client.get(RUNS, params={"q": "a\x00b"}), 422, "NUL")


@pytest.mark.parametrize("output_id", ["+1", "01", "1.0", "0x1", " 1"])
def test_an_output_id_is_decimal_digits_only(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database, output_id: str
) -> None:
    run = app_client.post(RUNS, json=run_body(), headers=auth("detector")).json()
    with db.session() as session:
        session.add(RunOutput(run_id=run["id"], kind="log", name="reduction.log", size_bytes=1))

    assert_problem(app_client.get(f"/api/v1/outputs/{output_id}"), 422, "output_id")


# --- F7: reads need a login ---------------------------------------------------------------------


@pytest.fixture
def private_client(
    make_settings: Callable[..., Settings], plugins: Plugins, database_url: str, data_files: None
) -> Iterator[TestClient]:
    """An instance without ``public_read``, with GEM 1 and WISH 1 recorded and an output each."""
    settings = make_settings(GEM="noop", WISH="noop", database_url=database_url)
    for instrument in ("GEM", "WISH"):
        data_file(settings, instrument, 1)
    with TestClient(create_app(settings, relay=False, plugins=plugins)) as client:
        yield client


@pytest.fixture
def private_auth(private_client: TestClient) -> Callable[..., dict[str, str]]:
    from autoreduce.tokens import create_token

    db: Database = private_client.app.state.api.database  # type: ignore[attr-defined]
    names = iter(range(100))

    def headers(role: str, *instruments: str) -> dict[str, str]:
        token = create_token(db, f"{role}-{next(names)}", role, instruments)
        return {"Authorization": f"Bearer {token}"}

    admin = headers("admin")
    for instrument in ("GEM", "WISH"):
        run = private_client.post(RUNS, json=run_body(1, instrument), headers=admin).json()
        with db.session() as session:
            session.add(RunOutput(run_id=run["id"], kind="log", name="x.log", size_bytes=1))
    return headers


READS = [
    RUNS,
    f"{RUNS}/GEM/1",
    "/api/v1/instruments",
    "/api/v1/outputs/1",
    "/api/v1/processors",
]


@pytest.mark.parametrize("path", READS)
def test_reads_without_a_token_are_401_unless_the_instance_is_public(
    private_client: TestClient, private_auth: Callable[..., dict[str, str]], path: str
) -> None:
    response = private_client.get(path)

    assert_problem(response, 401, "bearer token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", READS)
def test_a_bad_token_is_401_even_on_a_public_instance(app_client: TestClient, path: str) -> None:
    response = app_client.get(path, headers={"Authorization": "Bearer ar_nope"})

    assert_problem(response, 401, "unknown or revoked")


def test_health_stays_open(private_client: TestClient) -> None:
    assert private_client.get("/health").status_code == 200


def test_a_token_of_any_role_reads(
    private_client: TestClient, private_auth: Callable[..., dict[str, str]]
) -> None:
    for role in ("admin", "scientist", "detector"):
        assert private_client.get(RUNS, headers=private_auth(role)).json()["total"] == 2


def test_an_instrument_scoped_token_sees_only_its_instruments(
    private_client: TestClient, private_auth: Callable[..., dict[str, str]], database_url: str
) -> None:
    gem_only = private_auth("scientist", "GEM")
    db: Database = private_client.app.state.api.database  # type: ignore[attr-defined]
    with db.session() as session:
        wish_output = session.scalar(
            select(RunOutput.id).join(ReductionRun).where(ReductionRun.instrument == "WISH")
        )

    listed = private_client.get(RUNS, headers=gem_only).json()
    filtered = private_client.get(RUNS, params={"instrument": "WISH"}, headers=gem_only)
    other_run = private_client.get(f"{RUNS}/WISH/1", headers=gem_only)
    other_output = private_client.get(f"/api/v1/outputs/{wish_output}", headers=gem_only)
    instruments = private_client.get("/api/v1/instruments", headers=gem_only).json()

    assert [(i["instrument"], i["run_number"]) for i in listed["items"]] == [("GEM", 1)]
    assert listed["total"] == 1
    assert_problem(filtered, 403, "WISH")
    assert_problem(other_run, 404)
    assert_problem(other_output, 404)
    assert [i["name"] for i in instruments] == ["GEM"]


# --- F8: the API says what it does ----------------------------------------------------------------


OAUTH_ERRORS = {("/api/v1/oauth/token", "400"), ("/api/v1/oauth/token", "401")}
"""The token endpoint's own errors take OAuth's shape (RFC 6749 §5.2): OAuth clients expect it."""


def test_every_error_of_every_operation_is_declared_as_a_problem(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()

    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
            assert "422" in errors, (method, path)
            for code, declared in errors.items():
                media_type = "application/json" if (path, code) in OAUTH_ERRORS else PROBLEM
                assert list(declared["content"]) == [media_type], (method, path, code)


def test_writes_declare_their_auth_and_conflict_answers(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]

    assert {"401", "403", "409", "413", "422"} <= set(paths[RUNS]["post"]["responses"])
    assert {"401", "404"} <= set(paths["/api/v1/outputs/{output_id}"]["get"]["responses"])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_serve_their_assets_themselves(app_client: TestClient, page: str) -> None:
    html = app_client.get(page).text

    assets = [part.split('"')[0] for part in html.split('src="')[1:]]
    assets += [part.split('"')[0] for part in html.split('href="')[1:] if ".css" in part]
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), f"{asset} comes from elsewhere"
        assert app_client.get(asset).status_code == 200, asset
    assert "cdn" not in html.lower()


# --- F12: instruments say which default a run gets; held runs say so -----------------------------


def test_instruments_show_the_default_a_run_gets_and_where_it_comes_from(
    make_settings: Callable[..., Settings], plugins: Plugins, database_url: str
) -> None:
    from tests.conftest import instrument_config

    settings = make_settings(
        GEM=instrument_config("noop", variables={"sleep_s": 1.5}),
        database_url=database_url,
        public_read=True,
    )
    with TestClient(create_app(settings, relay=False, plugins=plugins)) as client:
        [gem] = client.get("/api/v1/instruments").json()

    variables = {v["name"]: v for v in gem["variables"]}
    assert variables["sleep_s"]["default"] == 1.5
    assert variables["sleep_s"]["default_source"] == "instrument"
    assert variables["sleep_s"]["plugin_default"] == 0.0
    assert (variables["fault"]["default"], variables["fault"]["default_source"]) == (
        "none",
        "plugin",
    )


def test_a_run_held_by_a_pause_says_so_until_the_instrument_resumes(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    admin = auth("admin")
    queued_before = app_client.post(RUNS, json=run_body(1), headers=auth("detector")).json()

    app_client.patch("/api/v1/instruments/GEM", json={"paused": True}, headers=admin)
    recorded_while_paused = app_client.post(RUNS, json=run_body(2), headers=auth("detector"))
    rerun = app_client.post(f"{RUNS}/GEM/1/reruns", json={}, headers=admin)

    def message(run_number: int, version: int = 0) -> str:
        versions = app_client.get(f"{RUNS}/GEM/{run_number}").json()["versions"]
        return str(versions[version]["message"])

    assert recorded_while_paused.json()["message"].startswith("held: instrument GEM is paused")
    assert rerun.json()["message"].startswith("held:")
    assert message(1).startswith("held:")  # its message was never sent: held too
    app_client.patch("/api/v1/instruments/GEM", json={"paused": False}, headers=admin)
    assert (message(1), message(2), message(1, 1)) == ("", "", "")
    assert queued_before["message"] == ""


def test_a_processor_clears_the_held_message_when_it_claims_the_run(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    from queue_processor.claim import Decision, claim_run

    run = app_client.post(RUNS, json=run_body(1), headers=auth("detector")).json()
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.id == run["id"])
            .values(message="held: instrument GEM is paused; …")
        )
    [message] = outbox_bodies(db)

    claim = claim_run(db, message, processor="p", max_attempts=3)

    assert claim.decision is Decision.REDUCE
    with db.session() as session:
        assert session.get(ReductionRun, run["id"]).message == ""  # type: ignore[union-attr]
