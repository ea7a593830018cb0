"""The overview, instrument and run pages through the app: HTML answers, forms, role checks."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.api_client import RUNS, run_body
from tests.integration import web_session

HTML = {"Accept": "text/html"}


def sign_in(client: TestClient, name: str, role: str, *instruments: str) -> str:
    """Give ``client`` a signed session for this user; its CSRF token."""
    return web_session.sign_in(client, name, role, instruments)


@pytest.fixture
def detected(app_client: TestClient, auth: Callable[..., dict[str, str]]) -> Callable[..., None]:
    def submit(run_number: int, instrument: str = "GEM") -> None:
        answer = app_client.post(
            RUNS, json=run_body(run_number, instrument), headers=auth("detector")
        )
        assert answer.status_code == 201, answer.text

    return submit


def versions(client: TestClient, instrument: str, run_number: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = client.get(f"{RUNS}/{instrument}/{run_number}").json()[
        "versions"
    ]
    return found


def test_an_unknown_run_is_the_html_404_page(app_client: TestClient) -> None:
    answer = app_client.get("/runs/GEM/7", headers=HTML)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "run GEM 7 not found" in answer.text


def test_an_unknown_instrument_is_the_html_404_page(app_client: TestClient) -> None:
    answer = app_client.get("/instruments/NOPE", headers=HTML)
    assert answer.status_code == 404
    assert "instrument &#39;NOPE&#39; not found" in answer.text


def test_an_instrument_another_scientist_may_not_read_is_a_404(app_client: TestClient) -> None:
    sign_in(app_client, "ada", "scientist", "WISH")
    assert app_client.get("/instruments/GEM", headers=HTML).status_code == 404


def test_the_instrument_page_lists_runs_newest_first_with_their_state(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(3)
    detected(4)
    page = app_client.get("/instruments/GEM", headers=HTML).text
    assert page.index('data-run="4"') < page.index('data-run="3"')
    fragment = app_client.get("/instruments/GEM/runs-fragment", headers=HTML).text
    assert "<html" not in fragment and 'data-run="4"' in fragment and "Queued" in fragment


def test_pages_say_more_than_the_bound_when_the_count_stops_there(
    app_client: TestClient, detected: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rest_api import run_listing
    from rest_api.routes import runs

    monkeypatch.setattr(run_listing, "TOTAL_LIMIT", 2)
    monkeypatch.setattr(runs, "TOTAL_LIMIT", 2)
    for number in (3, 4, 5):
        detected(number)

    page = app_client.get("/instruments/GEM", headers=HTML).text
    assert re.search(r"More than 2\s+runs", page)
    assert 'data-run="3"' in page and 'data-run="5"' in page
    found = app_client.get("/search?q=instrument:GEM", headers=HTML).text
    assert re.search(r"At least 2\s+run versions found", found)
    exact = app_client.get("/search?q=run:5", headers=HTML).text
    assert re.search(r">1\s+run version found", exact)


def test_the_instrument_page_filters_by_state(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(3)
    page = app_client.get("/instruments/GEM?status=Completed", headers=HTML).text
    assert 'data-run="3"' not in page
    assert app_client.get("/instruments/GEM?status=Bogus", headers=HTML).status_code == 422


def test_the_run_page_generates_the_rerun_form_from_the_declarations(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(5)
    sign_in(app_client, "ada", "scientist", "GEM")
    page = app_client.get("/runs/GEM/5", headers=HTML).text
    assert re.search(r'<input type="number" id="var-sleep-s" name="var.sleep_s" value="0.0"', page)
    advanced = page[page.index("<details") : page.index("</details>")]
    assert '<select id="var-fault" name="var.fault"' in advanced
    assert "Fail on purpose." in advanced


def test_a_rerun_through_the_form_makes_version_1_with_the_changed_value(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(6)
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    form = {"csrf_token": csrf, "var.sleep_s": "2.5", "var.fault": "none", "reason": "longer"}
    answer = app_client.post("/runs/GEM/6/reruns", data=form, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/runs/GEM/6#version-1"
    latest = versions(app_client, "GEM", 6)[-1]
    assert latest["run_version"] == 1
    assert latest["variables"] == {"sleep_s": 2.5, "fault": "none"}
    assert latest["description"] == "longer"
    assert latest["submitted_by"] == "ada"


@pytest.mark.parametrize(
    ("entered", "error"),
    [("-1", "sleep_s must be &gt;= 0.0, got -1.0"), ("soon", "sleep_s must be a number")],
)
def test_a_wrong_value_is_shown_at_its_field_with_what_was_entered(
    app_client: TestClient, detected: Callable[..., None], entered: str, error: str
) -> None:
    detected(7)
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    form = {"csrf_token": csrf, "var.sleep_s": entered, "var.fault": "none"}
    answer = app_client.post("/runs/GEM/7/reruns", data=form)
    assert answer.status_code == 422
    field = answer.text[answer.text.index('id="var-sleep-s"') :]
    assert f'value="{entered}"' in field[:200]
    assert error in field[: field.index("</div>")]
    assert len(versions(app_client, "GEM", 7)) == 1


def test_a_scientist_listing_no_instrument_gets_the_403_page_on_a_form(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(8)
    csrf = sign_in(app_client, "bob", "scientist")
    answer = app_client.post(
        "/runs/GEM/8/reruns", data={"csrf_token": csrf, "var.sleep_s": "1", "var.fault": "none"}
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "lists no instruments" in answer.text
    assert len(versions(app_client, "GEM", 8)) == 1


def test_a_scientist_of_another_instrument_may_not_rerun(
    app_client: TestClient, detected: Callable[..., None], auth: Callable[..., dict[str, str]]
) -> None:
    detected(8)
    csrf = sign_in(app_client, "bob", "scientist", "WISH")  # GEM is not his: as if not there
    answer = app_client.post(
        "/runs/GEM/8/reruns", data={"csrf_token": csrf, "var.sleep_s": "1", "var.fault": "none"}
    )
    assert answer.status_code == 404
    csrf = sign_in(app_client, "eve", "detector")
    answer = app_client.post(
        "/runs/GEM/8/reruns", data={"csrf_token": csrf, "var.sleep_s": "1", "var.fault": "none"}
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "this needs scientist or admin" in answer.text
    assert len(versions(app_client, "GEM", 8)) == 1


def test_a_form_without_the_csrf_token_is_refused(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(9)
    sign_in(app_client, "ada", "scientist", "GEM")
    answer = app_client.post("/runs/GEM/9/reruns", data={"var.sleep_s": "1", "var.fault": "none"})
    assert answer.status_code == 403
    assert "this form has expired" in answer.text
    assert len(versions(app_client, "GEM", 9)) == 1


def test_an_anonymous_write_is_sent_to_sign_in(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(9)
    page = app_client.get("/runs/GEM/9", headers=HTML)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    answer = app_client.post(
        "/runs/GEM/9/versions/0/cancel",
        data={"csrf_token": csrf.group(1), "reason": "x"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=/runs/GEM/9")


def test_cancel_through_the_form_cancels_a_queued_version(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(10)
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    answer = app_client.post(
        "/runs/GEM/10/versions/0/cancel",
        data={"csrf_token": csrf, "reason": "wrong sample"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    run = versions(app_client, "GEM", 10)[0]
    assert run["status"] == "Cancelled"
    assert run["cancel_reason"] == "wrong sample"
    again = app_client.post(
        "/runs/GEM/10/versions/0/cancel", data={"csrf_token": csrf, "reason": "again"}
    )
    assert again.status_code == 409 and "already Cancelled" in again.text


def paused(client: TestClient, name: str) -> bool:
    items = client.get("/api/v1/instruments").json()
    return bool(next(item["paused"] for item in items if item["name"] == name))


def test_an_admin_pauses_and_resumes_and_a_scientist_may_not(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    assert app_client.post("/instruments/GEM/pause", data={"csrf_token": csrf}).status_code == 403
    csrf = sign_in(app_client, "root", "admin")
    answer = app_client.post(
        "/instruments/GEM/pause", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert paused(app_client, "GEM")
    page = app_client.get("/instruments/GEM", headers=HTML).text
    assert "Resume GEM" in page
    app_client.post("/instruments/GEM/resume", data={"csrf_token": csrf})
    assert not paused(app_client, "GEM")


def test_a_rule_added_through_the_form_is_listed(app_client: TestClient) -> None:
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    form = {
        "csrf_token": csrf,
        "scope": "from_run",
        "from_run": "100",
        "var.sleep_s": "3",
        "var.fault": "",
        "reason": "slower from 100",
    }
    answer = app_client.post("/instruments/GEM/rules", data=form, follow_redirects=False)
    assert answer.status_code == 303
    rules = app_client.get("/api/v1/instruments/GEM/variable-rules").json()
    assert [(r["from_run"], r["variables"]) for r in rules] == [(100, {"sleep_s": 3.0})]
    assert "runs from 100 on" in app_client.get("/instruments/GEM", headers=HTML).text


def test_a_rule_with_a_bad_value_or_no_scope_shows_the_errors_at_the_fields(
    app_client: TestClient,
) -> None:
    csrf = sign_in(app_client, "ada", "scientist", "GEM")
    form = {"csrf_token": csrf, "scope": "experiment", "experiment_ref": "", "var.sleep_s": "-2"}
    answer = app_client.post("/instruments/GEM/rules", data=form)
    assert answer.status_code == 422
    assert "sleep_s must be &gt;= 0.0" in answer.text
    form["var.sleep_s"] = "1"
    answer = app_client.post("/instruments/GEM/rules", data=form)
    assert answer.status_code == 422
    assert "name the experiment" in answer.text
    assert app_client.get("/api/v1/instruments/GEM/variable-rules").json() == []


def test_the_overview_and_its_fragment_show_the_queue_and_the_latest_run(
    app_client: TestClient, detected: Callable[..., None]
) -> None:
    detected(11)
    page = app_client.get("/", headers=HTML).text
    assert 'data-refresh="/overview-fragment"' in page
    fragment = app_client.get("/overview-fragment", headers=HTML).text
    assert "<html" not in fragment
    assert '<a href="/runs/GEM/11">11</a>' in fragment
    assert "<strong>1</strong> run version Queued" in fragment
    assert "Queued 1" in fragment  # today's runs by state
