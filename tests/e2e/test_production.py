"""Production mode in real processes: MariaDB and ActiveMQ, with the broker down or poisoned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from autoreduce.messages import PENDING_QUEUE
from autoreduce.transport.stomp import StompTransport
from tests.e2e.services import ACTIVEMQ_URL, start_activemq, stop_activemq
from tests.facility import Facility
from tests.polling import wait_for

pytestmark = pytest.mark.exclusive  # restarts the shared ActiveMQ or MariaDB: runs alone


@pytest.fixture
def production(fresh_mysql_database: str) -> dict[str, Any]:
    start_activemq()
    return {
        "database_url": fresh_mysql_database,
        "broker_url": ACTIVEMQ_URL,
        "visibility_timeout_s": 3,
        "retry_delay_s": 0.2,
    }


def _post_run(facility: Facility, instrument: str, run_number: int) -> requests.Response:
    token = (facility.root / "data" / "secrets" / "detector.token").read_text().strip()
    data_path = facility.write_data(instrument, run_number)
    return requests.post(
        f"{facility.api_url}/api/v1/runs",
        json={"instrument": instrument, "run_number": run_number, "data_path": str(data_path)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_runs_accepted_while_activemq_is_down_are_processed_when_it_returns(
    facility_factory: Any, production: dict[str, Any]
) -> None:
    facility = facility_factory({"MARI": {"plugin": "noop"}}, settings=production)
    stop_activemq()
    try:
        answers = [_post_run(facility, "MARI", n).status_code for n in range(1, 21)]
        held = facility.runs(instrument="MARI", limit=100)
    finally:
        start_activemq()

    assert answers == [201] * 20
    assert {run["status"] for run in held} == {"Queued"}
    finished = [facility.wait_final("MARI", n, timeout_s=120) for n in range(1, 21)]
    assert {run["status"] for run in finished} == {"Completed"}
    assert {run["attempts"] for run in finished} == {1}


def test_a_poison_message_and_an_always_crashing_run_end_in_the_dlq_with_their_reasons(
    facility_factory: Any, production: dict[str, Any], tmp_path: Path
) -> None:
    facility = facility_factory(
        {
            "CRASH": {"plugin": "noop", "variables": {"fault": "segfault"}},
            "MARI": {"plugin": "noop"},
        },
        settings=production,
    )
    with StompTransport(ACTIVEMQ_URL, consumer="poisoner") as broker:
        broker.purge("autoreduce.reduction.dlq")
        broker.send(PENDING_QUEUE, '{"schema": 1, "run_id": "not a number"}')

    facility.play("CRASH", 1)
    facility.play("MARI", 1)

    crashed = facility.wait_final("CRASH", 1, timeout_s=120)
    assert crashed["status"] == "Error" and crashed["attempts"] == 3
    assert crashed["message"] == (
        "gave up after 3 attempts: reduction process died from signal SIGSEGV (segmentation fault)"
    )
    assert facility.wait_final("MARI", 1)["status"] == "Completed"

    env = {**os.environ, "AUTOREDUCE_CONFIG": str(facility.root / "autoreduce.toml")}

    def dead_letters() -> list[list[str]] | None:
        listed = subprocess.run(
            [sys.executable, "-m", "autoreduce", "dlq", "list"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        return rows if len(rows) == 2 else None

    rows = wait_for(dead_letters, timeout_s=30, interval_s=0.5)
    reasons = sorted(row[2] for row in rows)
    assert reasons[0] == crashed["message"]
    assert reasons[1].startswith("invalid run message: run_id:")
