"""A job's page in a real browser: its inputs, its log and plot, for its creator only.

The module has a facility of its own (not public: jobs run ``noop``), so that no other browser
test sees the instrument ``JOB`` appear. The job is submitted through the API with a real upload
and reduced by a real processor; the creator is the signed-in user named as the job's token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import assert_accessible, autoreduce_command
from tests.browser.helpers import sign_in_as
from tests.facility import Facility, start_facility, stop_facility
from tests.polling import wait_for

CONTENT = b"a sample of one's own\n"


@pytest.fixture(scope="module")
def job_facility(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facility]:
    facility = start_facility(
        tmp_path_factory.mktemp("jobs-web"),
        {"GEM": {"plugin": "noop"}},
        processors=1,
        settings={"jobs": {"plugins": ["noop"]}},
        public_read=False,
    )
    try:
        yield facility
    finally:
        stop_facility(facility)


@pytest.fixture(scope="module")
def completed_job(job_facility: Facility) -> dict[str, Any]:
    """A job of ``ada`` (a scientist token limited to GEM), reduced with a plot."""
    token = autoreduce_command(
        job_facility, "token", "create", "--name", "ada", "--role", "scientist",
        "--instrument", "GEM",
    ).strip()  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    api = job_facility.api_url
    files = {"file": ("sample.nxs", CONTENT)}
    stored = requests.post(f"{api}/api/v1/uploads", files=files, headers=headers, timeout=30)
    assert stored.status_code == 201, stored.text
    body = {"plugin": "noop", "inputs": [stored.json()["id"]], "variables": {"plot": True}}
    created = requests.post(f"{api}/api/v1/jobs", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text

    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = requests.get(
            f"{api}/api/v1/jobs/{created.json()['id']}", headers=headers, timeout=10
        ).json()
        return job if job["status"] in ("Completed", "Error") else None

    job: dict[str, Any] = wait_for(final, timeout_s=90, interval_s=0.2)
    assert job["status"] == "Completed", job["message"]
    return job


@pytest.fixture
def job_page(browser: Browser, job_facility: Facility) -> Iterator[tuple[BrowserContext, Page]]:
    context = browser.new_context(base_url=job_facility.api_url)
    context.set_default_timeout(15_000)
    yield context, context.new_page()
    context.close()


def test_the_creator_reads_the_jobs_inputs_log_and_plot_on_an_accessible_page(
    job_page: tuple[BrowserContext, Page], job_facility: Facility, completed_job: dict[str, Any]
) -> None:
    context, page = job_page
    sign_in_as(context, job_facility, name="ada", role="scientist", instruments=("GEM",))

    page.goto(f"/runs/JOB/{completed_job['id']}")

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Job {completed_job['id']}")
    inputs = page.get_by_role("table", name=re.compile("Inputs of job"))
    expect(inputs).to_contain_text("sample.nxs")
    expect(inputs).to_contain_text(hashlib.sha256(CONTENT).hexdigest())
    expect(page.locator("#version-0 .state")).to_have_text("Completed")
    expect(page.locator("pre.log")).to_contain_text("noop")
    plot = page.get_by_role("img", name=re.compile(f"Plot noop.svg of JOB {completed_job['id']}"))
    expect(plot).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", plot.element_handle()) > 0
    expect(page.get_by_role("button", name=re.compile("Re-run"))).to_have_count(0)
    assert_accessible(page)


def test_another_scientist_of_gem_finds_no_such_job(
    job_page: tuple[BrowserContext, Page], job_facility: Facility, completed_job: dict[str, Any]
) -> None:
    context, page = job_page
    sign_in_as(context, job_facility, name="bob", role="scientist", instruments=("GEM",))

    answer = page.goto(f"/runs/JOB/{completed_job['id']}")

    assert answer is not None and answer.status == 404
    expect(page.get_by_text(f"run JOB {completed_job['id']} not found")).to_be_visible()
