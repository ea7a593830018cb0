"""The web UI in a real browser: Debian's chromium driven by Playwright, against ``autoreduce up``.

One browser and one facility for the browser tests (a browser costs ≈ 0.9 GB across its processes),
closed as soon as the last of them has run (package scope: a Playwright session left open while the
other suites fork and restart services has hung at the end of the run);
each test gets a fresh browser context (its own cookies) and page. :func:`assert_accessible` runs
axe-core (shipped by ``axe-playwright-python``, offline) over the page and fails on serious or
critical violations.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.facility import Facility, start_facility, stop_facility

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTRUMENTS: dict[str, dict[str, Any]] = {
    "GEM": {"plugin": "noop", "variables": {"sleep_s": 0.2}},
    "WISH": {"plugin": "noop"},
}
"""The instruments of the facility every browser test shares (``noop``: fast reductions)."""


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def web_facility(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facility]:
    """One public-read ``autoreduce up`` for the session (tokens: ``autoreduce_command``)."""
    root = tmp_path_factory.mktemp("web")
    facility = start_facility(root, INSTRUMENTS, processors=2)
    try:
        yield facility
    finally:
        stop_facility(facility)
        print(facility.log_path.read_text()[-20_000:])


def autoreduce_command(facility: Facility, *args: str, stdin: str | None = None) -> str:
    """Run ``autoreduce ARGS`` against the facility's configuration (``stdin`` as its input);
    its stdout."""
    env = {"AUTOREDUCE_CONFIG": str(facility.root / "autoreduce.toml"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "autoreduce", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        cwd=facility.root,
    )
    return done.stdout


@pytest.fixture
def context(browser: Browser, web_facility: Facility) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=web_facility.api_url)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


_AXE = Axe()


def assert_accessible(page: Page) -> None:
    """No serious or critical axe-core violation on ``page`` as it is now."""
    results = _AXE.run(page)
    violations = results.response.get("violations", [])
    bad = [v for v in violations if v.get("impact") in ("serious", "critical")]
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(str(node.get("target")) for node in v.get("nodes", [])[:3])
        for v in bad
    )


def screenshot(page: Page, path: Path) -> None:
    """A full-page PNG of ``page`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
