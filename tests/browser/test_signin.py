"""Signing in with a local account, in a real browser, on a facility that is not public."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import INSTRUMENTS, assert_accessible, autoreduce_command
from tests.facility import Facility, start_facility, stop_facility
from tests.slapd import PASSWORDS, Slapd

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def private_facility(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facility]:
    """``autoreduce up`` where reading needs a sign-in; ``ada`` is a scientist of GEM."""
    facility = start_facility(
        tmp_path_factory.mktemp("private"), INSTRUMENTS, processors=1, public_read=False
    )
    try:
        autoreduce_command(
            facility,
            *("user", "create", "ada", "--role", "scientist", "--instrument", "GEM"),
            *("--display-name", "Ada Lovelace", "--password-stdin"),
            stdin=PASSWORD + "\n",
        )
        yield facility
    finally:
        stop_facility(facility)


@pytest.fixture
def private_context(browser: Browser, private_facility: Facility) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=private_facility.api_url)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def private_page(private_context: BrowserContext) -> Page:
    return private_context.new_page()


def test_sign_in_through_the_form_see_the_overview_sign_out_and_be_asked_again(
    private_page: Page,
) -> None:
    page = private_page
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".nav-user")).to_contain_text("Ada Lovelace")
    expect(page.get_by_role("link", name="GEM", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="WISH", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))


def test_a_wrong_password_typed_with_the_keyboard_says_so_at_the_form(
    private_page: Page,
) -> None:
    page = private_page
    page.set_viewport_size({"width": 360, "height": 740})  # a phone
    page.goto("/signin")
    assert_accessible(page)

    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")

    expect(page.get_by_role("alert")).to_have_text("wrong username or password")
    expect(page.get_by_label("Username")).to_have_value("ada")
    expect(page.get_by_label("Password")).to_be_focused()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)


@pytest.fixture(scope="module")
def ldap_facility(tmp_path_factory: pytest.TempPathFactory, slapd: Slapd) -> Iterator[Facility]:
    """``autoreduce up`` that signs people in against the session's slapd (no local accounts)."""
    ldap = {
        "url": slapd.url,
        "user_dn_template": slapd.user_dn_template,
        "role_groups": {
            "admin": slapd.group_dn("autoreduce-admins"),
            "scientist": slapd.group_dn("scientists"),
        },
        "instrument_groups": {"WISH": slapd.group_dn("wish"), "GEM": slapd.group_dn("gem")},
    }
    facility = start_facility(
        tmp_path_factory.mktemp("ldap"),
        INSTRUMENTS,
        processors=1,
        public_read=False,
        settings={"ldap": ldap},
    )
    try:
        yield facility
    finally:
        stop_facility(facility)


def test_a_directory_user_signs_in_with_the_roles_of_their_groups(
    browser: Browser, ldap_facility: Facility
) -> None:
    context = browser.new_context(base_url=ldap_facility.api_url)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto("/instruments/WISH")
        expect(page).to_have_url(re.compile(r"/signin\?next=/instruments/WISH$"))
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("not her password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong username or password")

        page.get_by_label("Password").fill(PASSWORDS["alice"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/instruments/WISH$"))
        expect(page.locator(".nav-user")).to_contain_text("(scientist)")
        page.goto("/")
        expect(page.get_by_role("link", name="WISH", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="GEM", exact=True)).to_have_count(0)
    finally:
        context.close()
