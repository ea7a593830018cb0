"""The instrument and run pages in a real browser: live lists, plots, logs, re-runs, cancel, pause.

Run numbers 100 to 499 are this module's (the facility is shared by the whole browser session).
Runs are recorded as the detector records them, through ``POST /api/v1/runs`` with a detector
token, after their data file is written: bumping ``lastruns.txt`` from 0 to 100 would make the
detector submit runs 1 to 99 first, and wait for their data files.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.conftest import assert_accessible, autoreduce_command
from tests.browser.helpers import sign_in_as
from tests.facility import Facility

Play = Callable[[str, int], None]


@pytest.fixture(scope="module")
def play(web_facility: Facility) -> Play:
    """``play("GEM", 100)``: write run 100's data file and record it as the detector does."""
    token = autoreduce_command(
        web_facility, "token", "create", "--name", "pages-detector", "--role", "detector"
    ).strip()

    def record(instrument: str, run_number: int) -> None:
        web_facility.write_data(instrument, run_number)
        answer = requests.post(
            f"{web_facility.api_url}/api/v1/runs",
            json={"instrument": instrument, "run_number": run_number},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text

    return record


def version(page: Page, number: int) -> Locator:
    return page.locator(f"#version-{number}")


def test_a_new_run_appears_on_the_instrument_page_and_its_state_changes_without_a_reload(
    page: Page, web_facility: Facility, play: Play
) -> None:
    page.goto("/instruments/GEM")
    page.evaluate("window.notReloaded = true")
    play("GEM", 100)
    new_row = page.locator('tr[data-run="100"]')
    expect(new_row).to_be_visible()
    expect(new_row.locator(".state")).to_have_text("Completed")
    expect(new_row).to_contain_text("e2e run 100")
    assert page.evaluate("window.notReloaded") is True
    assert_accessible(page)


def test_a_rule_from_the_form_gives_new_runs_a_plot_shown_with_the_log(
    context: BrowserContext, page: Page, web_facility: Facility, play: Play
) -> None:
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("WISH",))
    page.goto("/instruments/WISH")
    page.get_by_label("runs from run number").check()
    page.get_by_label("first run number").fill("110")
    page.get_by_text("Advanced variables").click()
    page.get_by_label("plot").select_option("true")
    page.get_by_label("Why").fill("plots for the browser tests")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("table.rules")).to_contain_text("runs from 110 on")
    assert_accessible(page)

    play("WISH", 110)
    web_facility.wait_final("WISH", 110)
    page.goto("/runs/WISH/110")
    plot = page.get_by_role("img", name=re.compile("Plot noop.svg of WISH 110"))
    expect(plot).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", plot.element_handle()) > 0
    expect(page.locator("pre.log")).to_contain_text("noop: sleeping")
    expect(version(page, 0)).to_contain_text("rule #")  # where plot's value came from
    assert_accessible(page)


def test_a_rerun_through_the_form_completes_version_1_with_the_new_value(
    context: BrowserContext, page: Page, web_facility: Facility, play: Play
) -> None:
    play("GEM", 120)
    web_facility.wait_final("GEM", 120)
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))
    page.goto("/runs/GEM/120")
    expect(page.get_by_label("sleep_s")).to_have_value("0.2")
    page.get_by_label("sleep_s").fill("0.3")
    page.get_by_label("Why re-run?").fill("a little longer")
    page.get_by_role("button", name="Re-run GEM 120").click()
    latest = version(page, 1)
    expect(latest.locator(".state").first).to_have_text("Completed")
    expect(latest.locator("table.variables")).to_contain_text("0.3")
    expect(latest).to_contain_text("a little longer")
    assert web_facility.run("GEM", 120) is not None


def test_a_wrong_value_shows_the_fields_error(
    context: BrowserContext, page: Page, web_facility: Facility, play: Play
) -> None:
    play("GEM", 130)
    web_facility.wait_final("GEM", 130)
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))
    page.goto("/runs/GEM/130")
    page.get_by_label("sleep_s").fill("-1")
    page.get_by_role("button", name="Re-run GEM 130").click()
    error = page.locator("#var-sleep-s-error")
    expect(error).to_have_text(re.compile(r"sleep_s must be >= 0\.0"))
    expect(page.get_by_label("sleep_s")).to_have_value("-1")
    expect(page.get_by_label("sleep_s")).to_have_attribute("aria-invalid", "true")
    expect(version(page, 1)).to_have_count(0)
    assert_accessible(page)


def test_a_slow_run_streams_its_log_and_is_cancelled(
    context: BrowserContext, page: Page, web_facility: Facility, play: Play
) -> None:
    play("GEM", 140)
    web_facility.wait_final("GEM", 140)
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))
    page.goto("/runs/GEM/140")
    page.get_by_label("sleep_s").fill("120")
    page.get_by_text("Advanced variables").click()
    page.get_by_label("log_lines").fill("240")
    page.get_by_role("button", name="Re-run GEM 140").click()
    slow = version(page, 1)
    expect(slow.locator(".state").first).to_have_text("Processing")
    expect(slow.locator("pre.log")).to_contain_text("noop: line 2 of 240")  # live, over SSE
    slow.get_by_label("Why cancel version 1?").fill("too slow")
    slow.get_by_role("button", name="Cancel version 1").click()
    expect(version(page, 1).locator(".state").first).to_have_text("Cancelled", timeout=30_000)
    expect(version(page, 1)).to_contain_text("too slow")


def test_an_admin_pauses_and_resumes_an_instrument(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    sign_in_as(context, web_facility, name="root", role="admin")
    page.goto("/instruments/WISH")
    page.get_by_role("button", name="Pause WISH").click()
    expect(page.locator(".instrument-state")).to_contain_text("Paused")
    page.goto("/")
    expect(page.locator(".instrument-card", has_text="WISH")).to_contain_text("paused")
    page.goto("/instruments/WISH")
    page.get_by_role("button", name="Resume WISH").click()
    expect(page.locator(".instrument-state")).to_contain_text("Running")
    assert_accessible(page)
