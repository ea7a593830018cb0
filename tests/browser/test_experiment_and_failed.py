"""The experiment page's batch re-runs and the failed-runs page in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import assert_accessible
from tests.browser.helpers import sign_in_as
from tests.browser.runs_api import admin_token, rerun, submit_run, wait_version
from tests.facility import Facility

EXPERIMENT = "2610001"


def test_a_batch_rerun_over_ticked_runs_shows_its_progress_to_completion(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    headers = admin_token(web_facility)
    for number in (700, 701, 702):
        submit_run(web_facility, headers, "GEM", number)
    for number in (700, 701, 702):
        assert wait_version(web_facility, "GEM", number, 0)["status"] == "Completed"
    sign_in_as(context, web_facility, name="ada", role="scientist", instruments=("GEM",))

    page.goto(f"/experiments/{EXPERIMENT}")
    expect(page.get_by_role("heading", name=f"Experiment {EXPERIMENT}")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Select GEM 700").check()
    page.get_by_label("Select GEM 702").check()
    page.get_by_label("The runs ticked above").check()
    page.get_by_label("Variable changes").fill("sleep_s = 0.3")
    page.get_by_label("Reason").fill("browser batch")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("table.preview")
    expect(preview).to_contain_text("GEM: 2 of 2 runs would be re-run")
    expect(preview).to_contain_text("sleep_s: 0.2 → 0.3")
    expect(page.get_by_label("Select GEM 701")).not_to_be_checked()
    assert_accessible(page)
    page.get_by_role("button", name="Queue re-runs").click()

    expect(page.get_by_role("status")).to_contain_text("Queued 2 re-runs")
    progress = page.locator(".batch-progress")
    expect(progress).to_contain_text("2 of 2 re-runs finished", timeout=60_000)
    expect(progress).to_contain_text("Done.")
    expect(progress.locator('[data-status="Completed"]')).to_have_text("2")
    assert wait_version(web_facility, "GEM", 700, 1)["variables"]["sleep_s"] == 0.3
    assert_accessible(page)


def test_a_failed_run_is_rerun_then_hidden_from_the_failed_page(
    context: BrowserContext, page: Page, web_facility: Facility
) -> None:
    headers = admin_token(web_facility)
    submit_run(web_facility, headers, "GEM", 800)
    wait_version(web_facility, "GEM", 800, 0)
    rerun(web_facility, headers, "GEM", 800, fault="raise")
    assert wait_version(web_facility, "GEM", 800, 1)["status"] == "Error"
    sign_in_as(context, web_facility, name="root", role="admin")

    page.goto("/failed")
    row = page.locator("#failed-GEM-800")
    expect(row).to_contain_text("noop was asked to fail on run 800")
    expect(row).to_contain_text("v1")
    assert_accessible(page)

    row.get_by_role("button", name="Re-run GEM 800").click()
    expect(page.get_by_role("status")).to_contain_text("Queued GEM 800 v2")
    assert wait_version(web_facility, "GEM", 800, 2)["status"] == "Error"  # same values: fails
    page.reload()
    expect(row).to_contain_text("v2")

    row.get_by_role("button", name="Hide GEM 800 (dealt with)").click()
    expect(page.get_by_role("status")).to_contain_text("Hid GEM 800 v2")
    expect(page.locator("#failed-GEM-800")).to_have_count(0)

    page.get_by_role("link", name="Show hidden failures").click()
    expect(page).to_have_url(re.compile(r"/failed\?hidden=1$"))
    expect(row).to_contain_text("Hidden by root")
    assert_accessible(page)
