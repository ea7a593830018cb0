"""Fixtures shared by every suite: settings on a temporary archive, real databases.

``database_url`` runs a test on SQLite and on the real MariaDB (a fresh database each test,
dropped afterwards). MariaDB is at ``AUTOREDUCE_TEST_MYSQL`` (default root@127.0.0.1:3306).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from autoreduce.audit import Actor
from autoreduce.db import Database
from autoreduce.plugin_approvals import approve_builtin
from autoreduce.plugin_manager import installed_plugins
from autoreduce.settings import Settings

pytest_plugins = ["tests.api_client", "tests.slapd"]

MYSQL_SERVER = os.environ.get("AUTOREDUCE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture(autouse=True)
def _no_stray_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads a developer's autoreduce.toml or AUTOREDUCE_* variables by accident.

    Each test runs in its own empty directory with no ``AUTOREDUCE_CONFIG``: no config file.
    """
    for name in list(os.environ):
        if name.startswith("AUTOREDUCE_") and name != "AUTOREDUCE_TEST_MYSQL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fresh_mysql_database() -> Iterator[str]:
    """A new, empty MariaDB database for one test; its URL."""
    name = f"autoreduce_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(MYSQL_SERVER, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    try:
        yield f"{MYSQL_SERVER}/{name}?charset=utf8mb4"
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: SQLite file, then a fresh MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'autoreduce.db'}"
    url: str = request.getfixturevalue("fresh_mysql_database")
    return url


def approve_builtin_plugins(database: Database) -> None:
    """Approve the built-in plugins at their installed version, as an operator would with
    ``autoreduce plugins approve --builtin`` (a plugin runs only once approved)."""
    approve_builtin(database, installed_plugins(), Actor("tests", "operator"))


@pytest.fixture
def unapproved_database(database_url: str) -> Iterator[Database]:
    """A migrated database (SQLite and MariaDB) where no plugin is approved yet."""
    db = Database(database_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def database(unapproved_database: Database) -> Database:
    """A migrated database (SQLite and MariaDB) with the built-in plugins approved."""
    approve_builtin_plugins(unapproved_database)
    return unapproved_database


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    return root


def instrument_config(plugin: str = "noop", **extra: Any) -> dict[str, Any]:
    """The TOML table of a test instrument laid out like ISIS's archive."""
    return {
        "plugin": plugin,
        "lastruns": "{root}/NDX{instrument}/Instrument/logs/lastruns.txt",
        "data": "{root}/NDX{instrument}/Instrument/data/cycle_*/{instrument}{run_number:08d}.nxs",
        **extra,
    }


@pytest.fixture
def make_settings(tmp_path: Path, archive: Path) -> Callable[..., Settings]:
    """Build Settings on the temporary archive: ``make_settings(GEM="noop", database_url=...)``."""

    def build(**kwargs: Any) -> Settings:
        instruments = {
            name: instrument_config(value) if isinstance(value, str) else value
            for name, value in kwargs.items()
            if name.isupper()
        }
        options = {name: value for name, value in kwargs.items() if not name.isupper()}
        options.setdefault("data_dir", tmp_path / "data")
        return Settings(archive={"root": archive}, instruments=instruments, **options)

    return build
