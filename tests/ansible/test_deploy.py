"""The real playbooks (`make deploy-all`, `make restart-queue-processor`) run against this machine
into a temporary prefix: its own paths, ports, MariaDB database and account, ActiveMQ instance
and supervisord, so the suite's own services are never touched. Elasticsearch and Kibana are
local servers speaking their wire protocol (tests/fake_elasticsearch.py), started by the module:
their URLs are in the vault, so the monitoring and log_shipper roles run too. Outputs go to the
project's SeaweedFS (storage = "s3://...", its keys in the vault) and the processors get Slurm's
client and SLURM_CONF. One deployment is shared by the module's tests, in order; deploy and
re-deploy times are printed (`pytest -s`)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import yaml

from tests.facility import Facility, free_port
from tests.fake_elasticsearch import FakeElasticsearch
from tests.integration.test_object_store import S3_ENDPOINT, SERVICES_DIR, keys_in, s3_client
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (VENV_BIN / "ansible-playbook").exists(), reason="ansible-core is not installed"
)


@dataclass
class Deployment:
    root: Path
    inventory: Path
    vault_password_file: Path
    prefix: Path
    facility: Facility
    db_name: str
    elasticsearch: FakeElasticsearch
    kibana: FakeElasticsearch
    es_password: str
    s3_keys: dict[str, str]
    bucket: str

    @property
    def settings_file(self) -> Path:
        return self.inventory / "group_vars" / "all" / "main.yml"

    def run_make(
        self, target: str, *make_args: str, ansible_args: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """``make TARGET`` against this deployment's inventory (the vault's secrets never shown)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
        args = f"--vault-password-file={self.vault_password_file} {ansible_args}"
        done = subprocess.run(
            ["make", "--no-print-directory", target, f"INVENTORY={self.inventory}",
             f"ANSIBLE_ARGS={args}", *make_args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        for secret in (self.es_password, self.s3_keys["access"], self.s3_keys["secret"]):
            assert secret not in done.stdout + done.stderr  # no_log keeps the vault's secrets
        return done

    def make(self, target: str) -> str:
        """``make TARGET`` against this deployment's inventory; its output (it must succeed)."""
        done = self.run_make(target)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        return done.stdout

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        supervisor = self.prefix / "supervisor"
        command = [str(supervisor / "venv/bin/supervisorctl"), "-c"]
        command += [str(supervisor / "supervisord.conf"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def pids(self) -> dict[str, int]:
        """Program → PID of everything supervisord runs."""
        status = self.supervisorctl("status").stdout
        pattern = r"^(?:\S+:)?(\S+)\s+RUNNING\s+pid (\d+)"  # group:program for numprocs
        return {m[1]: int(m[2]) for m in re.finditer(pattern, status, re.M)}

    def autoreduce(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The deployed ``autoreduce`` with the deployment's configuration and secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
        command = [str(self.prefix / "bin" / "autoreduce"), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def changed_count(output: str) -> int:
    recap = re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1])
    assert recap, output[-3000:]
    return sum(int(n) for n in recap)


def _write_inventory(root: Path, settings: dict[str, object]) -> Path:
    inventory = root / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    groups = ["database", "broker", "web", "detection", "processors", "monitoring", "backup"]
    hosts = {
        "all": {
            "children": {group: {"hosts": {"localhost": {}}} for group in [*groups, "retention"]},
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings))
    return inventory


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    services = [str(REPO / "scripts/services.sh"), "start", "mariadb", "activemq", "seaweedfs"]
    subprocess.run(services, check=True)
    s3 = json.loads((SERVICES_DIR / "seaweedfs" / "s3.json").read_text())
    credentials = s3["identities"][0]["credentials"][0]
    s3_keys = {"access": credentials["accessKey"], "secret": credentials["secretKey"]}
    # Not under pytest's basetemp: a concurrent pytest session removes old basetemps, and this
    # deployment's services run from here for minutes.
    root = Path(tempfile.mkdtemp(prefix="autoreduce-deploy-", dir="/var/tmp"))
    prefix = root / "prefix"
    api_port = free_port()
    db_name = f"ar_deploy_{uuid.uuid4().hex[:8]}"
    bucket = db_name.replace("_", "-")  # the processors create it
    slurm_conf = root / "slurm" / "slurm.conf"  # only its path reaches the processors
    slurm_conf.parent.mkdir()
    slurm_conf.write_text("# the cluster's configuration\n")
    instruments = {"MARI": {"plugin": "noop"}}
    facility = Facility(root=root, api_url=f"http://127.0.0.1:{api_port}", instruments=instruments)
    facility.bump("MARI", 0)
    settings: dict[str, object] = {
        "autoreduce_prefix": str(prefix),
        "autoreduce_user": "",  # the connecting user: no system account in a test
        "autoreduce_activemq_user": "",
        "autoreduce_wheel": str(REPO / "dist" / "autoreduce-0.1.0-py3-none-any.whl"),
        "autoreduce_api_port": api_port,
        "autoreduce_api_url": facility.api_url,
        "autoreduce_db_name": db_name,
        "autoreduce_db_user": db_name,
        "autoreduce_broker_stomp_port": free_port(),
        "autoreduce_activemq_openwire_port": free_port(),
        "autoreduce_archive_root": str(root / "archive"),
        "autoreduce_cron_dir": str(prefix / "cron.d"),
        "autoreduce_processors_per_host": 2,
        "autoreduce_instruments": {
            "MARI": {
                "plugin": "noop",
                "lastruns": "{root}/NDX{instrument}/logs/lastruns.txt",
                "data": "{root}/NDX{instrument}/data/cycle_*/{instrument}{run_number:08d}.nxs",
                "variables": {"sleep_s": 4},
            }
        },
        "autoreduce_settings": {"public_read": True, "shutdown_grace_s": 20},
        "autoreduce_storage": f"s3://{bucket}/outputs",
        "autoreduce_s3_endpoint": S3_ENDPOINT,
        "autoreduce_slurm_conf": str(slurm_conf),
    }
    inventory = _write_inventory(root, settings)
    (prefix / "cron.d").mkdir(parents=True)
    # The secrets, in a real Ansible Vault file encrypted with a password file.
    elasticsearch, kibana = FakeElasticsearch(), FakeElasticsearch()
    es_password = secrets.token_urlsafe(18)
    es_url = f"http://shipper:{es_password}@127.0.0.1:{elasticsearch.port}"
    password_file = root / "vault-password"
    password_file.write_text(secrets.token_urlsafe(24) + "\n")
    vault = inventory / "group_vars" / "all" / "vault.yml"
    vault.write_text(
        yaml.safe_dump(
            {
                "vault_autoreduce_db_password": secrets.token_urlsafe(18),
                "vault_autoreduce_broker_password": secrets.token_urlsafe(18),
                "vault_autoreduce_elasticsearch_url": es_url,
                "vault_autoreduce_kibana_url": kibana.url,
                "vault_autoreduce_s3_access_key": s3_keys["access"],
                "vault_autoreduce_s3_secret_key": s3_keys["secret"],
            }
        )
    )
    subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file),
         str(vault)],
        check=True, capture_output=True, env={**os.environ, "ANSIBLE_HOME": str(root / ".ansible")},
    )  # fmt: skip
    assert vault.read_text().startswith("$ANSIBLE_VAULT")
    deployment = Deployment(
        root, inventory, password_file, prefix, facility, db_name, elasticsearch, kibana,
        es_password, s3_keys, bucket,
    )  # fmt: skip
    try:
        yield deployment
    finally:
        deployment.supervisorctl("shutdown")  # every program (broker included), then itself
        wait_for(lambda: deployment.supervisorctl("pid").returncode != 0, timeout_s=120)
        connection = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{db_name}`")
            cursor.execute(f"DROP USER IF EXISTS '{db_name}'@'%'")
        connection.close()
        elasticsearch.close()
        kibana.close()
        with contextlib.suppress(Exception):  # SeaweedFS deletes a bucket with its contents
            s3_client(s3_keys).delete_bucket(Bucket=bucket)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(deployment: Deployment) -> Deployment:
    started = time.monotonic()
    deployment.make("deploy-all")
    print(f"\nfirst deploy-all: {time.monotonic() - started:.0f} s")
    return deployment


PROGRAMS = {
    "autoreduce-activemq",
    "autoreduce-api",
    "autoreduce-detect",
    "autoreduce-process-1",
    "autoreduce-process-2",
    "autoreduce-ship-logs",
}


def test_deploy_all_runs_every_service_under_supervisord_and_healthy(deployed: Deployment) -> None:
    assert deployed.supervisorctl("status").returncode == 0  # 0: every program runs
    assert set(deployed.pids()) == PROGRAMS
    import requests

    assert requests.get(f"{deployed.facility.api_url}/health", timeout=10).status_code == 200
    etc = deployed.prefix / "etc"
    for secret_file in ("autoreduce.env", "autoreduce.toml", "detector.env", "processor.env"):
        assert (etc / secret_file).stat().st_mode & 0o777 == 0o600
    toml = (etc / "autoreduce.toml").read_text()
    assert "vault_" not in toml
    assert f'storage = "s3://{deployed.bucket}/outputs"' in toml
    assert deployed.s3_keys["secret"] not in toml and deployed.s3_keys["access"] not in toml
    env = (etc / "autoreduce.env").read_text()
    assert f"AUTOREDUCE_S3_SECRET_KEY={deployed.s3_keys['secret']}" in env
    assert f"AUTOREDUCE_S3_ACCESS_KEY={deployed.s3_keys['access']}" in env
    assert f"SLURM_CONF={deployed.root}/slurm/slurm.conf" in (etc / "processor.env").read_text()
    program = (deployed.prefix / "supervisor/conf.d/autoreduce-process.conf").read_text()
    assert f"{etc}/autoreduce.env {etc}/processor.env --" in program  # the processors only
    api = (deployed.prefix / "supervisor/conf.d/autoreduce-api.conf").read_text()
    assert "processor.env" not in api
    assert shutil.which("scontrol")  # the role's slurm-client package


def test_a_run_written_to_lastruns_is_completed_through_the_deployed_services(
    deployed: Deployment,
) -> None:
    deployed.facility.play("MARI", 1)
    run = deployed.facility.wait_final("MARI", 1, timeout_s=180)
    assert run["status"] == "Completed", run
    env = (deployed.prefix / "etc" / "autoreduce.env").read_text()
    assert "mysql+pymysql://" in env and "stomp://" in env  # MariaDB and ActiveMQ, not SQLite
    published = keys_in(deployed.s3_keys, deployed.bucket)  # the processors used the vault keys
    assert any(key.startswith("outputs/runs/MARI/1/") for key in published), published


def test_the_monitoring_role_loaded_the_template_policy_and_kibana_objects(
    deployed: Deployment,
) -> None:
    from autoreduce import observability

    policy = deployed.elasticsearch.policies["autoreduce-logs"]["policy"]
    assert policy["phases"]["warm"]["min_age"] == "7d"  # the role's defaults: 7 hot days
    assert policy["phases"]["delete"]["min_age"] == "90d"  # and 90 before deletion
    template = deployed.elasticsearch.templates["autoreduce-logs"]
    assert template["index_patterns"] == ["autoreduce-logs*"]
    assert len(deployed.kibana.saved_objects) == len(observability.saved_objects())
    assert deployed.kibana.saved_objects  # Kibana received the dashboard and its searches


def test_the_shipper_sends_the_completed_runs_log_records(deployed: Deployment) -> None:
    shipper = deployed.prefix / "etc" / "shipper.env"
    assert shipper.stat().st_mode & 0o777 == 0o600
    assert deployed.es_password not in (deployed.prefix / "etc" / "autoreduce.toml").read_text()

    def run_records() -> list[dict[str, object]]:
        with deployed.elasticsearch.lock:
            docs = list(deployed.elasticsearch.docs.values())
        return [
            doc for doc in docs
            if (doc.get("autoreduce") or {}).get("instrument") == "MARI"
            and doc["autoreduce"].get("run_number") == 1
        ]  # fmt: skip

    records = wait_for(run_records, timeout_s=120)
    assert all("message" in record and "@timestamp" in record for record in records)
    assert deployed.es_password not in json.dumps(list(deployed.elasticsearch.docs.values()))


def test_a_second_deploy_all_changes_nothing(deployed: Deployment) -> None:
    started = time.monotonic()
    output = deployed.make("deploy-all")
    print(f"\nre-deploy-all: {time.monotonic() - started:.0f} s")
    assert changed_count(output) == 0, output[-6000:]


def test_s3_keys_in_clear_in_group_vars_stop_the_deploy(deployed: Deployment) -> None:
    in_clear = secrets.token_urlsafe(18)
    extra = deployed.root / "keys-in-clear.yml"
    extra.write_text(yaml.safe_dump({"autoreduce_settings": {"s3_secret_key": in_clear}}))
    done = deployed.run_make(
        "deploy-queue-processor", "CHECK=1", ansible_args=f"--extra-vars=@{extra}"
    )
    assert done.returncode != 0, done.stdout[-3000:]
    assert "put them in the vault as vault_autoreduce_s3_access_key" in done.stdout, done.stdout
    assert in_clear not in done.stdout + done.stderr


def test_changing_one_setting_restarts_only_the_services_that_read_it(
    deployed: Deployment,
) -> None:
    before = deployed.pids()
    settings = yaml.safe_load(deployed.settings_file.read_text())
    settings["autoreduce_settings"]["shutdown_grace_s"] = 25  # read by processors only
    deployed.settings_file.write_text(yaml.safe_dump(settings))
    deployed.make("deploy-all")
    after = deployed.pids()
    assert set(after) == PROGRAMS
    restarted = {name for name in PROGRAMS if after[name] != before[name]}
    assert restarted == {"autoreduce-process-1", "autoreduce-process-2"}
    program = (deployed.prefix / "supervisor/conf.d/autoreduce-process.conf").read_text()
    assert "stopwaitsecs=30" in program  # the new grace, plus 5 s before KILL


def test_restart_queue_processor_loses_no_run_in_hand(deployed: Deployment) -> None:
    facility = deployed.facility
    facility.play("MARI", 2)  # sleeps 4 s: in hand when the processors get SIGTERM

    def processing() -> bool:
        run = facility.run("MARI", 2)
        return run is not None and run["status"] == "Processing"

    wait_for(processing, timeout_s=120, interval_s=0.1)
    before = deployed.pids()
    deployed.make("restart-queue-processor")
    after = deployed.pids()
    for name in ("autoreduce-process-1", "autoreduce-process-2"):
        assert after[name] != before[name]
    run = facility.wait_final("MARI", 2, timeout_s=180)
    assert run["status"] == "Completed", run


def test_the_backup_job_dump_restores_and_verifies_and_a_corrupted_dump_fails(
    deployed: Deployment, tmp_path: Path
) -> None:
    job = subprocess.run(
        [str(deployed.prefix / "bin" / "autoreduce-backup")],
        capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")},
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert "restored and verified" in job.stdout
    backups = deployed.prefix / "backups"
    dump = next(p for p in backups.iterdir() if p.name.endswith(".sql.gz"))
    corrupted = backups / dump.name.replace("autoreduce-", "autoreduce-corrupted-")
    text = gzip.decompress(dump.read_bytes())
    corrupted.write_bytes(gzip.compress(text.replace(b"INSERT INTO", b"INSERT INTO_", 1)))
    manifest = dump.with_name(dump.name.replace(".sql.gz", ".manifest.json"))
    shutil.copy(manifest, corrupted.with_name(corrupted.name.replace(".sql.gz", ".manifest.json")))
    verified = deployed.autoreduce("db", "restore", "--verify", str(corrupted), "--json")
    assert verified.returncode == 1, verified.stdout + verified.stderr


def test_cleanup_dry_run_agrees_with_the_real_run(deployed: Deployment) -> None:
    retention = str(deployed.prefix / "bin" / "autoreduce-retention")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}

    def report(*args: str) -> dict[str, object]:
        done = subprocess.run(
            [retention, "--older-than", "1d", "--json", *args],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        document: dict[str, object] = json.loads(done.stdout)
        return document

    # The runs reduced above finished minutes ago: make them two days old, then clean a day's.
    connection = pymysql.connect(host="127.0.0.1", user="root", database=deployed.db_name)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE reduction_runs SET finished_at = finished_at - INTERVAL 2 DAY"
            " WHERE finished_at IS NOT NULL"
        )
    connection.commit()
    connection.close()
    planned = report("--dry-run")
    done = report()
    keys = ("run_versions", "file_count", "bytes", "log_lines", "object_count", "object_bytes")
    assert {k: planned[k] for k in keys} == {k: done[k] for k in keys}
    # The completed runs' logs were there to remove: in the object store, with the vault's keys.
    assert planned["object_count"], planned
    again = report("--dry-run")
    assert again["file_count"] == again["object_count"] == 0, again
