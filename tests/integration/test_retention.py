"""``autoreduce cleanup``: runs reduced by a real processor, then cleaned by the real command.

The API and a real processor (the ``noop`` plugin in forked children) share one database
(SQLite, then MariaDB) and the SQL queue; a run is aged by moving its ``finished_at`` back, then
``autoreduce cleanup`` runs as a subprocess on the same database and outputs root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pluggy
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from autoreduce import hookspecs
from autoreduce.db import Database
from autoreduce.db.models import (
    AuditEvent,
    MaintenanceRun,
    ReductionRun,
    RunLogLine,
    RunOutput,
    utcnow,
)
from autoreduce.plugin import PROJECT
from autoreduce.plugin_manager import Plugins
from autoreduce.settings import Settings
from autoreduce.transport.sql import SqlTransport
from plugins import noop
from queue_processor.worker import QueueProcessor
from tests.api_client import RUNS, data_file, run_body
from tests.conftest import approve_builtin_plugins, instrument_config
from tests.polling import wait_for

AUTOREDUCE = Path(sys.executable).with_name("autoreduce")
Auth = Callable[..., dict[str, str]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        GEM=instrument_config("noop", timeout_s=120, variables={"plot": True}),
        database_url=database_url,
        public_read=True,
        heartbeat_interval_s=0.2,
        shutdown_grace_s=0,
    )


@pytest.fixture
def data_files(settings: Settings) -> None:
    for run_number in (1, 2, 3):
        data_file(settings, "GEM", run_number)


@pytest.fixture
def plugins() -> Plugins:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(noop, name="noop")
    return Plugins(manager)


@pytest.fixture
def reduced(
    app_client: TestClient, db: Database, settings: Settings, plugins: Plugins, auth: Auth
) -> Iterator[dict[int, dict[str, Any]]]:
    """GEM 1, 2 and 3 reduced by a real processor; each run's version 0 as the API shows it."""
    approve_builtin_plugins(db)
    transport = SqlTransport(db.url, consumer="p1", database=db)
    processor = QueueProcessor(
        settings, database=db, transport=transport, plugins=plugins, processor_id="p1"
    )
    thread = threading.Thread(target=processor.serve, name="processor")
    thread.start()
    try:
        headers = auth("detector")
        for run_number in (1, 2, 3):
            response = app_client.post(RUNS, json=run_body(run_number, "GEM"), headers=headers)
            assert response.status_code == 201, response.text
        app_client.app.state.api.relay.relay_once()  # type: ignore[attr-defined]

        def version(run_number: int) -> dict[str, Any] | None:
            [item] = app_client.get(f"{RUNS}/GEM/{run_number}").json()["versions"]
            return item if item["status"] == "Completed" else None

        yield {n: wait_for(lambda n=n: version(n), timeout_s=60) for n in (1, 2, 3)}
    finally:
        processor.stop()
        thread.join(timeout=60)


def age(db: Database, run_number: int, days: float) -> None:
    with db.session() as session:
        session.execute(
            update(ReductionRun)
            .where(ReductionRun.run_number == run_number)
            .values(finished_at=utcnow() - timedelta(days=days))
        )


def cleanup(settings: Settings, *args: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    env = {
        **clean,
        "AUTOREDUCE_DATABASE_URL": settings.resolved_database_url,
        "AUTOREDUCE_DATA_DIR": str(settings.data_dir),
    }
    result = subprocess.run(
        [str(AUTOREDUCE), "cleanup", "--json", *args],
        env=env,
        cwd=settings.data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def log_lines(db: Database, run_id: int) -> int:
    with db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(RunLogLine).where(RunLogLine.run_id == run_id)
        )
    return int(count or 0)


def test_cleanup_removes_old_logs_and_intermediates_keeps_data_and_plots_and_dry_run_agrees(
    app_client: TestClient,
    db: Database,
    settings: Settings,
    reduced: dict[int, dict[str, Any]],
    tmp_path: Path,
) -> None:
    old, recent = reduced[1], reduced[2]
    out = settings.output_dir("GEM", 1, 0, "")
    assert (out / "reduction.log").is_file() and (out / "noop.txt").is_file()
    # what a plugin leaves behind without listing it, and a dead attempt's work directory
    (out / "scratch.h5").write_bytes(b"s" * 1000)
    (out / "work").mkdir()
    (out / "work" / "partial.dat").write_bytes(b"p" * 300)
    dead = out.parent / f".{out.name}.tmp-deadbeef"
    dead.mkdir()
    (dead / "half.nxs").write_bytes(b"h" * 50)
    secret = tmp_path / "outside.txt"
    secret.write_text("not the outputs'")
    (out / "escape").symlink_to(secret)
    age(db, 1, days=100)
    age(db, 3, days=89)  # inside the policy: untouched
    lines_before = log_lines(db, old["id"])
    assert lines_before > 0

    dry = cleanup(settings, "--older-than", "90d", "--dry-run")
    assert (out / "reduction.log").is_file() and (out / "scratch.h5").is_file()
    real = cleanup(settings, "--older-than", "90d")

    expected = {
        out / "reduction.log",
        out / "reduction.jsonl",
        out / "scratch.h5",
        out / "work" / "partial.dat",
        dead / "half.nxs",
    }
    assert {Path(entry["path"]) for entry in dry["files"]} == expected
    assert (dry["files"], dry["bytes"], dry["run_versions"]) == (
        real["files"],
        real["bytes"],
        real["run_versions"],
    )
    assert dry["dry_run"] is True and real["dry_run"] is False
    assert real["bytes"] == sum(entry["bytes"] for entry in real["files"]) >= 1350
    assert real["log_lines"] == lines_before and real["run_versions"] == 1
    assert [s["path"] for s in real["skipped"]] == [str(out / "escape")]
    assert not any(path.exists() for path in expected)
    assert not (out / "work").exists() and not dead.exists()
    assert {p.name for p in out.iterdir()} == {"noop.txt", "variables.json", "noop.svg", "escape"}
    assert secret.read_text() == "not the outputs'"  # the symlink was neither followed nor removed
    assert log_lines(db, old["id"]) == 0
    assert log_lines(db, recent["id"]) > 0
    recent_dir = settings.output_dir("GEM", 2, 0, "")
    assert (recent_dir / "reduction.log").is_file()
    with db.session() as session:  # the runs' rows and output rows all stay
        assert session.scalar(select(func.count()).select_from(ReductionRun)) == 3
        outputs = session.scalar(
            select(func.count()).select_from(RunOutput).where(RunOutput.run_id == old["id"])
        )
        assert outputs == len(old["outputs"])
        [audit] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.cleanup")
        ).all()
        assert audit.details["files"] == 5 and audit.details["bytes"] == real["bytes"]
        [outcome] = session.scalars(
            select(MaintenanceRun.outcome).where(MaintenanceRun.job == "cleanup")
        ).all()
        assert outcome == "ok"
    again = cleanup(settings, "--older-than", "90d")
    assert (again["run_versions"], again["file_count"]) == (0, 0)


def test_a_cleaned_run_still_answers_in_the_api_and_the_ui(
    app_client: TestClient, db: Database, settings: Settings, reduced: dict[int, dict[str, Any]]
) -> None:
    old = reduced[1]
    age(db, 1, days=100)
    with db.session() as session:  # a version skipped long ago: no log, nothing to remove
        session.add(
            ReductionRun(
                instrument="GEM",
                run_number=7,
                status="Skipped",
                message="calibration run",
                data_path="/archive/GEM00000007.nxs",
                finished_at=utcnow() - timedelta(days=200),
            )
        )
    cleanup(settings)  # the default policy: 90 days

    run = app_client.get(f"{RUNS}/GEM/1")
    log = app_client.get(f"{RUNS}/GEM/1/versions/0/log")
    recent_log = app_client.get(f"{RUNS}/GEM/2/versions/0/log")
    page = app_client.get("/runs/GEM/1")
    downloads = {
        output["kind"]: app_client.get(output["url"]).status_code for output in old["outputs"]
    }

    assert run.status_code == 200 and run.json()["versions"][0]["status"] == "Completed"
    assert log.status_code == 410
    assert log.headers["content-type"].startswith("application/problem+json")
    assert "log removed by retention on" in log.json()["detail"]
    assert recent_log.status_code == 200 and recent_log.text
    assert page.status_code == 200 and "Log removed by retention on" in page.text
    assert "data-log=" not in page.text.split('id="version-0"')[1]  # no fetch of a removed log
    assert downloads == {"data": 200, "plot": 200, "log": 410}
    skipped_log = app_client.get(f"{RUNS}/GEM/7/versions/0/log")
    assert skipped_log.status_code == 404 and "has no log" in skipped_log.json()["detail"]


def test_an_output_directory_that_is_a_symlink_is_skipped_not_followed(
    db: Database, settings: Settings, reduced: dict[int, dict[str, Any]], tmp_path: Path
) -> None:
    out = settings.output_dir("GEM", 1, 0, "")
    elsewhere = tmp_path / "elsewhere"
    out.rename(elsewhere)
    out.symlink_to(elsewhere)
    age(db, 1, days=100)

    report = cleanup(settings, "--older-than", "90d")

    assert report["file_count"] == 0
    [skipped] = report["skipped"]
    assert skipped["path"] == str(out) and "lies outside" in skipped["reason"]
    assert (elsewhere / "reduction.log").is_file()
    assert out.is_symlink()


def test_a_bad_older_than_is_a_usage_error(settings: Settings) -> None:
    result = subprocess.run(
        [str(AUTOREDUCE), "cleanup", "--older-than", "ninety days"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=settings.data_dir.parent,
    )
    assert result.returncode == 2
    assert "90d" in result.stderr
