"""A facility of real ``autoreduce`` processes on a fresh database, torn down without a trace.

:func:`fresh_database` makes an SQLite file or a new MariaDB database ``autoreduce_bench_<hex>``
(dropped afterwards). :class:`Services` starts each subprocess in its own session and stops every
one of them on exit — normal, exception or Ctrl-C — SIGTERM first, SIGKILL to the whole group
after a grace period. :class:`Facility` writes the TOML configuration of one instrument (or a
few) on the ``noop`` plugin in a temporary archive and starts ``autoreduce api``, ``detect`` and
``process``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import requests
from sqlalchemy import Engine, create_engine, make_url, text

from autoreduce import polling
from autoreduce.db import Database

MYSQL_SERVER = os.environ.get("AUTOREDUCE_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
INSTRUMENT = "BENCH"
CYCLE = "cycle_26_1"
STOP_TIMEOUT_S = 20.0
DatabaseKind = Literal["sqlite", "mariadb"]
T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not run (a service failed to start, a deadline passed)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def wait_for(
    condition: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.05, what: str
) -> T:
    """The core's :func:`autoreduce.polling.wait_for`, failing with a :class:`BenchError`."""
    try:
        return polling.wait_for(condition, timeout_s=timeout_s, interval_s=interval_s, what=what)
    except polling.WaitTimeout as error:
        raise BenchError(str(error)) from None


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, for a table's note."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:limit]


def wait_for_mariadb(timeout_s: float = 30.0) -> None:
    """Wait for the MariaDB server to answer (another suite may be restarting it)."""
    port = make_url(MYSQL_SERVER).port or 3306
    wait_for(lambda: port_open(port), timeout_s=timeout_s, interval_s=0.2, what="MariaDB")


@contextlib.contextmanager
def fresh_database(kind: DatabaseKind, work_dir: Path, name: str = "") -> Iterator[str]:
    """The URL of a new, migrated database; a MariaDB one is dropped on exit.

    A MariaDB database is ``autoreduce_bench_<random>``, or ``name`` (dropped first if a run
    that was killed left it behind).
    """
    if kind == "sqlite":
        url = f"sqlite:///{work_dir / 'autoreduce.db'}"
        _migrate(url)
        yield url
        return
    wait_for_mariadb()
    name = name or f"autoreduce_bench_{uuid.uuid4().hex[:12]}"
    server = create_engine(MYSQL_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        url = f"{MYSQL_SERVER}/{name}?charset=utf8mb4"
        _migrate(url)
        yield url
    finally:
        _drop_database(server, name)
        server.dispose()


def _drop_database(server: Engine, name: str, timeout_s: float = 60.0) -> None:
    """Drop ``name``, retrying while the server restarts; say so if it cannot be dropped."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with server.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            return
        except Exception as error:
            if time.monotonic() > deadline:
                print(f"could not drop the database {name}: {one_line(error)}", file=sys.stderr)
                return
            time.sleep(1.0)


def _migrate(url: str) -> None:
    """Create the schema and approve the built-in plugins the benchmarks reduce with."""
    from autoreduce.audit import Actor
    from autoreduce.plugin_approvals import approve_builtin
    from autoreduce.plugin_manager import installed_plugins

    database = Database(url)
    try:
        database.upgrade()
        approve_builtin(database, installed_plugins(), Actor("bench", "operator"))
    finally:
        database.dispose()


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Services:
    """Every subprocess one benchmark starts; all stopped by :meth:`close` (also on Ctrl-C)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Service:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.console.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        service = Service(name, process, log_path)
        self.started.append(service)
        return service

    def check_alive(self, service: Service) -> None:
        """Raise :class:`BenchError` (its log's last line) if ``service`` has exited."""
        if service.process.poll() is None:
            return
        tail = service.log_tail()
        print(f"--- {service.name} exited; the end of its log:\n{tail}", file=sys.stderr)
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        raise BenchError(
            f"{service.name} exited with status {service.process.returncode}: {last.strip()}"
        )

    def stop(self, service: Service, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL to its process group after ``timeout_s``."""
        process = service.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything it left in its session
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def close(self) -> None:
        for service in reversed(self.started):
            if service.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    service.process.send_signal(signal.SIGTERM)
        for service in reversed(self.started):
            self.stop(service)
        self.started.clear()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def autoreduce_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoreduce", *args]


@dataclass
class Facility:
    """Instruments on the ``noop`` plugin, a database and a broker, in a temporary root."""

    root: Path
    database_url: str
    broker_url: str
    services: Services
    port: int = field(default_factory=free_port)
    token: str = ""
    instruments: tuple[str, ...] = (INSTRUMENT,)
    settings_lines: tuple[str, ...] = ()  # more lines of each instrument's section
    variables: tuple[str, ...] = ("sleep_s = 0.0",)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def lastruns(self) -> Path:
        return self.archive / f"NDX{INSTRUMENT}" / "logs" / "lastruns.txt"

    @property
    def cursors(self) -> Path:
        return self.root / "data" / "run_detection" / "cursors.json"

    def data_file(self, run_number: int, instrument: str = INSTRUMENT) -> Path:
        folder = self.archive / f"NDX{instrument}" / "data" / CYCLE
        return folder / f"{instrument}{run_number:08d}.nxs"

    def write_config(self) -> Path:
        lines = [
            f'data_dir = "{self.root / "data"}"',
            "",
            "[archive]",
            f'root = "{self.archive}"',
        ]
        for instrument in self.instruments:
            lines += [
                "",
                f"[instruments.{instrument}]",
                'plugin = "noop"',
                'lastruns = "{root}/NDX{instrument}/logs/lastruns.txt"',
                'data = "{root}/NDX{instrument}/data/cycle_*/{instrument}{run_number:08d}.nxs"',
                "timeout_s = 120",
                *self.settings_lines,
                f"[instruments.{instrument}.variables]",
                *self.variables,
            ]
        path = self.root / "autoreduce.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
        env.update(
            AUTOREDUCE_CONFIG=str(self.root / "autoreduce.toml"),
            AUTOREDUCE_DATA_DIR=str(self.root / "data"),
            AUTOREDUCE_DATABASE_URL=self.database_url,
            AUTOREDUCE_BROKER_URL=self.broker_url,
            AUTOREDUCE_API_URL=self.api_url,
        )
        env.update(extra)
        return env

    def create_token(self, role: str = "detector") -> str:
        from autoreduce.tokens import create_token

        database = Database(self.database_url)
        try:
            self.token = create_token(database, f"bench-{uuid.uuid4().hex[:8]}", role)
        finally:
            database.dispose()
        return self.token

    def start_api(self) -> Service:
        self.write_config()
        argv = autoreduce_argv("api", "--host", "127.0.0.1", "--port", str(self.port))
        service = self.services.start("api", argv, self.env())

        def healthy() -> bool:
            self.services.check_alive(service)
            try:
                return requests.get(f"{self.api_url}/health", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(healthy, timeout_s=60, interval_s=0.1, what="the API answering /health")
        return service

    def start_detect(self) -> Service:
        """Start the detector on a baseline run 0 and wait until its cursor is persisted."""
        self.lastruns.parent.mkdir(parents=True, exist_ok=True)
        self.lastruns.write_text(f"{INSTRUMENT} {0:08d} 0\n")
        env = self.env(AUTOREDUCE_API_TOKEN=self.token or self.create_token())
        service = self.services.start("detect", autoreduce_argv("detect"), env)

        def cursor_set() -> bool:
            self.services.check_alive(service)
            try:
                return INSTRUMENT in json.loads(self.cursors.read_text())
            except (OSError, ValueError):
                return False

        wait_for(cursor_set, timeout_s=60, interval_s=0.05, what="the detector's cursor")
        return service

    def start_processor(self, number: int) -> Service:
        argv = autoreduce_argv("process", "--id", f"bench-process-{number}")
        return self.services.start(f"process-{number}", argv, self.env())
