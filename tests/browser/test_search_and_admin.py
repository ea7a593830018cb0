"""The search and admin pages in a real browser."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import assert_accessible
from tests.browser.helpers import sign_in_as
from tests.browser.runs_api import admin_token, submit_run, wait_version
from tests.facility import Facility


@pytest.fixture(scope="module")
def searched_run(web_facility: Facility) -> int:
    """GEM 600, reduced: title "e2e run 600", experiment 2610001."""
    submit_run(web_facility, admin_token(web_facility), "GEM", 600)
    assert wait_version(web_facility, "GEM", 600, 0)["status"] == "Completed"
    return 600


def test_search_by_experiment_finds_the_run(page: Page, searched_run: int) -> None:
    page.goto("/search?q=experiment:2610001")
    expect(page.get_by_role("heading", name=re.compile(r"run versions? found"))).to_be_visible()
    expect(page.get_by_role("link", name=str(searched_run), exact=True)).to_be_visible()
    assert_accessible(page)


def test_search_by_a_title_word_typed_in_the_box(page: Page, searched_run: int) -> None:
    page.goto("/search")
    expect(page.get_by_role("heading", name="How to search")).to_be_visible()
    page.get_by_label("Search runs").fill(f'title:"run {searched_run}" instrument:GEM')
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="1 run version found")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=f"e2e run {searched_run}")
    expect(row).to_contain_text("Completed")
    assert_accessible(page)


def test_a_malformed_search_shows_its_error_beside_the_box(page: Page) -> None:
    response = page.goto("/search?q=colour:red")
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("unknown field 'colour'")
    expect(page.get_by_label("Search runs")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Search runs")).to_have_value("colour:red")
    assert_accessible(page)


def test_an_admin_creates_a_token_sees_its_secret_once_and_revokes_it(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="root", role="admin")
    name = f"bot-{secrets.token_hex(3)}"
    page.goto("/admin")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    assert_accessible(page)

    form = page.get_by_role("group", name="Create a token")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Role").select_option("scientist")
    form.get_by_label("GEM", exact=True).check()
    form.get_by_role("button", name="Create token").click()

    expect(page.get_by_role("heading", name=f"Token {name} created")).to_be_visible()
    secret = page.get_by_label("Token").input_value()
    assert re.fullmatch(r"ar_[A-Za-z0-9_-]{43}", secret)
    assert_accessible(page)

    page.get_by_role("link", name="Back to the tokens").click()
    tokens = page.locator("table.tokens")
    row = tokens.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("Live")
    assert secret not in page.content()
    expect(page.locator("table.audit")).to_contain_text(f"token {name}")

    row.get_by_role("button", name=f"Revoke {name}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Token {name} is revoked")
    expect(tokens.get_by_role("row").filter(has_text=name)).to_contain_text("Revoked")


def test_a_scientist_gets_the_403_page_on_admin(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="403")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    assert_accessible(page)
