"""The overview page in a real browser."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import assert_accessible
from tests.browser.helpers import sign_in_as
from tests.facility import Facility


def test_the_overview_shows_a_card_per_instrument(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    for name in ("GEM", "WISH"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert_accessible(page)


def test_an_unknown_page_is_a_page_not_json(page: Page) -> None:
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("Not Found")


def test_a_signed_in_user_sees_their_name(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))
    page.goto("/")
    expect(page.locator(".nav-user")).to_contain_text("ada")
    expect(page.get_by_role("link", name="GEM", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="WISH", exact=True)).to_have_count(0)
