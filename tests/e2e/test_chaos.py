"""No run lost or done twice while processors, the broker and the database die under load.

300 noop runs (``sleep_s`` 0.05) through 2 processors on MariaDB; while they are processed, a
processor is SIGKILLed 5 times (``autoreduce up`` restarts it), the broker is killed and
restarted twice (ActiveMQ; with the SQL queue the broker is the database) and MariaDB is
restarted once. The faults are paced by progress, so each lands while runs are in flight.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import func, select

from autoreduce.db import Database
from autoreduce.db.models import QueueMessage, ReductionRun, RunOutput
from autoreduce.messages import DEAD_LETTER_QUEUE
from tests.e2e.services import ACTIVEMQ_URL, restart_activemq, restart_mariadb, start_activemq
from tests.facility import Facility, start_facility, stop_facility
from tests.polling import wait_for

pytestmark = pytest.mark.exclusive  # restarts the shared ActiveMQ or MariaDB: runs alone

RUNS = 300


def kill_a_processor(facility: Facility) -> None:
    assert facility.process is not None

    def live_processors() -> list[psutil.Process]:
        found = []
        for child in psutil.Process(facility.process.pid).children():  # type: ignore[union-attr]
            try:
                # python -m autoreduce process --name process-N
                if child.cmdline()[3:4] == ["process"]:
                    found.append(child)
            except psutil.Error:  # a processor killed before and not reaped yet
                continue
        return found

    victims = wait_for(live_processors, timeout_s=60)
    os.kill(random.choice(victims).pid, signal.SIGKILL)


@dataclass
class Chaos:
    """The faults to inject, in order, each once progress passes its share of the runs."""

    faults: list[tuple[str, Callable[[], None]]]
    done: list[str] = field(default_factory=list)

    def step(self, completed: int) -> None:
        due = (len(self.done) + 1) * RUNS // (len(self.faults) + 2)
        if len(self.done) < len(self.faults) and completed >= due:
            name, inject = self.faults[len(self.done)]
            inject()
            self.done.append(name)


def _completed(database: Database) -> int:
    try:
        with database.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ReductionRun)
                    .where(ReductionRun.status == "Completed")
                )
                or 0
            )
    except Exception:  # the database is being restarted: no progress to read
        return -1


def _submit_all(facility: Facility) -> None:
    """POST every run as the detector does; the API finds each data file in the archive."""
    token = (facility.root / "data" / "secrets" / "detector.token").read_text().strip()
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        for run_number in range(1, RUNS + 1):
            data_path = facility.data_file("CHAOS", run_number)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            data_path.write_bytes(b"noop does not read it")
            response = http.post(
                f"{facility.api_url}/api/v1/runs",
                json={"instrument": "CHAOS", "run_number": run_number},
                timeout=30,
            )
            assert response.status_code == 201, response.text


@pytest.mark.parametrize("broker", ["sql", "activemq"])
def test_300_runs_complete_exactly_once_through_kills_and_restarts(
    broker: str, tmp_path: Path, fresh_mysql_database: str
) -> None:
    if broker == "activemq":
        start_activemq()
    facility = start_facility(
        tmp_path,
        {"CHAOS": {"plugin": "noop", "variables": {"sleep_s": 0.05}}},
        processors=2,
        settings={
            "database_url": fresh_mysql_database,
            "broker_url": ACTIVEMQ_URL if broker == "activemq" else "sql://",
            "visibility_timeout_s": 3,
            "heartbeat_interval_s": 0.5,
            "max_attempts": 10,
        },
    )
    database = Database(fresh_mysql_database)
    kill: Callable[[], None] = lambda: kill_a_processor(facility)  # noqa: E731
    broker_restart = [("restart activemq", restart_activemq)] if broker == "activemq" else []
    kill_processor = ("kill processor", kill)
    chaos = Chaos(
        [
            kill_processor,
            *broker_restart,
            kill_processor,
            ("restart mariadb", restart_mariadb),
            kill_processor,
            *broker_restart,
            kill_processor,
            kill_processor,
        ]
    )
    try:
        _submit_all(facility)

        def all_completed() -> bool:
            completed = _completed(database)
            chaos.step(completed)
            return completed == RUNS

        wait_for(all_completed, timeout_s=600, interval_s=0.1)
    finally:
        stop_facility(facility)

    assert len(chaos.done) == len(chaos.faults), chaos.done
    with database.session() as session:
        runs = session.scalars(select(ReductionRun)).all()
        outputs = session.execute(
            select(RunOutput.run_id, func.count()).group_by(RunOutput.run_id)
        ).all()
        dead = session.scalar(
            select(func.count())
            .select_from(QueueMessage)
            .where(QueueMessage.queue == DEAD_LETTER_QUEUE)
        )
    assert sorted(r.run_number for r in runs) == list(range(1, RUNS + 1))
    assert {(r.status, r.run_version) for r in runs} == {("Completed", 0)}
    # noop.txt, variables.json and the log
    assert {count for _, count in outputs} == {3} and len(outputs) == RUNS
    assert dead == 0
    retried = sum(1 for r in runs if r.attempts > 1)
    print(f"{broker}: {RUNS} runs, faults {chaos.done}, {retried} runs needed a second attempt")
