"""The API under test: a FastAPI TestClient on real SQLite and MariaDB, tokens, data files.

Registered for every suite as a pytest plugin (``tests/conftest.py``), so each API test module
uses the same instance: instruments GEM and WISH (``noop``), BROKEN (a plugin that is not
installed) and BADVARS (a TOML default its plugin refuses), on a public-read instance whose
archive holds the data files of runs 1 to 20 and 44733 of each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.db.models import OutboxMessage
from autoreduce.messages import RunMessage, parse_run_message
from autoreduce.plugin import PROJECT, Variable, hookimpl
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from rest_api import create_app
from tests.conftest import instrument_config
from tests.polling import wait_for

RUNS = "/api/v1/runs"


class NoopVariables:
    """The variables of the ``noop`` plugin, registered under its name for these tests."""

    @hookimpl
    def reduction_variables(self, instrument: str) -> list[Variable]:
        return [
            Variable("sleep_s", "float", 0.0, "Seconds to sleep.", minimum=0.0),
            Variable(
                "fault",
                "str",
                "none",
                "Fail on purpose.",
                advanced=True,
                choices=("none", "raise", "hang", "memory", "segfault", "exit"),
            ),
        ]


@pytest.fixture
def plugins() -> Plugins:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(NoopVariables(), name="noop")
    return Plugins(manager)


DATA_RUNS = (*range(1, 21), 44733)
"""The runs whose data files every test's archive holds (GEM, WISH, BROKEN, BADVARS)."""


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """A public-read instance (reads without a token, as the demo); writes need tokens."""
    return make_settings(
        GEM="noop",
        WISH="noop",
        BROKEN="not_installed",
        BADVARS=instrument_config("noop", variables={"sleep_s": -1}),
        database_url=database_url,
        public_read=True,
    )


def data_file(settings: Settings, instrument: str, run_number: int, cycle: str = "cycle_1") -> Path:
    """Write (an empty stand-in for) a run's data file where the instrument's template finds it."""
    path = Path(settings.data_pattern(instrument, run_number).replace("cycle_*", cycle))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


@pytest.fixture
def data_files(settings: Settings) -> None:
    for instrument in ("GEM", "WISH", "BROKEN", "BADVARS"):
        for run_number in DATA_RUNS:
            data_file(settings, instrument, run_number)


@pytest.fixture
def app_client(settings: Settings, plugins: Plugins, data_files: None) -> Iterator[TestClient]:
    """The API without its relay thread (tests drive the relay themselves)."""
    with TestClient(create_app(settings, relay=False, plugins=plugins)) as client:
        yield client


@pytest.fixture
def db(app_client: TestClient) -> Database:
    database: Database = app_client.app.state.api.database  # type: ignore[attr-defined]
    return database


@pytest.fixture
def auth(db: Database) -> Callable[..., dict[str, str]]:
    """``auth("detector", "GEM")``: headers carrying a new token of that role and instruments."""
    counter = iter(range(1000))

    def headers(role: str, *instruments: str) -> dict[str, str]:
        token = create_token(db, f"{role}-{next(counter)}", role, instruments)
        return {"Authorization": f"Bearer {token}"}

    return headers


def run_body(run_number: Any = 44733, instrument: str = "GEM", **extra: Any) -> dict[str, Any]:
    return {"instrument": instrument, "run_number": run_number, **extra}


def count(db: Database, model: type[Any]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def outbox_bodies(db: Database) -> list[RunMessage]:
    with db.session() as session:
        bodies = session.scalars(select(OutboxMessage.body).order_by(OutboxMessage.id)).all()
    return [parse_run_message(body) for body in bodies]


def version(app_client: TestClient, instrument: str, run_number: int) -> dict[str, Any]:
    """The run's only version (version 0), as the API shows it."""
    [only] = app_client.get(f"{RUNS}/{instrument}/{run_number}").json()["versions"]
    item: dict[str, Any] = only
    return item


def reaches(
    app_client: TestClient, instrument: str, run_number: int, status: str, timeout_s: float = 20
) -> dict[str, Any]:
    """Poll the API until the run's version 0 is in ``status``; that version."""
    found: dict[str, Any] = wait_for(
        lambda: (item := version(app_client, instrument, run_number))["status"] == status and item,
        timeout_s=timeout_s,
        what=f"{instrument} {run_number} {status}",
    )
    return found
