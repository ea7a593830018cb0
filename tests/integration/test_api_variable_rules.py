"""Variable rules through the API: who may set them, how they are checked, and the values and
sources a new run gets from them (experiment rule, from-run rule, TOML default, plugin default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, VariableRule
from autoreduce.settings import Settings
from tests.api_client import RUNS, count, run_body
from tests.conftest import instrument_config

RULES = "/api/v1/instruments/GEM/variable-rules"
Auth = Callable[..., dict[str, str]]


def add_rule(client: TestClient, auth: Auth, **body: Any) -> dict[str, Any]:
    response = client.post(RULES, json=body, headers=auth("scientist", "GEM"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def set_experiment(db: Database, run_number: int, experiment_ref: str) -> None:
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_number == run_number)
            .values(experiment_ref=experiment_ref)
        )


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """GEM with a TOML default for ``sleep_s`` only, so ``fault`` keeps the plugin's."""
    return make_settings(
        GEM=instrument_config("noop", variables={"sleep_s": 0.5}),
        WISH="noop",
        BROKEN="not_installed",
        BADVARS="noop",
        database_url=database_url,
        public_read=True,
    )


def test_a_rule_is_listed_with_who_set_it_and_when(app_client: TestClient, auth: Auth) -> None:
    rule = add_rule(app_client, auth, from_run=100, variables={"sleep_s": 2}, reason="longer")

    [listed] = app_client.get(RULES).json()

    assert listed == rule
    assert (listed["from_run"], listed["experiment_ref"]) == (100, None)
    assert listed["variables"] == {"sleep_s": 2}
    assert listed["created_by"] == "scientist-0" and listed["created_at"].endswith("Z")


def test_a_detected_run_gets_each_value_from_the_highest_source_and_records_it(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    detector = auth("detector")
    app_client.post(RUNS, json=run_body(1), headers=detector)
    set_experiment(db, 1, "1920123")  # the first run tells us nothing; rules come after it
    experiment = add_rule(app_client, auth, experiment_ref="1920123", variables={"sleep_s": 3})
    from_run = add_rule(app_client, auth, from_run=5, variables={"sleep_s": 2, "fault": "raise"})

    early = app_client.post(RUNS, json=run_body(4), headers=detector).json()
    late = app_client.post(RUNS, json=run_body(6), headers=detector).json()

    assert early["variables"] == {"sleep_s": 0.5, "fault": "none"}
    assert early["variable_sources"] == {"sleep_s": "instrument default", "fault": "plugin default"}
    assert late["variables"] == {"sleep_s": 2.0, "fault": "raise"}
    assert late["variable_sources"] == {
        "sleep_s": f"from run 5 rule #{from_run['id']}",
        "fault": f"from run 5 rule #{from_run['id']}",
    }
    current = app_client.post(
        f"{RUNS}/GEM/1/reruns", json={"base": "current"}, headers=auth("admin")
    ).json()
    assert current["variables"] == {"sleep_s": 3.0, "fault": "none"}
    assert current["variable_sources"] == {
        "sleep_s": f"experiment 1920123 rule #{experiment['id']}",
        "fault": "plugin default",
    }


def test_a_deleted_rule_no_longer_applies_but_stays_named_on_its_runs(
    app_client: TestClient, auth: Auth
) -> None:
    detector = auth("detector")
    rule = add_rule(app_client, auth, from_run=1, variables={"sleep_s": 2})
    before = app_client.post(RUNS, json=run_body(1), headers=detector).json()

    deleted = app_client.delete(f"{RULES}/{rule['id']}", headers=auth("scientist", "GEM"))
    after = app_client.post(RUNS, json=run_body(2), headers=detector).json()

    assert deleted.status_code == 204
    assert app_client.get(RULES).json() == []
    assert before["variable_sources"]["sleep_s"] == f"from run 1 rule #{rule['id']}"
    assert after["variable_sources"]["sleep_s"] == "instrument default"
    again = app_client.delete(f"{RULES}/{rule['id']}", headers=auth("admin"))
    assert again.status_code == 404


def test_a_rule_for_an_undeclared_variable_is_422_naming_it(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    response = app_client.post(
        RULES, json={"from_run": 1, "variables": {"bins": 5}}, headers=auth("admin")
    )

    assert response.status_code == 422
    assert "bins" in response.json()["detail"]
    assert count(db, VariableRule) == 0


def test_an_invalid_rule_value_is_422_naming_the_variable_and_the_rule(
    app_client: TestClient, auth: Auth
) -> None:
    response = app_client.post(
        RULES,
        json={"experiment_ref": "1920123", "variables": {"sleep_s": -1}},
        headers=auth("admin"),
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "sleep_s" in detail and ">= 0.0" in detail and "experiment 1920123 rule" in detail


@pytest.mark.parametrize(
    "body",
    [
        {"variables": {"sleep_s": 1}},
        {"from_run": 1, "experiment_ref": "1", "variables": {"sleep_s": 1}},
        {"from_run": 1, "variables": {}},
        {"from_run": 1, "variables": {"sleep_s": 1}, "code": "import os"},
    ],
)
def test_a_rule_needs_one_scope_some_values_and_no_unknown_fields(
    app_client: TestClient, auth: Auth, body: dict[str, Any]
) -> None:
    assert app_client.post(RULES, json=body, headers=auth("admin")).status_code == 422


@pytest.mark.parametrize(
    ("role", "instruments", "status"),
    [
        ("scientist", ("WISH",), 403),
        ("scientist", (), 403),
        ("detector", (), 403),
        ("admin", (), 201),
        ("scientist", ("GEM",), 201),
    ],
)
def test_only_a_scientist_of_the_instrument_or_an_admin_sets_rules(
    app_client: TestClient, auth: Auth, role: str, instruments: tuple[str, ...], status: int
) -> None:
    body = {"from_run": 1, "variables": {"sleep_s": 1}}

    response = app_client.post(RULES, json=body, headers=auth(role, *instruments))

    assert response.status_code == status


@pytest.mark.parametrize(("role", "instruments"), [("scientist", ("WISH",)), ("detector", ())])
def test_only_a_scientist_of_the_instrument_or_an_admin_deletes_rules(
    app_client: TestClient, auth: Auth, role: str, instruments: tuple[str, ...]
) -> None:
    rule = add_rule(app_client, auth, from_run=1, variables={"sleep_s": 1})

    response = app_client.delete(f"{RULES}/{rule['id']}", headers=auth(role, *instruments))

    assert response.status_code == 403
    assert len(app_client.get(RULES).json()) == 1


def test_another_instruments_rule_cannot_be_deleted_through_this_one(
    app_client: TestClient, auth: Auth
) -> None:
    rule = add_rule(app_client, auth, from_run=1, variables={"sleep_s": 1})

    response = app_client.delete(
        f"/api/v1/instruments/WISH/variable-rules/{rule['id']}", headers=auth("admin")
    )

    assert response.status_code == 404


def test_an_instrument_scoped_reader_sees_no_rules_of_other_instruments(
    app_client: TestClient, auth: Auth
) -> None:
    response = app_client.get(RULES, headers=auth("scientist", "WISH"))

    assert response.status_code == 404
