"""Runs for browser tests, made through the facility's API rather than its detector.

``Facility.play`` bumps ``lastruns.txt``, and the detector submits every run from its cursor
up to the new number in order, waiting at the first whose data file is missing: a test that
plays run 500 on a facility whose cursor is at 5 would wait forever. These helpers write the
data file and submit the run directly (``POST /api/v1/runs``, as the detector would).
"""

from __future__ import annotations

import secrets
from typing import Any

import requests

from tests.browser.conftest import autoreduce_command
from tests.facility import Facility
from tests.polling import wait_for

FINAL = ("Completed", "Error", "Skipped", "Cancelled")


def admin_token(facility: Facility) -> dict[str, str]:
    """Headers carrying a new admin token, made with ``autoreduce token create``."""
    name = f"browser-admin-{secrets.token_hex(4)}"
    token = autoreduce_command(facility, "token", "create", "--name", name, "--role", "admin")
    return {"Authorization": f"Bearer {token.strip()}"}


def submit_run(facility: Facility, headers: dict[str, str], instrument: str, number: int) -> None:
    """Write the run's data file and submit it (version 0, queued at once)."""
    facility.write_data(instrument, number)
    response = requests.post(
        f"{facility.api_url}/api/v1/runs",
        json={"instrument": instrument, "run_number": number},
        headers=headers,
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text


def rerun(
    facility: Facility, headers: dict[str, str], instrument: str, number: int, **variables: Any
) -> int:
    """Queue a new version with ``variables`` changed; its version number."""
    response = requests.post(
        f"{facility.api_url}/api/v1/runs/{instrument}/{number}/reruns",
        json={"variables": variables},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    version: int = response.json()["run_version"]
    return version


def wait_version(
    facility: Facility, instrument: str, number: int, version: int, timeout_s: float = 90
) -> dict[str, Any]:
    """Version ``version`` of the run once it has ended."""

    def ended() -> dict[str, Any] | None:
        response = requests.get(f"{facility.api_url}/api/v1/runs/{instrument}/{number}", timeout=10)
        if response.status_code == 404:
            return None
        for item in response.json()["versions"]:
            if item["run_version"] == version and item["status"] in FINAL:
                found: dict[str, Any] = item
                return found
        return None

    result: dict[str, Any] = wait_for(ended, timeout_s=timeout_s, interval_s=0.2)
    return result
