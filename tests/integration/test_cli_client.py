"""The ``autoreduce`` client commands against a real API: ``autoreduce up`` in a temp dir.

One facility for the module (instruments GEM and WISH on the fast ``noop`` plugin, public
reads, access tokens that last ``TOKEN_TTL_S``); an admin token made with ``autoreduce token
create`` against its database signs the writes, and OAuth2 clients made with ``autoreduce client
create`` sign them in the tests of the client credentials grant. Every command runs through
click's CliRunner with ``--json``, and its output is parsed.
"""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from sqlalchemy import select

from autoreduce.cli import main
from autoreduce.db import Database
from autoreduce.db.models import OAuthClient
from tests.facility import Facility, free_port, start_facility, stop_facility
from tests.polling import wait_for

EXPERIMENT = "2610001"  # what Facility.write_data puts in every data file
TOKEN_TTL_S = 2  # so that one command outlives its first access token


@dataclass
class Site:
    facility: Facility
    admin_token: str
    scientist_token: str  # WISH only


def _operator(facility: Facility, *args: str) -> str:
    """``autoreduce ARGS`` as an operator on the facility's host: its standard output."""
    command = [sys.executable, "-m", "autoreduce", *args]
    env = {"AUTOREDUCE_CONFIG": str(facility.root / "autoreduce.toml"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _token(facility: Facility, name: str, role: str, *instruments: str) -> str:
    scope = [arg for instrument in instruments for arg in ("--instrument", instrument)]
    return _operator(facility, "token", "create", "--name", name, "--role", role, *scope).strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    instruments = {"GEM": {"plugin": "noop"}, "WISH": {"plugin": "noop"}}
    facility = start_facility(
        tmp_path_factory.mktemp("facility"),
        instruments,
        processors=1,
        settings={"oauth_token_ttl_s": TOKEN_TTL_S},
    )
    try:
        for run_number in (1, 2, 3):
            facility.play("GEM", run_number)
            facility.wait_final("GEM", run_number)
        site = Site(
            facility,
            admin_token=_token(facility, "cli-admin", "admin"),
            scientist_token=_token(facility, "cli-wish", "scientist", "WISH"),
        )
        yield site
    finally:
        stop_facility(facility)


@dataclass(frozen=True)
class OAuth2Client:
    name: str
    client_id: str
    client_secret: str


def create_client(site: Site, name: str, role: str = "admin") -> OAuth2Client:
    """``autoreduce client create`` on the facility's database, its printed id and secret."""
    printed = _operator(site.facility, "client", "create", "--name", name, "--role", role)
    lines = dict(line.split(": ", 1) for line in printed.strip().splitlines())
    return OAuth2Client(name, lines["client_id"], lines["client_secret"])


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config-home"


def cli(
    site: Site,
    *args: str,
    config_home: Path | None = None,
    token: str | None = "admin",
    client: OAuth2Client | None = None,
    input: str | None = None,
) -> Result:
    """``autoreduce ARGS`` in-process, against the site's API with the admin token by default,
    or signed in as an OAuth2 ``client`` (from the environment)."""
    environment: dict[str, str | None] = {
        "AUTOREDUCE_API_URL": site.facility.api_url,
        "AUTOREDUCE_API_TOKEN": None if client else site.admin_token if token == "admin" else token,
        "AUTOREDUCE_API_CLIENT_ID": client.client_id if client else None,
        "AUTOREDUCE_API_CLIENT_SECRET": client.client_secret if client else None,
        "XDG_CONFIG_HOME": str(config_home or site.facility.root / "no-config"),
    }
    return CliRunner().invoke(main, list(args), env=environment, input=input)


def cli_json(site: Site, *args: str, **options: Any) -> Any:
    result = cli(site, *args, "--json", **options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def wait_version_final(site: Site, instrument: str, run_number: int, version: int) -> str:
    def final() -> str | None:
        run = cli_json(site, "runs", "show", instrument, str(run_number))
        status = str(run["versions"][version]["status"])
        return status if status in ("Completed", "Error", "Skipped", "Cancelled") else None

    return wait_for(final, timeout_s=90, interval_s=0.2)


def test_runs_list_json_is_the_apis_page_of_runs(site: Site) -> None:
    page = cli_json(site, "runs", "list", "--instrument", "GEM", "--run-max", "3")

    assert {(run["run_number"], run["run_version"]) for run in page["items"]} >= {
        (1, 0),
        (2, 0),
        (3, 0),
    }
    assert all(run["instrument"] == "GEM" for run in page["items"])


def test_runs_list_for_people_is_a_table(site: Site) -> None:
    result = cli(site, "runs", "list", "--instrument", "GEM", "--status", "Completed")

    assert result.exit_code == 0, result.output
    assert "GEM 1" in result.stdout and "Completed" in result.stdout


def test_runs_show_json_has_every_version(site: Site) -> None:
    run = cli_json(site, "runs", "show", "GEM", "1")

    assert run["instrument"] == "GEM" and run["run_number"] == 1
    assert run["versions"][0]["status"] == "Completed"


def test_runs_rerun_dry_run_shows_the_difference_and_queues_nothing(site: Site) -> None:
    before = cli_json(site, "runs", "show", "GEM", "2")["versions"]

    plan = cli_json(site, "runs", "rerun", "GEM", "2", "--var", "sleep_s=0.01", "--dry-run")

    assert plan["differences"]["sleep_s"]["to"] == 0.01
    assert plan["run_version"] == len(before)
    assert cli_json(site, "runs", "show", "GEM", "2")["versions"] == before


def test_runs_rerun_makes_a_new_version_that_completes(site: Site) -> None:
    run = cli_json(
        site, "runs", "rerun", "GEM", "3", "--var", "log_lines=3", "--reason", "from the cli"
    )

    assert run["status"] == "Queued" and run["description"] == "from the cli"
    assert wait_version_final(site, "GEM", 3, run["run_version"]) == "Completed"


def test_runs_log_follow_prints_the_lines_and_the_final_state(site: Site) -> None:
    run = cli_json(
        site, "runs", "rerun", "GEM", "1", "--var", "log_lines=4", "--var", "sleep_s=0.5"
    )

    log = cli_json(site, "runs", "log", "GEM", "1", "--version", str(run["run_version"]), "-f")

    assert log["status"] == "Completed"
    assert len(log["lines"]) >= 4
    assert [line["seq"] for line in log["lines"]] == sorted(line["seq"] for line in log["lines"])


def test_runs_log_of_a_finished_run_is_its_text(site: Site) -> None:
    log = cli_json(site, "runs", "log", "GEM", "1", "--version", "0")

    assert isinstance(log["text"], str) and log["text"]


def test_pause_holds_a_run_that_cancel_then_ends_and_resume_unpauses(site: Site) -> None:
    paused = cli_json(site, "instruments", "pause", "WISH")
    assert paused["paused"] is True
    try:
        site.facility.play("WISH", 1)
        held = wait_for(lambda: site.facility.run("WISH", 1), timeout_s=60, interval_s=0.1)
        assert held["status"] == "Queued"

        cancelled = cli_json(site, "runs", "cancel", "WISH", "1", "--reason", "not needed")

        assert cancelled["status"] == "Cancelled"
        assert cancelled["cancel_reason"] == "not needed"
    finally:
        resumed = cli_json(site, "instruments", "resume", "WISH")
    assert resumed["paused"] is False


def test_instruments_list_json_lists_the_configured_instruments(site: Site) -> None:
    items = cli_json(site, "instruments", "list")

    assert [item["name"] for item in items] == ["GEM", "WISH"]
    assert {item["plugin"] for item in items} == {"noop"}


def test_rules_add_list_delete(site: Site) -> None:
    rule = cli_json(
        site, "rules", "add", "GEM", "--from-run", "100", "--var", "sleep_s=0.02", "--reason", "x"
    )
    assert rule["variables"] == {"sleep_s": 0.02} and rule["from_run"] == 100

    assert rule["id"] in [r["id"] for r in cli_json(site, "rules", "list", "GEM")]

    deleted = cli_json(site, "rules", "delete", "GEM", str(rule["id"]))
    assert deleted == {"instrument": "GEM", "id": rule["id"], "deleted": True}
    assert rule["id"] not in [r["id"] for r in cli_json(site, "rules", "list", "GEM")]


def test_experiments_show_json_has_its_runs(site: Site) -> None:
    experiment = cli_json(site, "experiments", "show", EXPERIMENT)

    assert experiment["ref"] == EXPERIMENT
    assert "GEM" in experiment["instruments"]
    assert experiment["runs"]["total"] >= 3


def test_failures_groups_an_error_made_on_purpose(site: Site) -> None:
    run = cli_json(site, "runs", "rerun", "GEM", "2", "--var", "fault=raise")
    assert wait_version_final(site, "GEM", 2, run["run_version"]) == "Error"

    page = cli_json(site, "failures", "--instrument", "GEM", "--category", "plugin")

    assert page["total"] >= 1
    assert any(
        example["run_number"] == 2 for group in page["items"] for example in group["examples"]
    )


def test_reruns_dry_run_then_a_batch_followed_to_its_end(site: Site) -> None:
    plan = cli_json(site, "reruns", "create", "--instrument", "GEM", "--range", "1..3", "--dry-run")
    assert plan["dry_run"] is True and plan["id"] is None
    assert sorted(run["run_number"] for run in plan["runs"]) == [1, 2, 3]

    result = cli(site, "reruns", "create", "--instrument", "GEM", "--runs", "1,3", "--reason", "b")

    assert result.exit_code == 0, result.output
    assert "runs ended" in result.stderr  # the progress display
    batch_id = int(result.stdout.split("batch ", 1)[1].split()[0])
    batch = cli_json(site, "reruns", "show", str(batch_id))
    assert {run["status"] for run in batch["runs"]} == {"Completed"}
    assert sorted(run["run_number"] for run in batch["runs"]) == [1, 3]


def test_reruns_create_needs_exactly_one_selection(site: Site) -> None:
    result = cli(site, "reruns", "create", "--instrument", "GEM", "--runs", "1", "--range", "1..2")

    assert result.exit_code == 2
    assert "exactly one of" in result.stderr


def test_unknown_run_is_exit_1_with_the_apis_detail(site: Site) -> None:
    result = cli(site, "runs", "show", "GEM", "999999")

    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: run 'GEM' 999999 not found"


def test_unreachable_api_is_exit_3_naming_the_url(site: Site) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = cli(site, "instruments", "list", "--api-url", url)

    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert url in result.stderr and "Traceback" not in result.output


def test_bad_token_is_exit_4_and_never_printed(site: Site) -> None:
    result = cli(site, "instruments", "list", token="not-a-real-token-3141")

    assert result.exit_code == 4
    assert "unknown or revoked" in result.stderr
    assert "3141" not in result.output


def test_a_write_without_credentials_is_exit_4_saying_how_to_sign_in(site: Site) -> None:
    result = cli(site, "instruments", "pause", "GEM", token=None)

    assert result.exit_code == 4
    assert "autoreduce login" in result.stderr


def test_a_scientist_of_another_instrument_is_exit_4(site: Site) -> None:
    result = cli(site, "runs", "rerun", "GEM", "1", token=site.scientist_token)

    assert result.exit_code == 4
    assert "may not act on instrument 'GEM'" in result.stderr


def test_login_stores_the_token_in_a_0600_file_that_later_commands_use(
    site: Site, config_home: Path
) -> None:
    result = cli(
        site,
        "login",
        "--api-url",
        site.facility.api_url,
        "--json",
        token=None,
        config_home=config_home,
        input=f"{site.admin_token}\n",
    )

    assert result.exit_code == 0, result.output
    assert site.admin_token not in result.output  # the prompt does not echo it
    path = config_home / "autoreduce" / "client.toml"
    assert json.loads(result.stdout)["config"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signed_in = CliRunner().invoke(
        main,
        ["instruments", "resume", "GEM", "--json"],
        env={
            "XDG_CONFIG_HOME": str(config_home),
            "AUTOREDUCE_API_URL": None,
            "AUTOREDUCE_API_TOKEN": None,
        },
    )
    assert signed_in.exit_code == 0, signed_in.output
    assert json.loads(signed_in.stdout)["paused"] is False


def test_login_with_a_refused_token_writes_nothing(site: Site, config_home: Path) -> None:
    result = cli(site, "login", "--token", "wrong-token", token=None, config_home=config_home)

    assert result.exit_code == 4
    assert not (config_home / "autoreduce" / "client.toml").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "show", "GEM", "1"],
        ["runs", "log", "GEM", "1", "--version", "0"],
        ["runs", "rerun", "GEM", "1", "--dry-run", "--var", "sleep_s=0.03"],
        ["failures"],
        ["instruments", "list"],
        ["rules", "list", "GEM"],
        ["experiments", "show", EXPERIMENT],
        ["reruns", "create", "--instrument", "GEM", "--runs", "1", "--dry-run"],
    ],
)
def test_every_read_draws_for_people_without_a_traceback(site: Site, command: list[str]) -> None:
    result = cli(site, *command)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


# --- plugins, through the API -----------------------------------------------------------------


def test_plugins_list_json_is_each_plugin_at_the_apis_installed_version(site: Site) -> None:
    items = {item["name"]: item for item in cli_json(site, "plugins", "list")}

    noop = items["noop"]
    assert (noop["distribution"], noop["state"], noop["instruments"]) == (
        "autoreduce",
        "approved",
        ["GEM", "WISH"],
    )
    assert noop["approved_by"].startswith("cli:")  # start_facility's `approve --builtin`
    assert items["sans"]["instruments"] == []


def test_plugins_revoke_holds_a_new_run_that_approve_then_lets_through(site: Site) -> None:
    try:
        [revoked] = cli_json(site, "plugins", "revoke", "noop")
        assert (revoked["name"], revoked["state"], revoked["approved_by"]) == (
            "noop",
            "revoked",
            None,
        )
        assert revoked["decided_by"] == "cli-admin"
        site.facility.play("GEM", 4)
        held = wait_for(
            lambda: (run := site.facility.run("GEM", 4)) and run["message"] and run,
            timeout_s=60,
            interval_s=0.1,
        )
        assert (held["status"], held["message"]) == (
            "Queued",
            f"held: plugin noop {revoked['version']} is revoked",
        )
    finally:
        [approved] = cli_json(site, "plugins", "approve", "noop")
    assert (approved["state"], approved["approved_by"]) == ("approved", "cli-admin")
    assert site.facility.wait_final("GEM", 4)["status"] == "Completed"


def test_plugins_list_for_people_is_a_table(site: Site) -> None:
    result = cli(site, "plugins", "list")

    assert result.exit_code == 0, result.output
    assert "noop" in result.stdout and "approved" in result.stdout
    assert "plugin(s)" in result.stdout


def test_plugins_approve_of_an_unknown_plugin_is_exit_1_naming_the_installed(site: Site) -> None:
    result = cli(site, "plugins", "approve", "nope")

    assert result.exit_code == 1
    assert "no plugin named 'nope' is installed (installed: noop" in result.stderr


def test_plugins_approve_by_a_scientist_is_exit_4(site: Site) -> None:
    result = cli(site, "plugins", "approve", "noop", token=site.scientist_token)

    assert result.exit_code == 4
    assert len(result.stderr.strip().splitlines()) == 1


# --- a real OAuth2 client: `autoreduce client create`, then the client credentials grant ------


def audit_actors(site: Site, action: str, instrument: str) -> list[str]:
    response = requests.get(
        f"{site.facility.api_url}/api/v1/audit",
        params={"action": action, "instrument": instrument},
        headers={"Authorization": f"Bearer {site.admin_token}"},
        timeout=10,
    )
    response.raise_for_status()
    return [item["actor"] for item in response.json()["items"]]


def tokens_issued(site: Site, client: OAuth2Client) -> int:
    """How many access tokens the API's log says it issued to ``client``."""
    said = f"issued an access token to client {client.name} ({client.client_id})"
    return (site.facility.root / "data" / "logs" / "api.jsonl").read_text().count(said)


def test_a_client_from_client_create_pauses_and_resumes_from_the_environment(site: Site) -> None:
    robot = create_client(site, "cli-robot")

    paused = cli(site, "instruments", "pause", "WISH", "--json", client=robot)
    resumed = cli(site, "instruments", "resume", "WISH", "--json", client=robot)

    assert paused.exit_code == 0, paused.output
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(paused.stdout)["paused"] is True
    assert json.loads(resumed.stdout)["paused"] is False
    assert "client:cli-robot" in audit_actors(site, "instrument.pause", "WISH")
    assert "client:cli-robot" in audit_actors(site, "instrument.resume", "WISH")
    assert robot.client_secret not in paused.output + resumed.output


def test_a_secret_with_reserved_characters_is_encoded_as_the_token_endpoint_decodes(
    site: Site,
) -> None:
    robot = create_client(site, "cli-odd-secret")
    odd = OAuth2Client(robot.name, robot.client_id, "a:b+c%20d/e f=é?")  # RFC 6749 allows any
    database = Database(f"sqlite:///{site.facility.root / 'data' / 'autoreduce.db'}")
    try:
        with database.session() as session:
            row = session.scalars(
                select(OAuthClient).where(OAuthClient.client_id == robot.client_id)
            ).one()
            row.secret_hash = hashlib.sha256(odd.client_secret.encode()).hexdigest()
    finally:
        database.dispose()

    result = cli(site, "instruments", "resume", "GEM", "--json", client=odd)

    assert result.exit_code == 0, result.output
    assert "client:cli-odd-secret" in audit_actors(site, "instrument.resume", "GEM")


def test_a_command_that_outlives_its_access_token_fetches_another(site: Site) -> None:
    robot = create_client(site, "cli-long")
    before = tokens_issued(site, robot)

    # the batch's run sleeps past two token lifetimes, and the command follows it to its end
    result = cli(
        site, "reruns", "create", "--instrument", "GEM", "--runs", "1",
        "--var", f"sleep_s={3 * TOKEN_TTL_S}", "--reason", "outlives a token", client=robot,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    batch_id = int(result.stdout.split("batch ", 1)[1].split()[0])
    batch = cli_json(site, "reruns", "show", str(batch_id), client=robot)
    assert [run["status"] for run in batch["runs"]] == ["Completed"]
    assert tokens_issued(site, robot) - before >= 2


def test_a_wrong_client_secret_is_exit_4_and_never_printed(site: Site) -> None:
    robot = create_client(site, "cli-wrong")
    wrong = OAuth2Client(robot.name, robot.client_id, "ars_not-the-secret-2718")

    result = cli(site, "instruments", "pause", "GEM", client=wrong)

    assert result.exit_code == 4
    assert "refused the client credentials" in result.stderr
    assert "2718" not in result.output and robot.client_secret not in result.output


def test_login_with_a_client_then_a_write_uses_the_stored_credentials(
    site: Site, config_home: Path
) -> None:
    robot = create_client(site, "cli-login")

    login = cli(
        site, "login", "--api-url", site.facility.api_url, "--client-id", robot.client_id,
        "--client-secret", robot.client_secret, "--json", token=None, config_home=config_home,
    )  # fmt: skip

    assert login.exit_code == 0, login.output
    assert json.loads(login.stdout)["credentials"] == "an OAuth2 client"
    assert robot.client_secret not in login.output
    path = config_home / "autoreduce" / "client.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signed_in = CliRunner().invoke(
        main,
        ["rules", "add", "WISH", "--from-run", "900", "--var", "sleep_s=0.01", "--json"],
        env={
            "XDG_CONFIG_HOME": str(config_home),
            "AUTOREDUCE_API_URL": None,
            "AUTOREDUCE_API_TOKEN": None,
            "AUTOREDUCE_API_CLIENT_ID": None,
            "AUTOREDUCE_API_CLIENT_SECRET": None,
        },
    )
    assert signed_in.exit_code == 0, signed_in.output
    rule = json.loads(signed_in.stdout)
    assert rule["created_by"] == "client:cli-login"
    cli_json(site, "rules", "delete", "WISH", str(rule["id"]))
