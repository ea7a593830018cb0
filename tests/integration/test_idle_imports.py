"""An idle API and an idle processor (noop only) hold none of the heavy libraries.

The processor holds none of the client commands' libraries either (requests, rich, yaml).

Each service is started for real (``python -m autoreduce api`` / ``process``) on a database
already at the schema's head, with a ``sitecustomize`` on ``PYTHONPATH`` that writes the
interpreter's ``sys.modules`` to a file on SIGUSR1. h5py, scipp and matplotlib load shared
libraries, so every descendant (the processor's fork server and its children) is also checked
through ``/proc/<pid>/maps``. See docs/memory.md for what each costs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from autoreduce.db import Database
from tests.facility import free_port
from tests.polling import wait_for

HEAVY = ("h5py", "numpy", "scipp", "matplotlib", "ldap3", "alembic")
"""Not imported by an idle service: file readers, drawing, LDAP, migrations (none due)."""
CLIENT_LIBRARIES = ("requests", "rich", "yaml")
"""Not imported by an idle processor: the client commands' HTTP, tables and pipeline files."""
SHARED_LIBRARIES = ("h5py", "scipp", "matplotlib")
"""Of those, the ones whose extension modules show in a process's memory map."""

SITECUSTOMIZE = """
import os, signal, sys

def _dump(_signum, _frame):
    path = os.path.join(os.environ["AUTOREDUCE_TEST_MODULES_DIR"], str(os.getpid()))
    with open(path + ".tmp", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
    os.replace(path + ".tmp", path)

signal.signal(signal.SIGUSR1, _dump)
"""


@pytest.fixture
def service_env(tmp_path: Path, database: Database) -> dict[str, str]:
    """The environment of a service on ``database`` (migrated, plugins approved)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    dumps = tmp_path / "modules"
    dumps.mkdir()
    archive = tmp_path / "archive"
    (archive / "NDXWISH" / "logs").mkdir(parents=True)
    config = tmp_path / "autoreduce.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'database_url = "{database.url}"\n'
        f'[archive]\nroot = "{archive}"\n'
        '[instruments.WISH]\nplugin = "noop"\n'
        'lastruns = "{root}/NDX{instrument}/logs/lastruns.txt"\n'
        'data = "{root}/NDX{instrument}/data/cycle_*/{instrument}{run_number:08d}.nxs"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    env |= {
        "AUTOREDUCE_CONFIG": str(config),
        "AUTOREDUCE_TEST_MODULES_DIR": str(dumps),
        "PYTHONPATH": os.pathsep.join([str(hooks), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    return env


@pytest.fixture
def start(service_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def run(*args: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{args[0]}.log", "wb")  # noqa: SIM115 (closed with the process)
        command = [sys.executable, "-m", "autoreduce", *args]
        process = subprocess.Popen(command, env=service_env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _alive(process: subprocess.Popen[bytes], log: Path) -> None:
    assert process.poll() is None, f"the service exited:\n{log.read_text()}"


def _modules(process: subprocess.Popen[bytes], dumps: Path) -> set[str]:
    """``sys.modules`` of the running ``process``, top-level names."""
    path = dumps / str(process.pid)
    process.send_signal(signal.SIGUSR1)
    wait_for(path.is_file, timeout_s=30, interval_s=0.05)
    return {name.split(".")[0] for name in path.read_text().split()}


def _mapped(pid: int) -> set[str]:
    """The heavy shared libraries mapped into ``pid`` and every descendant."""
    found: set[str] = set()
    parent = psutil.Process(pid)
    for member in [parent, *parent.children(recursive=True)]:
        try:
            maps = Path(f"/proc/{member.pid}/maps").read_text()
        except OSError:
            continue  # a child that just exited
        found |= {name for name in SHARED_LIBRARIES if f"/{name}" in maps}
    return found


def test_an_idle_api_imports_no_file_reader_ldap_drawing_or_alembic(
    start: object, service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    api = start("api", "--port", str(port))  # type: ignore[operator]

    def healthy() -> bool:
        _alive(api, tmp_path / "api.log")
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
        except requests.RequestException:
            return False

    wait_for(healthy, timeout_s=90, interval_s=0.2)
    modules = _modules(api, Path(service_env["AUTOREDUCE_TEST_MODULES_DIR"]))
    assert "fastapi" in modules  # the dump is the API's own
    assert sorted(modules & set(HEAVY)) == []
    assert _mapped(api.pid) == set()


def test_an_idle_noop_processor_imports_no_file_reader_drawing_alembic_or_client_library(
    start: object, service_env: dict[str, str], tmp_path: Path
) -> None:
    processor = start("process")  # type: ignore[operator]

    def serving() -> bool:  # its noop fork server is up: start-up is over
        _alive(processor, tmp_path / "process.log")
        return bool(psutil.Process(processor.pid).children())

    wait_for(serving, timeout_s=90, interval_s=0.2)
    modules = _modules(processor, Path(service_env["AUTOREDUCE_TEST_MODULES_DIR"]))
    assert "queue_processor" in modules
    assert sorted(modules & set(HEAVY)) == []
    assert sorted(modules & set(CLIENT_LIBRARIES)) == []  # the CLI loads `process` alone
    assert _mapped(processor.pid) == set()


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    """Services skip Alembic when the database is at this head: it must be Alembic's own."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from autoreduce.db.engine import MIGRATIONS, _head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert _head_revision() == ScriptDirectory.from_config(config).get_current_head()
