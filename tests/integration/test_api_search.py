"""Searching runs with ``GET /api/v1/runs?q=``: every form of the grammar, on SQLite and MariaDB."""

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

SEARCHED_RUNS: dict[tuple[str, int], dict[str, Any]] = {
    ("GEM", 1): {
        "title": "Vanadium rod",
        "experiment_ref": "1920123",
        "status": "Completed",
        "variables": {"sleep_s": 0.5, "fault": "none"},
        "queued_at": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
    },
    ("GEM", 2): {
        "title": "Empty can",
        "experiment_ref": "1920123",
        "status": "Error",
        "message": "boom: out of memory",
        "variables": {"sleep_s": 0.0, "fault": "raise"},
        "queued_at": datetime(2026, 11, 5, 8, 0, tzinfo=UTC),
    },
    ("GEM", 3): {
        "title": "vanadium ROD long",
        "experiment_ref": "2000001",
        "variables": {"sleep_s": 5, "fault": "5"},
        "queued_at": datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC),
    },
    ("WISH", 1): {
        "title": "Silicon",
        "experiment_ref": "2000001",
        "status": "Completed",
        "submitted_by": "alice",
        "variables": {"smooth": True, "fault": "none"},
        "queued_at": datetime(2026, 11, 21, tzinfo=UTC),
    },
    ("WISH", 2): {
        "title": "100%_sample",
        "variables": {"smooth": False, "fault": "True"},
        "queued_at": datetime(2026, 12, 1, tzinfo=UTC),
    },
}


@pytest.fixture
def searched_runs(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    """GEM 1-3 and WISH 1-2 with the titles, experiments, states and variables above."""
    headers = auth("detector")
    for instrument, number in SEARCHED_RUNS:
        response = app_client.post(RUNS, json=run_body(number, instrument), headers=headers)
        assert response.status_code == 201, response.text
    with db.session() as session:
        for (instrument, number), values in SEARCHED_RUNS.items():
            session.execute(
                update(ReductionRun)
                .where(ReductionRun.instrument == instrument, ReductionRun.run_number == number)
                .values(**values)
            )


def found(client: TestClient, q: str, **params: Any) -> list[tuple[str, int]]:
    """The runs ``q`` finds, sorted (their order is the listing's, tested elsewhere)."""
    response = client.get(RUNS, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return sorted((item["instrument"], item["run_number"]) for item in response.json()["items"])


GEM1, GEM2, GEM3, WISH1, WISH2 = ("GEM", 1), ("GEM", 2), ("GEM", 3), ("WISH", 1), ("WISH", 2)


@pytest.mark.usefixtures("searched_runs")
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("vanadium", [GEM1, GEM3]),
        ("1920123", [GEM1, GEM2]),
        ("wish", [WISH1, WISH2]),
        ("memory", [GEM2]),
        ("100%_", [WISH2]),
        ("100%_x", []),
        ('"vanadium rod"', [GEM1, GEM3]),
        ("vanadium long", [GEM3]),
        ("instrument:wish", [WISH1, WISH2]),
        ("instrument:NOPE", []),
        ("status:error", [GEM2]),
        ("status:Completed", [GEM1, WISH1]),
        ("experiment:1920123", [GEM1, GEM2]),
        ("experiment:1920", []),
        ('title:"vanadium rod"', [GEM1, GEM3]),
        ("title:silicon", [WISH1]),
        ("message:boom", [GEM2]),
        ("by:alice", [WISH1]),
        ("by:ali", []),
        ("run:2..3", [GEM2, GEM3, WISH2]),
        ("run:2..", [GEM2, GEM3, WISH2]),
        ("run:..1", [GEM1, WISH1]),
        ("run:2", [GEM2, WISH2]),
        ("date:2026-11-01..2026-11-20", [GEM1, GEM2, GEM3]),
        ("date:2026-11-21..", [WISH1, WISH2]),
        ("date:..2026-11-01", [GEM1]),
        ("date:2026-11-05", [GEM2]),
        ("date:2027-01-01..", []),
        ("var.sleep_s:0.5", [GEM1]),
        ("var.sleep_s:5", [GEM3]),
        ("var.sleep_s:5.0", [GEM3]),
        ("var.sleep_s:0", [GEM2]),
        ("var.fault:raise", [GEM2]),
        ("var.fault:5", []),
        ('var.fault:"5"', [GEM3]),
        ("var.fault:true", []),
        ('var.fault:"True"', [WISH2]),
        ("var.fault:NONE", []),
        ("var.smooth:true", [WISH1]),
        ("var.smooth:false", [WISH2]),
        ("var.missing:1", []),
        ("/van.*rod/", [GEM1, GEM3]),
        ("/rod$/", [GEM1]),
        ("/^si/", [WISH1]),
        ("/[0-9]+%/", [WISH2]),
        ("instrument:GEM /rod/ status:completed", [GEM1]),
        ("vanadium experiment:2000001 date:2026-11-20", [GEM3]),
    ],
)
def test_each_search_form_finds_exactly_its_runs(
    app_client: TestClient, q: str, expected: list[tuple[str, int]]
) -> None:
    assert found(app_client, q) == expected


@pytest.mark.usefixtures("searched_runs")
def test_search_combines_with_the_other_filters(app_client: TestClient) -> None:
    assert found(app_client, "vanadium", run_max=2) == [GEM1]
    assert found(app_client, "experiment:2000001", instrument="WISH") == [WISH1]
    assert found(app_client, "status:completed", status="Error") == []


@pytest.mark.usefixtures("searched_runs")
def test_a_search_counts_all_it_finds_and_pages_them(app_client: TestClient) -> None:
    page = app_client.get(RUNS, params={"q": "instrument:GEM", "limit": 2}).json()

    assert (page["total"], page["next_offset"]) == (3, 2)
    assert [item["run_number"] for item in page["items"]] == [3, 2]


@pytest.mark.usefixtures("searched_runs")
def test_a_scoped_token_finds_only_its_instruments_runs(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    headers = auth("scientist", "GEM")

    def runs(q: str) -> list[tuple[str, int]]:
        response = app_client.get(RUNS, params={"q": q}, headers=headers)
        assert response.status_code == 200, response.text
        return sorted((i["instrument"], i["run_number"]) for i in response.json()["items"])

    assert runs("wish") == []
    assert runs("instrument:WISH") == []
    assert runs("experiment:2000001") == [GEM3]


@pytest.mark.parametrize(
    ("q", "says"),
    [
        ("tilte:x", "unknown field 'tilte' in 'tilte:x' (fields: instrument, status,"),
        ("run:5..a", "run range '5..a' is not numbers"),
        ("run:9..1", "run range '9..1' runs backwards"),
        (f"run:{2**63}", "is past"),
        ("date:2026-02-30", "date '2026-02-30' in 'date:2026-02-30' is not an ISO date"),
        ("status:Finished", "unknown status 'Finished' in 'status:Finished'"),
        ("var.a-b:1", "variable name 'a-b' in 'var.a-b:1' is not a name"),
        (f"var.n:{2**64}", "out of range"),
        ("/(/", "invalid regex '/(/'"),
        ("/(a+)+$/", "exponential"),
        ("/abc", "unterminated regex in '/abc'"),
        ('title:"vanadium rod', "unterminated quote in 'title:\"vanadium rod'"),
        ('vana"dium', "stray quote in 'vana\"dium'"),
    ],
)
def test_bad_search_syntax_is_a_400_naming_the_token(
    app_client: TestClient, q: str, says: str
) -> None:
    response = app_client.get(RUNS, params={"q": q})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("q: ")
    assert says in response.json()["detail"]


def test_a_search_holding_a_nul_character_is_a_422(app_client: TestClient) -> None:
    response = app_client.get(RUNS, params={"q": "title:a\x00b"})

    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]


@pytest.mark.usefixtures("searched_runs")
def test_a_regex_only_python_knows_is_a_400_on_mariadb_and_matches_on_sqlite(
    app_client: TestClient, db: Database
) -> None:
    q = "/^\\N{LATIN CAPITAL LETTER S}ilicon/"

    response = app_client.get(RUNS, params={"q": q})

    if db.dialect == "sqlite":
        assert found(app_client, q) == [WISH1]
    else:
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(f"q: the database refused a regex in {q!r}")
