"""The failed-runs and search pages through the app: real database, real session cookies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, HiddenFailure, ReductionRun, RunStatus, utcnow
from tests.api_client import RUNS, run_body
from tests.integration.web_session import HTML, sign_in

Auth = Callable[..., dict[str, str]]


def fail(db: Database, instrument: str, run_number: int, message: str) -> None:
    """Move the run's Queued versions to Error with ``message``, as a processor would."""
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(
                ReductionRun.instrument == instrument,
                ReductionRun.run_number == run_number,
                ReductionRun.status == RunStatus.QUEUED.value,
            )
            .values(
                status=RunStatus.ERROR.value,
                message=message,
                error_category="plugin",
                finished_at=utcnow(),
            )
        )


@pytest.fixture
def failures(app_client: TestClient, auth: Auth, db: Database) -> None:
    """GEM 3 and WISH 4 in Error; GEM 5 recorded and still Queued."""
    detector = auth("detector")
    for instrument, number in (("GEM", 3), ("WISH", 4), ("GEM", 5)):
        response = app_client.post(RUNS, json=run_body(number, instrument), headers=detector)
        assert response.status_code == 201, response.text
    fail(db, "GEM", 3, "plugin raised ValueError: no vanadium")
    fail(db, "WISH", 4, "plugin exceeded its 120 s time limit")


@pytest.mark.usefixtures("failures")
def test_the_failed_page_lists_each_error_with_its_reason(app_client: TestClient) -> None:
    page = app_client.get("/failed", headers=HTML)
    assert page.status_code == 200
    assert "no vanadium" in page.text
    assert "120 s time limit" in page.text
    assert 'id="failed-GEM-5"' not in page.text  # Queued, not failed


@pytest.mark.usefixtures("failures")
def test_an_anonymous_reader_sees_no_rerun_or_hide_buttons(app_client: TestClient) -> None:
    page = app_client.get("/failed", headers=HTML)
    assert "/failed/rerun" not in page.text
    assert "/failed/hide" not in page.text


@pytest.mark.usefixtures("failures")
def test_a_rerun_from_the_failed_page_queues_a_version_and_takes_the_run_off_the_list(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM",))
    answer = app_client.post(
        "/failed/rerun",
        data={"csrf_token": csrf, "instrument": "GEM", "run_number": "3"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/failed"
    with db.session() as session:
        latest = session.scalars(
            select(ReductionRun).where(ReductionRun.run_number == 3).order_by(ReductionRun.id)
        ).all()[-1]
        assert (latest.run_version, latest.status, latest.submitted_by) == (1, "Queued", "ada")
    page = app_client.get("/failed", headers=HTML)
    assert "Queued GEM 3 v1" in page.text
    assert 'id="failed-GEM-3"' not in page.text


@pytest.mark.usefixtures("failures")
def test_a_scientist_cannot_rerun_another_instruments_run(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM",))
    answer = app_client.post(
        "/failed/rerun", data={"csrf_token": csrf, "instrument": "WISH", "run_number": "4"}
    )
    assert answer.status_code == 403
    assert "text/html" in answer.headers["content-type"]


@pytest.mark.usefixtures("failures")
def test_a_form_without_the_csrf_token_is_refused(app_client: TestClient, db: Database) -> None:
    sign_in(app_client, "root", "admin")
    answer = app_client.post("/failed/rerun", data={"instrument": "GEM", "run_number": "3"})
    assert answer.status_code == 403
    with db.session() as session:
        assert session.scalar(select(ReductionRun).where(ReductionRun.run_version == 1)) is None


@pytest.mark.usefixtures("failures")
def test_an_admin_hides_a_failure_dealt_with_and_can_show_it_again(
    app_client: TestClient, db: Database
) -> None:
    csrf = sign_in(app_client, "root", "admin")
    form = {"csrf_token": csrf, "instrument": "GEM", "run_number": "3", "run_version": "0"}
    answer = app_client.post("/failed/hide", data={**form, "hide": "true"}, follow_redirects=False)
    assert answer.status_code == 303

    shown = app_client.get("/failed", headers=HTML).text
    assert 'id="failed-GEM-3"' not in shown and 'id="failed-WISH-4"' in shown
    assert "1 failure dealt with is hidden" in shown
    with_hidden = app_client.get("/failed?hidden=1", headers=HTML).text
    assert 'id="failed-GEM-3"' in with_hidden and "Hidden by root" in with_hidden
    with db.session() as session:
        assert session.scalar(select(HiddenFailure.hidden_by)) == "root"
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "failure.hide"))
        assert event is not None and (event.actor, event.target) == ("root", "GEM 3 v0")

    app_client.post("/failed/hide", data={**form, "hide": "false"})
    assert 'id="failed-GEM-3"' in app_client.get("/failed", headers=HTML).text


@pytest.mark.usefixtures("failures")
def test_a_scientist_cannot_hide_a_failure(app_client: TestClient, db: Database) -> None:
    csrf = sign_in(app_client, "ada", "scientist", ("GEM",))
    form = {"csrf_token": csrf, "instrument": "GEM", "run_number": "3", "run_version": "0"}
    answer = app_client.post("/failed/hide", data={**form, "hide": "true"})
    assert answer.status_code == 403
    with db.session() as session:
        assert session.scalar(select(HiddenFailure)) is None


@pytest.mark.usefixtures("failures")
def test_hiding_a_run_that_is_not_in_error_is_refused(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "root", "admin")
    form = {"csrf_token": csrf, "instrument": "GEM", "run_number": "5", "run_version": "0"}
    answer = app_client.post("/failed/hide", data={**form, "hide": "true"})
    assert answer.status_code == 409
    assert "is Queued, not in Error" in answer.text


@pytest.mark.usefixtures("failures")
def test_search_finds_runs_by_field_and_word(app_client: TestClient) -> None:
    page = app_client.get("/search", params={"q": "instrument:WISH status:error"}, headers=HTML)
    assert page.status_code == 200
    assert "1 run version found" in page.text
    assert 'href="/runs/WISH/4"' in page.text and 'href="/runs/GEM/3"' not in page.text
    worded = app_client.get("/search", params={"q": "vanadium"}, headers=HTML)
    assert 'href="/runs/GEM/3"' in worded.text


@pytest.mark.parametrize(
    ("q", "named"),
    [("colour:red", "unknown field"), ("run:a..b", "not numbers"), ('"open', "unterminated")],
)
def test_a_malformed_search_shows_its_error_beside_the_box(
    app_client: TestClient, q: str, named: str
) -> None:
    page = app_client.get("/search", params={"q": q}, headers=HTML)
    assert page.status_code == 400
    assert "text/html" in page.headers["content-type"]
    assert 'id="q-error"' in page.text and named in page.text
    assert "How to search" in page.text


def test_the_empty_search_page_explains_the_grammar(app_client: TestClient) -> None:
    page = app_client.get("/search", headers=HTML)
    assert page.status_code == 200
    assert "experiment:2610001" in page.text and 'id="q-error"' not in page.text
