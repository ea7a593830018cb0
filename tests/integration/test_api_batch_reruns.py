"""Re-runs that say what they change: a named base, dry runs, and batches in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage, ReductionRun, RerunBatch, RunStatus
from autoreduce.settings import Settings
from tests.api_client import RUNS, count, outbox_bodies, run_body

RERUNS = "/api/v1/reruns"
Auth = Callable[..., dict[str, str]]


def finish(db: Database, *run_numbers: int, status: RunStatus = RunStatus.COMPLETED) -> None:
    """Move the given runs' Queued versions to ``status``, as a processor would."""
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(
                ReductionRun.run_number.in_(run_numbers),
                ReductionRun.status == RunStatus.QUEUED.value,
            )
            .values(status=status.value)
        )


@pytest.fixture
def recorded(app_client: TestClient, auth: Auth, db: Database) -> list[int]:
    """GEM runs 1 to 5 recorded and Completed."""
    detector = auth("detector")
    for number in range(1, 6):
        assert app_client.post(RUNS, json=run_body(number), headers=detector).status_code == 201
    finish(db, *range(1, 6))
    return list(range(1, 6))


def batch(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(RERUNS, json={"instrument": "GEM", **body}, headers=headers)


# --- single re-runs: base, differences, dry run ---------------------------------------------


@pytest.mark.usefixtures("recorded")
def test_a_rerun_on_latest_keeps_the_latest_values_and_records_its_base(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    admin = auth("admin")
    app_client.post(f"{RUNS}/GEM/1/reruns", json={"variables": {"sleep_s": 2}}, headers=admin)
    finish(db, 1)

    run = app_client.post(
        f"{RUNS}/GEM/1/reruns", json={"variables": {"fault": "raise"}}, headers=admin
    ).json()

    assert (run["run_version"], run["derived_from_version"]) == (2, 1)
    assert run["variables"] == {"sleep_s": 2.0, "fault": "raise"}
    assert run["variable_sources"] == {"sleep_s": "re-run change", "fault": "re-run change"}


@pytest.mark.usefixtures("recorded")
def test_a_rerun_on_version_n_starts_from_that_version(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    admin = auth("admin")
    app_client.post(f"{RUNS}/GEM/1/reruns", json={"variables": {"sleep_s": 2}}, headers=admin)

    run = app_client.post(f"{RUNS}/GEM/1/reruns", json={"base": "version 0"}, headers=admin).json()

    assert (run["run_version"], run["derived_from_version"]) == (2, 0)
    assert run["variables"] == {"sleep_s": 0.0, "fault": "none"}
    assert run["variable_sources"] == {"sleep_s": "plugin default", "fault": "plugin default"}


@pytest.mark.usefixtures("recorded")
def test_a_rerun_on_a_version_that_does_not_exist_is_422(
    app_client: TestClient, auth: Auth
) -> None:
    response = app_client.post(
        f"{RUNS}/GEM/1/reruns", json={"base": "version 7"}, headers=auth("admin")
    )

    assert response.status_code == 422
    assert "version 7" in response.json()["detail"]


@pytest.mark.usefixtures("recorded")
def test_a_dry_run_rerun_answers_the_values_and_differences_and_queues_nothing(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    runs, messages = count(db, ReductionRun), count(db, OutboxMessage)

    response = app_client.post(
        f"{RUNS}/GEM/2/reruns",
        json={"variables": {"sleep_s": 1.5}, "dry_run": True},
        headers=auth("admin"),
    )

    assert response.status_code == 200
    plan = response.json()
    assert (plan["run_version"], plan["derived_from_version"], plan["status"]) == (1, 0, "Queued")
    assert plan["differences"] == {"sleep_s": {"from": 0.0, "to": 1.5}}
    assert (count(db, ReductionRun), count(db, OutboxMessage)) == (runs, messages)


# --- batches ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("recorded")
def test_a_dry_run_batch_touches_nothing_and_matches_the_real_batch(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    headers = auth("scientist", "GEM")
    body = {"run_min": 2, "run_max": 4, "variables": {"sleep_s": 0.25}, "reason": "new bins"}
    runs, messages = count(db, ReductionRun), count(db, OutboxMessage)

    dry = batch(app_client, headers, dry_run=True, **body)

    assert dry.status_code == 200
    assert (count(db, ReductionRun), count(db, OutboxMessage), count(db, RerunBatch)) == (
        runs,
        messages,
        0,
    )
    real = batch(app_client, headers, **body)
    assert real.status_code == 201
    assert dry.json()["id"] is None and real.json()["id"] is not None
    assert dry.json()["runs"] == real.json()["runs"]
    assert [r["run_number"] for r in real.json()["runs"]] == [2, 3, 4]
    assert all(
        r["differences"] == {"sleep_s": {"from": 0.0, "to": 0.25}} for r in dry.json()["runs"]
    )
    assert (count(db, ReductionRun), count(db, OutboxMessage)) == (runs + 3, messages + 3)


@pytest.mark.usefixtures("recorded")
def test_a_batch_makes_one_version_each_with_its_message_and_reads_back(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    answer = batch(
        app_client, auth("admin"), runs=[5, 1, 99], variables={"fault": "raise"}, reason="why"
    ).json()

    read = app_client.get(f"{RERUNS}/{answer['id']}").json()

    assert [(r["run_number"], r["run_version"], r["status"]) for r in read["runs"]] == [
        (5, 1, "Queued"),
        (1, 1, "Queued"),
        (99, None, "Refused"),
    ]
    assert read["runs"][2]["message"] == "the run is not recorded"
    assert (read["submitted_by"], read["reason"], read["base"]) == ("admin-1", "why", "latest")
    assert read["changes"] == {"fault": "raise"}
    messages = outbox_bodies(db)[-2:]
    assert [(m.run_number, m.run_version, m.variables["fault"]) for m in messages] == [
        (5, 1, "raise"),
        (1, 1, "raise"),
    ]
    finish(db, 5, status=RunStatus.ERROR)
    again = app_client.get(f"{RERUNS}/{answer['id']}").json()
    assert [r["status"] for r in again["runs"]] == ["Error", "Queued", "Refused"]


@pytest.mark.usefixtures("recorded")
def test_a_batch_by_experiment_selects_that_experiments_runs(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_number.in_((2, 3)))
            .values(experiment_ref="1920123")
        )

    answer = batch(app_client, auth("admin"), experiment_ref="1920123").json()

    assert [r["run_number"] for r in answer["runs"]] == [2, 3]


@pytest.mark.usefixtures("recorded")
def test_a_batch_over_the_roles_limit_is_422_with_the_limit(
    app_client: TestClient, auth: Auth, db: Database, settings: Settings
) -> None:
    settings.max_batch_runs_scientist = 3
    runs = count(db, ReductionRun)

    response = batch(app_client, auth("scientist", "GEM"), run_min=1, run_max=5)

    assert response.status_code == 422
    assert "3 runs" in response.json()["detail"]
    assert "max_batch_runs_scientist" in response.json()["detail"]
    assert count(db, ReductionRun) == runs
    assert batch(app_client, auth("admin"), run_min=1, run_max=5).status_code == 201


@pytest.mark.usefixtures("recorded")
def test_a_run_still_queued_or_processing_is_refused_with_the_reason(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    admin = auth("admin")
    app_client.post(f"{RUNS}/GEM/1/reruns", json={}, headers=admin)  # version 1 Queued
    app_client.post(f"{RUNS}/GEM/2/reruns", json={}, headers=admin)
    finish(db, 2, status=RunStatus.PROCESSING)

    answer = batch(app_client, admin, runs=[1, 2, 3]).json()

    [queued, processing, fine] = answer["runs"]
    assert queued["status"] == "Refused" and "still Queued" in queued["message"]
    assert processing["status"] == "Refused" and "Processing" in processing["message"]
    assert (fine["status"], fine["run_version"]) == ("Queued", 1)


@pytest.mark.usefixtures("recorded")
def test_supersede_cancels_a_queued_latest_version_but_not_a_processing_one(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    admin = auth("admin")
    app_client.post(f"{RUNS}/GEM/1/reruns", json={}, headers=admin)
    app_client.post(f"{RUNS}/GEM/2/reruns", json={}, headers=admin)
    finish(db, 2, status=RunStatus.PROCESSING)

    answer = batch(app_client, admin, runs=[1, 2], supersede=True, variables={"sleep_s": 1}).json()

    [superseded, processing] = answer["runs"]
    assert (superseded["run_version"], superseded["superseded_version"]) == (2, 1)
    assert superseded["derived_from_version"] == 1
    assert processing["status"] == "Refused" and "cannot supersede" in processing["message"]
    versions = app_client.get(f"{RUNS}/GEM/1").json()["versions"]
    assert [v["status"] for v in versions] == ["Completed", "Cancelled", "Queued"]
    assert versions[1]["message"] == f"superseded by batch {answer['id']} by admin-1"


@pytest.mark.usefixtures("recorded")
def test_a_batch_with_an_undeclared_variable_is_422_and_records_nothing(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    response = batch(app_client, auth("admin"), runs=[1], variables={"bins": 3})

    assert response.status_code == 422 and "bins" in response.json()["detail"]
    assert count(db, RerunBatch) == 0


@pytest.mark.parametrize(
    ("role", "instruments"), [("detector", ()), ("scientist", ("WISH",)), ("scientist", ())]
)
def test_batches_need_a_scientist_of_the_instrument_or_an_admin(
    app_client: TestClient, auth: Auth, role: str, instruments: tuple[str, ...]
) -> None:
    assert batch(app_client, auth(role, *instruments), runs=[1]).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"runs": [1], "run_min": 1, "run_max": 2},
        {"run_min": 3},
        {"run_min": 3, "run_max": 2},
        {"runs": [1], "base": "version -1"},
        {"runs": [1], "base": "yesterday"},
        {"runs": [1], "unknown": True},
    ],
)
def test_a_batch_needs_one_selection_and_a_known_base(
    app_client: TestClient, auth: Auth, body: dict[str, Any]
) -> None:
    assert batch(app_client, auth("admin"), **body).status_code == 422


def test_an_unknown_batch_is_404(app_client: TestClient) -> None:
    assert app_client.get(f"{RERUNS}/12345").status_code == 404


@pytest.mark.usefixtures("recorded")
def test_a_batch_of_another_instrument_is_404_to_a_scoped_reader(
    app_client: TestClient, auth: Auth
) -> None:
    answer = batch(app_client, auth("admin"), runs=[1]).json()

    response = app_client.get(f"{RERUNS}/{answer['id']}", headers=auth("scientist", "WISH"))

    assert response.status_code == 404


# --- batches from a search or a failure group, and cancelled as a whole --------------------------


@pytest.mark.usefixtures("recorded")
def test_a_batch_from_a_search_selects_the_runs_it_finds(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_number.in_([2, 4]))
            .values(title="Vanadium rod")
        )

    made = batch(app_client, auth("admin"), q="title:vanadium run:..3").json()

    assert [item["run_number"] for item in made["runs"]] == [2]


@pytest.mark.usefixtures("recorded")
def test_a_batch_from_a_bad_search_is_400_naming_the_term(
    app_client: TestClient, auth: Auth
) -> None:
    response = batch(app_client, auth("admin"), q="tilte:x")

    assert response.status_code == 400
    assert "tilte" in response.json()["detail"]


@pytest.mark.usefixtures("recorded")
def test_a_batch_from_a_failure_group_selects_the_runs_that_failed_so(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    with db.session() as session:
        for run_number, fingerprint in (
            (1, "aaaaaaaaaaaa"),
            (3, "aaaaaaaaaaaa"),
            (5, "bbbbbbbbbbbb"),
        ):
            session.execute(
                update(ReductionRun)
                .where(ReductionRun.run_number == run_number)
                .values(status=RunStatus.ERROR.value, error_fingerprint=fingerprint)
            )

    made = batch(app_client, auth("admin"), failure="aaaaaaaaaaaa", dry_run=True).json()

    assert [item["run_number"] for item in made["runs"]] == [1, 3]


@pytest.mark.usefixtures("recorded")
def test_a_batch_is_cancelled_as_a_whole_and_each_cancel_is_audited(
    app_client: TestClient, auth: Auth, db: Database
) -> None:
    admin = auth("admin")
    made = batch(app_client, admin, runs=[1, 2, 3]).json()
    finish(db, 3)  # one of its versions finished already: it is left as it is

    cancelled = app_client.post(
        f"{RERUNS}/{made['id']}/cancel", json={"reason": "wrong calibration"}, headers=admin
    )

    assert cancelled.status_code == 200, cancelled.text
    states = {item["run_number"]: item["status"] for item in cancelled.json()["runs"]}
    assert states == {1: "Cancelled", 2: "Cancelled", 3: "Completed"}
    trail = app_client.get("/api/v1/audit", params={"action": "run.cancel"}, headers=admin).json()
    assert sorted(e["target"] for e in trail["items"]) == ["GEM 1 v1", "GEM 2 v1"]
    assert all("wrong calibration" in e["details"]["reason"] for e in trail["items"])


@pytest.mark.usefixtures("recorded")
def test_cancelling_a_batch_needs_a_scientist_of_its_instrument(
    app_client: TestClient, auth: Auth
) -> None:
    made = batch(app_client, auth("admin"), runs=[1]).json()

    response = app_client.post(
        f"{RERUNS}/{made['id']}/cancel", json={"reason": "x"}, headers=auth("scientist", "WISH")
    )

    assert response.status_code == 404  # WISH's scientist cannot even see a GEM batch
