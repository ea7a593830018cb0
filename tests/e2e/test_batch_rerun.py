"""A batch re-run in real processes: 30 completed runs re-run at once with a changed variable."""

from __future__ import annotations

import json
from typing import Any

import requests

from autoreduce.db import Database
from autoreduce.tokens import create_token
from tests.polling import wait_for

RUNS = 30


def test_a_batch_rerun_of_30_runs_completes_each_with_the_changed_variable(
    facility_factory: Any,
) -> None:
    facility = facility_factory({"MARI": {"plugin": "noop"}})
    for run_number in range(1, RUNS + 1):
        facility.write_data("MARI", run_number)
    facility.bump("MARI", RUNS)
    first = [facility.wait_final("MARI", n, timeout_s=180) for n in range(1, RUNS + 1)]
    assert [run["status"] for run in first] == ["Completed"] * RUNS
    database = Database(f"sqlite:///{facility.root / 'data' / 'autoreduce.db'}")
    token = create_token(database, "e2e-admin", "admin")
    database.dispose()

    response = requests.post(
        f"{facility.api_url}/api/v1/reruns",
        json={
            "instrument": "MARI",
            "run_min": 1,
            "run_max": RUNS,
            "variables": {"sleep_s": 0.01},
            "reason": "e2e batch",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    batch_url = f"{facility.api_url}/api/v1/reruns/{response.json()['id']}"

    def all_final() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = requests.get(batch_url, timeout=10).json()["runs"]
        done = all(run["status"] in ("Completed", "Error", "Skipped") for run in runs)
        return runs if done else None

    runs = wait_for(all_final, timeout_s=180, interval_s=0.5)
    assert len(runs) == RUNS
    assert {(run["status"], run["run_version"]) for run in runs} == {("Completed", 1)}
    for run_number in range(1, RUNS + 1):
        versions = requests.get(
            f"{facility.api_url}/api/v1/runs/MARI/{run_number}", timeout=10
        ).json()["versions"]
        [values] = [o for o in versions[1]["outputs"] if o["name"].endswith("variables.json")]
        written = json.loads(requests.get(facility.api_url + values["url"], timeout=10).text)
        assert written == {
            "sleep_s": 0.01,
            "fault": "none",
            "log_lines": 0,
            "hold_mb": 0,
            "plot": False,
        }
        assert versions[1]["variable_sources"]["sleep_s"] == "re-run change"
        assert versions[1]["derived_from_version"] == 0
