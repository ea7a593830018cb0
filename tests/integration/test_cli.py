"""The ``autoreduce`` command as a newcomer runs it: real processes in an empty directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoreduce import __version__
from tests.conftest import MYSQL_SERVER
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
AUTOREDUCE = Path(sys.executable).with_name("autoreduce")


def autoreduce(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    return subprocess.run(
        [str(AUTOREDUCE), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("command", "summary"),
    [(["dlq", "list"], "0 dead letter(s)"), (["token", "list"], "0 token(s)")],
)
def test_a_list_on_a_fresh_data_directory_is_empty_not_a_traceback(
    tmp_path: Path, command: list[str], summary: str
) -> None:
    result = autoreduce(*command, cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.strip() == summary


def head() -> str:
    """The newest revision of the migrations, as Alembic reads them."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from autoreduce.db.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None, "the migrations have more than one head"
    return revision


def test_db_upgrade_says_whether_it_created_the_schema_or_found_it_up_to_date(
    tmp_path: Path,
) -> None:
    first = autoreduce("db", "upgrade", cwd=tmp_path)
    second = autoreduce("db", "upgrade", cwd=tmp_path)

    assert first.returncode == 0 and first.stdout.startswith("created the database schema")
    assert second.stdout.strip() == f"database schema already up to date (revision {head()})"


def test_db_upgrade_of_an_older_schema_says_from_which_revision_to_which(tmp_path: Path) -> None:
    from autoreduce.db import Database
    from autoreduce.db.engine import upgrade

    database = Database(f"sqlite:///{tmp_path / 'autoreduce-data' / 'autoreduce.db'}")
    upgrade(database.engine, "0001")
    database.dispose()

    result = autoreduce("db", "upgrade", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"upgraded the database schema from revision 0001 to {head()}"


def test_a_schema_at_a_revision_this_version_does_not_know_is_one_line(tmp_path: Path) -> None:
    from autoreduce.db import Database

    database = Database(f"sqlite:///{tmp_path / 'autoreduce-data' / 'autoreduce.db'}")
    database.upgrade()
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    database.dispose()

    result = autoreduce("db", "upgrade", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot migrate the database schema: ")
    assert "'0000'" in result.stderr and "Traceback" not in result.stderr


def test_no_alembic_info_lines_when_a_command_migrates(tmp_path: Path) -> None:
    result = autoreduce("token", "list", cwd=tmp_path)

    assert "Context impl" not in result.stderr and "alembic" not in result.stderr


@pytest.mark.mariadb
@pytest.mark.parametrize("command", [["db", "upgrade"], ["token", "list"], ["dlq", "list"]])
def test_an_unreachable_database_is_one_line_with_the_url_without_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    url = "mysql+pymysql://autoreduce:hunter2@127.0.0.1:1/autoreduce"

    result = autoreduce(*command, cwd=tmp_path, AUTOREDUCE_DATABASE_URL=url)

    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error: cannot reach the database at mysql+pymysql://autoreduce:***@127.0.0.1:1/autoreduce"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.mariadb
def test_db_upgrade_creates_the_schema_of_an_empty_mariadb_database(
    tmp_path: Path, fresh_mysql_database: str
) -> None:
    result = autoreduce("db", "upgrade", cwd=tmp_path, AUTOREDUCE_DATABASE_URL=fresh_mysql_database)

    assert result.returncode == 0 and result.stdout.startswith("created the database schema")
    assert MYSQL_SERVER.split("@")[-1] in result.stdout


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "GEM00000042.nxs"
    path.write_bytes(b"not read by noop")
    return path


def test_reduce_runs_a_plugin_in_the_foreground_and_prints_its_outputs(
    tmp_path: Path, data_file: Path
) -> None:
    result = autoreduce(
        "reduce", "--plugin", "noop", "--data", str(data_file), "--var", "sleep_s=0.01",
        "--run", "42", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    [out_dir] = tmp_path.glob("reduced-noop-*")
    assert f"file: {out_dir / 'noop.txt'}" in result.stdout
    assert f"log: {out_dir / 'reduction.log'}" in result.stdout
    assert "summary: slept 0.01 s" in result.stdout
    assert (out_dir / "noop.txt").read_text() == "42\n"


def test_reduce_of_a_failing_plugin_exits_1_with_the_reason(
    tmp_path: Path, data_file: Path
) -> None:
    out = tmp_path / "out"
    result = autoreduce(
        "reduce", "--plugin", "noop", "--data", str(data_file), "--var", "fault=raise",
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "Error: reduction failed: plugin raised RuntimeError: noop was asked to fail on run 0"
    )
    assert "noop was asked to fail" in (out / "reduction.log").read_text()


def test_reduce_holds_the_plugin_to_its_time_limit(tmp_path: Path, data_file: Path) -> None:
    result = autoreduce(
        "reduce", "--plugin", "noop", "--data", str(data_file), "--var", "fault=hang",
        "--timeout-s", "0.5", "--out", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 1
    assert "reduction failed: plugin exceeded its 0.5 s time limit" in result.stderr


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        (
            ["--var", "sleep=1"],
            "unknown variable(s) sleep; known: fault, hold_mb, log_lines, plot, sleep_s",
        ),
        (["--var", "sleep_s=soon"], "variable 'sleep_s' must be float, got 'soon'"),
        (["--var", "fault=explode"], "variable 'fault' must be one of"),
        (["--var", "sleep_s"], "'sleep_s' is not NAME=VALUE"),
    ],
)
def test_reduce_refuses_variables_the_plugin_does_not_declare_as_given(
    tmp_path: Path, data_file: Path, option: list[str], reason: str
) -> None:
    result = autoreduce(
        "reduce", "--plugin", "noop", "--data", str(data_file), *option, cwd=tmp_path
    )

    assert result.returncode == 2 and reason in result.stderr
    assert not list(tmp_path.glob("reduced-*"))


def test_reduce_with_a_plugin_that_is_not_installed_names_the_installed_ones(
    tmp_path: Path, data_file: Path
) -> None:
    result = autoreduce("reduce", "--plugin", "nop", "--data", str(data_file), cwd=tmp_path)

    assert result.returncode == 2
    assert "no reduction plugin named 'nop' is installed (installed: noop," in result.stderr


def test_reduce_needs_no_database_or_configuration(tmp_path: Path, data_file: Path) -> None:
    result = autoreduce(
        "reduce", "--plugin", "noop", "--data", str(data_file), "--out", str(tmp_path / "out"),
        cwd=tmp_path, AUTOREDUCE_DATABASE_URL="mysql+pymysql://nobody@127.0.0.1:1/none",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "autoreduce-data").exists()


@pytest.mark.parametrize(
    ("args", "log_name"), [([], "process.jsonl"), (["--name", "process-1"], "process-1.jsonl")]
)
def test_a_processor_logs_to_one_file_per_service_name_with_its_id_in_each_record(
    tmp_path: Path, args: list[str], log_name: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    logs = tmp_path / "autoreduce-data" / "logs"
    command = [str(AUTOREDUCE), "process", "--id", "p-test", *args]
    process = subprocess.Popen(command, cwd=tmp_path, env=clean, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: "consuming" in _text(logs / log_name), timeout_s=60)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)

    records = [json.loads(line) for line in (logs / log_name).read_text().splitlines()]
    assert {r["autoreduce"]["processor"] for r in records} == {"p-test"}
    assert [p.name for p in logs.iterdir()] == [log_name]
    assert b"Context impl" not in stderr


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_up_names_each_processor_service_for_its_log_file(tmp_path: Path) -> None:
    from autoreduce.local import local_supervisor
    from autoreduce.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    supervisor = local_supervisor(settings, host="127.0.0.1", port=1, processors=2)

    processors = [s for s in supervisor.services if s.args[0] == "process"]
    assert [s.args for s in processors] == [
        ["process", "--name", "process-1"],
        ["process", "--name", "process-2"],
    ]


def test_plugins_approve_builtin_then_list_shows_them_approved_by_the_operator(
    tmp_path: Path,
) -> None:
    approved = autoreduce("plugins", "approve", "--builtin", cwd=tmp_path)
    listed = autoreduce("plugins", "list", "--local", "--json", cwd=tmp_path)

    assert approved.returncode == 0, approved.stderr
    assert "approved noop" in approved.stdout
    noop = {item["name"]: item for item in json.loads(listed.stdout)}["noop"]
    assert (noop["distribution"], noop["version"], noop["state"]) == (
        "autoreduce",
        __version__,
        "approved",
    )
    assert noop["approved_by"].startswith("cli:")


def test_plugins_revoke_local_then_list_for_people_shows_it_revoked(tmp_path: Path) -> None:
    revoked = autoreduce("plugins", "revoke", "noop", "--local", "--json", cwd=tmp_path)
    listed = autoreduce("plugins", "list", "--local", cwd=tmp_path)

    assert revoked.returncode == 0, revoked.stderr
    [noop] = json.loads(revoked.stdout)
    assert (noop["name"], noop["state"], noop["approved_by"]) == ("noop", "revoked", None)
    assert noop["decided_by"].startswith("cli:")
    [row] = [line for line in listed.stdout.splitlines() if " noop " in line]
    assert f"autoreduce {__version__}" in row and "revoked" in row


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["approve", "nope", "--local"], 1, "no plugin named nope is installed (installed: noop"),
        (["approve"], 2, "name a plugin, or give --builtin"),
        (["revoke"], 2, "Missing argument"),
        (["list", "--local", "--api-url", "http://h"], 2, "--local acts on this host"),
        (["list", "--api-url", "http://127.0.0.1:9"], 3, "cannot reach the API at http://127"),
        (["approve", "noop", "--api-url", "http://127.0.0.1:9"], 3, "cannot reach the API"),
    ],
)
def test_plugins_commands_refuse_bad_input_in_one_line(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    result = autoreduce("plugins", *args, cwd=tmp_path)

    assert result.returncode == code
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_up_runs_the_alert_evaluator_only_when_alerts_have_a_receiver(tmp_path: Path) -> None:
    from autoreduce.local import local_supervisor
    from autoreduce.settings import Settings

    def services(**alerts: object) -> list[list[str]]:
        settings = Settings(data_dir=tmp_path / "data", alerts=alerts)
        supervisor = local_supervisor(settings, host="127.0.0.1", port=1, processors=1)
        return [s.args for s in supervisor.services if s.name == "alerts"]

    assert services() == []
    assert services(webhooks=[{"url": "http://127.0.0.1:1/hook"}]) == [["alerts", "run"]]
    assert services(email={"smtp_host": "127.0.0.1"}) == [["alerts", "run"]]
