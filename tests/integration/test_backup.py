"""``autoreduce db backup`` and ``db restore``: real dumps of real SQLite and MariaDB databases.

Each test runs the real command in a subprocess (MariaDB through the real ``mysqldump`` and
``mysql`` clients) on a database the test filled, then checks the dump, the manifest, the
scratch restore, and what was recorded for the alert rule and ``/metrics``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from autoreduce.alerts.rules import Observed, backup_failed
from autoreduce.db import Database
from autoreduce.db.models import Instrument, MaintenanceRun, ReductionRun, RunStatus, utcnow
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from autoreduce.transport.sql import SqlTransport
from rest_api import create_app
from tests.conftest import MYSQL_SERVER

AUTOREDUCE = Path(sys.executable).with_name("autoreduce")


def autoreduce(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    return subprocess.run(
        [str(AUTOREDUCE), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def fill(database: Database, runs: int = 25) -> None:
    """Rows in several tables, one with text that needs escaping in a dump."""
    with database.session() as session:
        session.add(Instrument(name="GEM"))
        session.flush()
        for number in range(1, runs + 1):
            session.add(
                ReductionRun(
                    instrument="GEM",
                    run_number=number,
                    status=RunStatus.COMPLETED,
                    title=f"it's run {number}\nwith a 'quote', a \\ and a ` tick),(\\'",
                    data_path=f"/archive/GEM{number:08d}.nxs",
                    variables={"bins": number},
                    finished_at=utcnow(),
                )
            )
    for index in range(3):
        create_token(database, f"token-{index}", "scientist", ["GEM"])


@pytest.fixture
def env(database: Database, tmp_path: Path) -> dict[str, str]:
    fill(database)
    return {
        "AUTOREDUCE_DATABASE_URL": database.url,
        "AUTOREDUCE_DATA_DIR": str(tmp_path / "data"),
        "AUTOREDUCE_BACKUP__DIR": str(tmp_path / "backups"),
    }


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def backup_now(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    result = autoreduce("db", "backup", "--json", *args, cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return run_json(result)


def table_counts(database: Database) -> dict[str, int]:
    engine = database.engine
    from sqlalchemy import inspect

    with engine.connect() as connection:
        names = inspect(connection).get_table_names()
        quote = engine.dialect.identifier_preparer.quote
        return {
            name: int(connection.execute(text(f"SELECT COUNT(*) FROM {quote(name)}")).scalar_one())
            for name in names
        }


def outcomes(database: Database, job: str) -> list[tuple[str, str]]:
    with database.session() as session:
        rows = session.execute(
            select(MaintenanceRun.outcome, MaintenanceRun.reason)
            .where(MaintenanceRun.job == job)
            .order_by(MaintenanceRun.id)
        ).all()
    return [(outcome, reason) for outcome, reason in rows]


# --- backup, then verify ------------------------------------------------------------------------


def test_a_backup_restores_into_a_scratch_database_and_matches_its_manifest(
    database: Database, env: dict[str, str], tmp_path: Path
) -> None:
    expected = table_counts(database)

    made = backup_now(tmp_path, env)
    dump = Path(made["dump"])
    verified = autoreduce("db", "restore", "--verify", "latest", "--json", cwd=tmp_path, **env)

    assert verified.returncode == 0, verified.stderr
    report = run_json(verified)
    assert report["ok"] is True and report["dump"] == str(dump)
    assert [check["name"] for check in report["checks"]] == [
        "manifest",
        "checksum",
        "restore",
        "row counts",
        "schema revision",
    ]
    manifest = json.loads(Path(made["manifest"]).read_text())
    assert manifest["tables"] == {k: v for k, v in expected.items() if k in manifest["tables"]}
    assert manifest["tables"]["reduction_runs"] == 25
    assert manifest["tables"]["api_tokens"] == 3
    assert set(manifest["tables"]) == set(expected)
    assert manifest["schema_revision"] == "0018"
    assert dump.parent == tmp_path / "backups"
    assert outcomes(database, "backup") == [("ok", "")]
    assert outcomes(database, "verify") == [("ok", "")]
    if database.dialect != "sqlite":  # the scratch database is gone again
        name = make_url(database.url).database
        server = create_engine(MYSQL_SERVER)
        with server.connect() as connection:
            left = connection.execute(text(f"SHOW DATABASES LIKE '{name}_verify_%'")).all()
        server.dispose()
        assert left == []


def test_a_real_restore_brings_the_rows_back(
    database: Database, env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    dump = backup_now(tmp_path, env)["dump"]
    with database.session() as session:
        session.execute(ReductionRun.__table__.delete().where(ReductionRun.run_number > 5))

    refused = autoreduce("db", "restore", dump, "--into", database_url, cwd=tmp_path, **env)
    restored = autoreduce(
        "db", "restore", dump, "--into", database_url, "--yes", cwd=tmp_path, **env
    )

    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert restored.returncode == 0, restored.stderr + restored.stdout
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ReductionRun)) == 25


# --- a damaged dump -----------------------------------------------------------------------------


def damage(dump: Path, how: str) -> None:
    data = bytearray(dump.read_bytes())
    if how == "truncated":
        dump.write_bytes(bytes(data[: len(data) * 2 // 3]))
    else:
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
        dump.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
def test_a_damaged_dump_fails_verification_naming_what_failed(
    database: Database, env: dict[str, str], tmp_path: Path, how: str
) -> None:
    dump = Path(backup_now(tmp_path, env)["dump"])
    damage(dump, how)

    result = autoreduce("db", "restore", "--verify", str(dump), "--json", cwd=tmp_path, **env)

    assert result.returncode == 1
    report = run_json(result)
    failed = {check["name"]: check["detail"] for check in report["checks"] if not check["ok"]}
    assert f"the dump is {how}" in failed["checksum"]
    assert "restore" in failed or "row counts" in failed  # the damage shows in the restore too
    assert f"the dump is {how}" in result.stderr  # the one-line reason
    [(outcome, reason)] = outcomes(database, "verify")
    assert outcome == "failed" and "checksum" in reason


def test_rows_missing_from_a_dump_fail_the_row_count_check(
    database: Database, env: dict[str, str], tmp_path: Path
) -> None:
    made = backup_now(tmp_path, env)
    manifest_path = Path(made["manifest"])
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["reduction_runs"] += 1  # the dump holds one row fewer than promised
    manifest_path.write_text(json.dumps(manifest))

    result = autoreduce("db", "restore", "--verify", made["dump"], "--json", cwd=tmp_path, **env)

    assert result.returncode == 1
    failed = {c["name"]: c["detail"] for c in run_json(result)["checks"] if not c["ok"]}
    assert failed == {"row counts": "reduction_runs has 25 rows, the manifest 26"}


def test_a_dump_without_its_manifest_fails_verification(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = backup_now(tmp_path, env)
    Path(made["manifest"]).unlink()

    result = autoreduce("db", "restore", "--verify", made["dump"], cwd=tmp_path, **env)

    assert result.returncode == 1
    assert "manifest" in result.stderr and "does not exist" in result.stderr


# --- keep-days ----------------------------------------------------------------------------------


def stamped(moment: datetime) -> str:
    return f"autoreduce-{moment:%Y%m%dT%H%M%SZ}"


def test_a_backup_removes_its_dumps_older_than_keep_days_and_nothing_else(
    env: dict[str, str], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    now = datetime.now(UTC)
    old = [stamped(now - timedelta(days=20)) + suffix for suffix in (".sql.gz", ".manifest.json")]
    recent = [stamped(now - timedelta(days=5)) + ".sqlite.gz"]
    others = ["notes.txt", "autoreduce.db"]
    for name in old + recent + others:
        (backups / name).write_text("x")
    outside = tmp_path / "elsewhere.sql.gz"
    outside.write_text("keep me")
    link = backups / (stamped(now - timedelta(days=30)) + ".sql.gz")
    link.symlink_to(outside)

    made = backup_now(tmp_path, env, "--keep-days", "14")

    assert sorted(made["pruned"]) == sorted(old)
    left = {path.name for path in backups.iterdir()}
    written = {Path(made["dump"]).name, Path(made["manifest"]).name}
    assert left == {*recent, *others, link.name, *written}
    assert outside.read_text() == "keep me"


# --- failures alert -----------------------------------------------------------------------------


def judge(settings: Settings, database: Database, now: datetime) -> list[str]:
    transport = SqlTransport(database.url, consumer="alerts", database=database)
    seen = Observed(settings, database, transport, now)
    with database.read_session() as session:
        return [condition.summary for condition in backup_failed(seen, session)]


def metric(client: TestClient, headers: dict[str, str], name: str, job: str) -> float | None:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"job": job}:
                return float(sample.value)
    return None


def test_a_failed_backup_exits_1_is_recorded_alerts_and_shows_in_metrics(
    database: Database,
    env: dict[str, str],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(GEM="noop", database_url=database_url)
    assert judge(settings, database, utcnow()) == []  # no backup recorded yet: nothing to judge
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the backup directory should be")

    failed = autoreduce("db", "backup", "--to", str(blocked / "backups"), cwd=tmp_path, **env)

    assert failed.returncode == 1
    assert "backup failed" in failed.stderr
    [(outcome, reason)] = outcomes(database, "backup")
    assert outcome == "failed" and str(blocked) in reason
    [summary] = judge(settings, database, utcnow())
    assert "the last backup failed" in summary and "no successful backup ever" in summary
    with TestClient(create_app(settings, relay=False)) as client:
        token = create_token(database, "prometheus", "scientist", [])
        headers = {"Authorization": f"Bearer {token}"}
        assert metric(client, headers, "autoreduce_operation_failing", "backup") == 1

        backup_now(tmp_path, env)

        assert metric(client, headers, "autoreduce_operation_failing", "backup") == 0
        last = "autoreduce_operation_last_success_timestamp_seconds"
        assert metric(client, headers, last, "backup")
    assert judge(settings, database, utcnow()) == []
    later = utcnow() + timedelta(hours=27)
    [stale] = judge(settings, database, later)
    assert "no successful backup for 27 h (limit 26 h)" in stale


# --- the password stays secret (MariaDB) --------------------------------------------------------


@pytest.fixture
def password_user(database_url: str) -> Iterator[tuple[str, str]]:
    """A MariaDB user with a password full of awkward characters, allowed on the test's
    database and its scratch copies; (URL with that user, password)."""
    if not database_url.startswith("mysql"):
        pytest.skip("the password goes to the MariaDB clients only")
    url = make_url(database_url)
    user = f"bk_{uuid.uuid4().hex[:10]}"
    password = f"p'w\"d #{secrets.token_hex(8)} \\x"
    server = create_engine(MYSQL_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
        connection.execute(text(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'%'"))
        pattern = str(url.database).replace("_", "\\_") + "\\_verify\\_%"
        connection.execute(text(f"GRANT ALL ON `{pattern}`.* TO '{user}'@'%'"))
    try:
        secret_url = url.set(username=user, password=password)
        yield secret_url.render_as_string(hide_password=False), password
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        server.dispose()


def recording(tmp_path: Path, name: str, real: str) -> Path:
    """A wrapper that records its command line, environment and the defaults file's mode, then
    runs the real client with exactly those arguments."""
    record = tmp_path / f"{name}.seen"
    wrapper = tmp_path / name
    wrapper.write_text(
        "#!/bin/sh\n"
        f'cat /proc/$$/cmdline | tr "\\0" " " >> "{record}"; echo >> "{record}"\n'
        f'env >> "{record}"\n'
        'defaults="${1#--defaults-extra-file=}"\n'
        f'stat -c "mode %a" "$defaults" >> "{record}"\n'
        f'echo "$defaults" >> "{record}"\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return record


def test_the_password_is_never_on_a_command_line_in_the_environment_or_a_log(
    database: Database, env: dict[str, str], tmp_path: Path, password_user: tuple[str, str]
) -> None:
    url, password = password_user
    dumped = recording(tmp_path, "dump-client", "/usr/bin/mysqldump")
    restored = recording(tmp_path, "restore-client", "/usr/bin/mysql")
    secret_env = {
        **env,
        "AUTOREDUCE_DATABASE_URL": url,
        "AUTOREDUCE_BACKUP__DUMP_COMMAND": str(tmp_path / "dump-client"),
        "AUTOREDUCE_BACKUP__CLIENT_COMMAND": str(tmp_path / "restore-client"),
    }

    made = autoreduce("db", "backup", "--json", cwd=tmp_path, **secret_env)
    assert made.returncode == 0, made.stderr
    dump = run_json(made)["dump"]
    verified = autoreduce("db", "restore", "--verify", dump, cwd=tmp_path, **secret_env)

    assert verified.returncode == 0, verified.stderr
    seen = dumped.read_text() + restored.read_text()
    assert "--defaults-extra-file=" in seen and "--single-transaction" in seen
    assert seen.count("mode 600") == 2
    for defaults in [line for line in seen.splitlines() if line.endswith("client.cnf")]:
        assert not Path(defaults).exists()  # removed after use
    logs = "".join(p.read_text() for p in (tmp_path / "data" / "logs").glob("*"))
    everything = [seen, made.stdout, made.stderr, verified.stdout, verified.stderr, logs]
    everything.append(Path(run_json(made)["manifest"]).read_text())
    for where in everything:
        assert password not in where
        assert quote(password) not in where and quote_plus(password) not in where
