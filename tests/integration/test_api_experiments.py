"""Experiments: ``GET /api/v1/experiments`` and ``/experiments/{ref}``, on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun
from tests.api_client import RUNS, run_body

EXPERIMENTS = "/api/v1/experiments"
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def at(day: int) -> datetime:
    return NOV.replace(day=day)


RECORDED: dict[tuple[str, int], dict[str, Any]] = {
    ("GEM", 1): {"experiment_ref": "1920123", "status": "Completed", "queued_at": at(1)},
    ("GEM", 2): {"experiment_ref": "1920123", "status": "Error", "queued_at": at(3)},
    ("WISH", 7): {"experiment_ref": "1920123", "queued_at": at(2)},
    ("WISH", 8): {"experiment_ref": "2000001", "status": "Completed", "queued_at": at(10)},
    ("GEM", 9): {"experiment_ref": "2000002", "queued_at": at(5)},
    ("GEM", 10): {"experiment_ref": "", "queued_at": at(20)},
}


@pytest.fixture
def experiments(app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database) -> None:
    """1920123: GEM 1, 2 and WISH 7 (GEM 2 re-run on the 4th); 2000001: WISH 8 (the
    latest); 2000002: GEM 9; GEM 10 names no experiment."""
    headers = auth("detector")
    for instrument, number in RECORDED:
        response = app_client.post(RUNS, json=run_body(number, instrument), headers=headers)
        assert response.status_code == 201, response.text
    rerun = app_client.post(f"{RUNS}/GEM/2/reruns", json={"variables": {}}, headers=auth("admin"))
    assert rerun.status_code == 201, rerun.text
    with db.session() as session:
        for (instrument, number), values in RECORDED.items():
            session.execute(
                update(ReductionRun)
                .where(
                    ReductionRun.instrument == instrument,
                    ReductionRun.run_number == number,
                    ReductionRun.run_version == 0,
                )
                .values(**values)
            )
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_version == 1)
            .values(experiment_ref="1920123", queued_at=at(4))
        )


def get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.usefixtures("experiments")
def test_one_experiment_has_its_runs_across_instruments_newest_first(
    app_client: TestClient,
) -> None:
    experiment = get(app_client, f"{EXPERIMENTS}/1920123")

    runs = [
        (r["instrument"], r["run_number"], r["run_version"]) for r in experiment["runs"]["items"]
    ]
    assert runs == [("GEM", 2, 1), ("GEM", 2, 0), ("WISH", 7, 0), ("GEM", 1, 0)]
    assert experiment["runs"]["total"] == 4


@pytest.mark.usefixtures("experiments")
def test_one_experiment_counts_its_runs_by_state_and_spans_its_first_to_last_run(
    app_client: TestClient,
) -> None:
    experiment = get(app_client, f"{EXPERIMENTS}/1920123")

    assert experiment["ref"] == "1920123"
    assert (experiment["run_count"], experiment["version_count"]) == (3, 4)
    assert experiment["instruments"] == ["GEM", "WISH"]
    assert experiment["status_counts"] == {
        "Queued": 2,
        "Processing": 0,
        "Completed": 1,
        "Error": 1,
        "Skipped": 0,
        "Cancelled": 0,
    }
    assert experiment["first_run_at"] == "2026-11-01T00:00:00Z"
    assert experiment["last_run_at"] == "2026-11-04T00:00:00Z"


@pytest.mark.usefixtures("experiments")
def test_an_experiments_runs_are_paged(app_client: TestClient) -> None:
    page = get(app_client, f"{EXPERIMENTS}/1920123", limit=3, offset=2)["runs"]

    assert [(r["instrument"], r["run_number"]) for r in page["items"]] == [("WISH", 7), ("GEM", 1)]
    assert (page["total"], page["limit"], page["offset"], page["next_offset"]) == (4, 3, 2, None)


@pytest.mark.usefixtures("experiments")
@pytest.mark.parametrize("ref", ["9999999", "1920", "%", "unknown"])
def test_an_unknown_experiment_is_404(app_client: TestClient, ref: str) -> None:
    response = app_client.get(f"{EXPERIMENTS}/{ref}")

    assert response.status_code == 404
    assert response.json()["detail"] == f"experiment {ref!r} not found"


@pytest.mark.usefixtures("experiments")
def test_experiments_are_listed_latest_run_first_with_their_counts(
    app_client: TestClient,
) -> None:
    page = get(app_client, EXPERIMENTS)

    assert [e["ref"] for e in page["items"]] == ["2000001", "2000002", "1920123"]
    assert (page["total"], page["next_offset"]) == (3, None)
    latest = page["items"][0]
    assert (latest["run_count"], latest["instruments"], latest["last_run_at"]) == (
        1,
        ["WISH"],
        "2026-11-10T00:00:00Z",
    )
    assert latest["status_counts"]["Completed"] == 1
    assert page["items"][2]["status_counts"]["Error"] == 1


@pytest.mark.usefixtures("experiments")
def test_experiments_are_paged(app_client: TestClient) -> None:
    first = get(app_client, EXPERIMENTS, limit=2)
    second = get(app_client, EXPERIMENTS, limit=2, offset=first["next_offset"])

    assert [e["ref"] for e in first["items"]] == ["2000001", "2000002"]
    assert [e["ref"] for e in second["items"]] == ["1920123"]
    assert (first["next_offset"], second["next_offset"], second["total"]) == (2, None, 3)


@pytest.mark.usefixtures("experiments")
def test_a_scoped_token_sees_only_its_instruments_runs_of_an_experiment(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    headers = auth("scientist", "WISH")

    listed = app_client.get(EXPERIMENTS, headers=headers).json()
    shared = app_client.get(f"{EXPERIMENTS}/1920123", headers=headers).json()
    not_theirs = app_client.get(f"{EXPERIMENTS}/2000002", headers=headers)

    assert [e["ref"] for e in listed["items"]] == ["2000001", "1920123"]
    assert listed["total"] == 2
    assert (shared["run_count"], shared["instruments"]) == (1, ["WISH"])
    assert [r["run_number"] for r in shared["runs"]["items"]] == [7]
    assert not_theirs.status_code == 404


def test_no_experiments_is_an_empty_page(app_client: TestClient) -> None:
    page = get(app_client, EXPERIMENTS)

    assert (page["items"], page["total"], page["next_offset"]) == ([], 0, None)


def test_reading_experiments_needs_a_token_unless_reads_are_public(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    bad = {"Authorization": "Bearer not-a-token"}

    assert app_client.get(EXPERIMENTS, headers=bad).status_code == 401
    assert app_client.get(f"{EXPERIMENTS}/1920123", headers=bad).status_code == 401
