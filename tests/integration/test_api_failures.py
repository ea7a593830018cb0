"""GET /api/v1/failures: recent errors grouped by the fingerprint of their cause, for triage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoreduce.db import Database
from autoreduce.db.models import Instrument, ReductionRun, RunStatus, utcnow
from autoreduce.failures import ErrorCategory, Failure, classify
from tests.api_client import RUNS, run_body

FAILURES = "/api/v1/failures"
RAISED = classify(
    ErrorCategory.PLUGIN, "no bank 3", plugin="noop", exception_type="KeyError", frame="p:f"
)
TIMED_OUT = classify(ErrorCategory.TIMEOUT, "plugin exceeded its 60 s time limit", plugin="noop")


@pytest.fixture
def record_error(db: Database) -> Callable[..., None]:
    """Record a run version in Error with ``failure``, finished ``ago`` before now."""

    def record(
        instrument: str, run_number: int, failure: Failure, ago: timedelta, version: int = 0
    ) -> None:
        with db.session() as session:
            if session.get(Instrument, instrument) is None:
                session.add(Instrument(name=instrument))
                session.flush()
            session.add(
                ReductionRun(
                    instrument=instrument,
                    run_number=run_number,
                    run_version=version,
                    status=RunStatus.ERROR,
                    message=f"failed at run {run_number}",
                    data_path=f"/archive/{instrument}{run_number}.nxs",
                    variables={},
                    finished_at=utcnow() - ago,
                    **failure.columns(),
                )
            )

    return record


def failures(client: TestClient, **params: Any) -> dict[str, Any]:
    headers = params.pop("headers", None)
    response = client.get(FAILURES, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_errors_with_one_fingerprint_are_one_group_with_count_instruments_and_examples(
    app_client: TestClient, record_error: Callable[..., None]
) -> None:
    for run_number in range(1, 8):
        record_error("GEM", run_number, RAISED, timedelta(hours=10 - run_number))
    record_error("WISH", 44733, RAISED, timedelta(hours=20))
    record_error("WISH", 9, TIMED_OUT, timedelta(minutes=5))

    body = failures(app_client)

    assert body["total"] == 2 and body["next_offset"] is None
    timed_out, raised = body["items"]  # newest group (by last seen) first
    assert (timed_out["fingerprint"], timed_out["count"]) == (TIMED_OUT.fingerprint, 1)
    assert timed_out["category"] == "timeout"
    assert raised["fingerprint"] == RAISED.fingerprint
    assert (raised["count"], raised["category"]) == (8, "plugin")
    assert raised["signature"] == "KeyError in p:f: no bank <n>"
    assert raised["instruments"] == ["GEM", "WISH"]
    assert datetime.fromisoformat(raised["first_seen"]) < datetime.fromisoformat(
        raised["last_seen"]
    )
    examples = [(e["instrument"], e["run_number"], e["run_version"]) for e in raised["examples"]]
    assert examples == [("GEM", 7, 0), ("GEM", 6, 0), ("GEM", 5, 0), ("GEM", 4, 0), ("GEM", 3, 0)]
    assert raised["examples"][0]["url"] == f"{RUNS}/GEM/7"


def test_errors_older_than_seven_days_are_left_out_unless_since_reaches_them(
    app_client: TestClient, record_error: Callable[..., None]
) -> None:
    record_error("GEM", 1, RAISED, timedelta(days=8))
    record_error("GEM", 2, RAISED, timedelta(days=1))

    recent = failures(app_client)
    longer = failures(app_client, since=(utcnow() - timedelta(days=9)).isoformat())

    assert [group["count"] for group in recent["items"]] == [1]
    assert [group["count"] for group in longer["items"]] == [2]


def test_an_instrument_scoped_token_sees_only_its_instruments_failures(
    app_client: TestClient, record_error: Callable[..., None], auth: Callable[..., Any]
) -> None:
    record_error("GEM", 1, RAISED, timedelta(hours=1))
    record_error("WISH", 2, RAISED, timedelta(hours=1))
    record_error("WISH", 3, TIMED_OUT, timedelta(hours=1))

    body = failures(app_client, headers=auth("scientist", "GEM"))

    [group] = body["items"]
    assert (group["count"], group["instruments"], body["total"]) == (1, ["GEM"], 1)
    refused = app_client.get(
        FAILURES, params={"instrument": "WISH"}, headers=auth("scientist", "GEM")
    )
    assert refused.status_code == 403


def test_groups_are_paged(app_client: TestClient, record_error: Callable[..., None]) -> None:
    record_error("GEM", 1, RAISED, timedelta(hours=2))
    record_error("GEM", 2, TIMED_OUT, timedelta(hours=1))

    first = failures(app_client, limit=1)
    second = failures(app_client, limit=1, offset=first["next_offset"])

    assert (first["total"], first["next_offset"], second["next_offset"]) == (2, 1, None)
    assert [first["items"][0]["category"], second["items"][0]["category"]] == ["timeout", "plugin"]


def test_groups_can_be_narrowed_to_one_category_and_instrument(
    app_client: TestClient, record_error: Callable[..., None]
) -> None:
    record_error("GEM", 1, RAISED, timedelta(hours=2))
    record_error("WISH", 2, TIMED_OUT, timedelta(hours=1))
    record_error("GEM", 3, TIMED_OUT, timedelta(hours=1))

    body = failures(app_client, category="timeout", instrument="GEM")

    [group] = body["items"]
    assert (group["category"], group["instruments"], group["count"]) == ("timeout", ["GEM"], 1)


def test_a_run_the_api_records_in_error_is_categorised_and_listed(
    app_client: TestClient, auth: Callable[..., Any]
) -> None:
    response = app_client.post(RUNS, json=run_body(instrument="BROKEN"), headers=auth("detector"))

    run = response.json()
    assert (run["status"], run["error_category"]) == ("Error", "plugin")
    [group] = failures(app_client)["items"]
    assert (group["fingerprint"], group["instruments"]) == (run["error_fingerprint"], ["BROKEN"])


def test_a_run_item_shows_its_failure_and_provenance(
    app_client: TestClient, db: Database, record_error: Callable[..., None]
) -> None:
    record_error("GEM", 5, RAISED, timedelta(hours=1))
    provenance = {
        "plugin": "noop",
        "plugin_distribution": "autoreduce",
        "plugin_version": "1.3",
        "environment_fingerprint": "e" * 64,
        "environment_packages": 120,
        "processor": "p1",
        "host": "h",
        "data_file": {"path": "/a", "size_bytes": 3, "modified_at": "x", "sha256": "f" * 64},
        "plugin_change": "plugin noop 1.2 → 1.3 since v0",
    }
    with db.session() as session:
        session.query(ReductionRun).update({"provenance": provenance})

    [version] = app_client.get(f"{RUNS}/GEM/5").json()["versions"]

    assert version["error_signature"] == RAISED.signature
    assert version["error_fingerprint"] == RAISED.fingerprint
    assert version["provenance"] == provenance


@pytest.mark.parametrize(
    "params", [{"since": "yesterday"}, {"since": "0001-01-01T00:00:00"}, {"category": "meh"}]
)
def test_a_bad_parameter_is_a_422_problem(app_client: TestClient, params: dict[str, str]) -> None:
    response = app_client.get(FAILURES, params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
