"""A whole facility in real processes: ``autoreduce up`` on a temporary archive.

Shared by the end-to-end, command-line and browser suites; ``facility_factory`` (in
``tests/e2e/conftest.py``) starts one per test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tomli_w

from autoreduce.demo.nexus import write_synthetic_run
from tests.polling import wait_for

CYCLE = "cycle_26_4"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers and booleans are valid TOML


@dataclass
class Facility:
    """A running ``autoreduce up`` and the archive its instruments write to."""

    root: Path
    api_url: str
    instruments: dict[str, dict[str, Any]]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    def lastruns(self, instrument: str) -> Path:
        return self.root / "archive" / f"NDX{instrument}" / "logs" / "lastruns.txt"

    def data_file(self, instrument: str, run_number: int) -> Path:
        return (
            self.root
            / "archive"
            / f"NDX{instrument}"
            / "data"
            / CYCLE
            / f"{instrument}{run_number:08d}.nxs"
        )

    def write_data(self, instrument: str, run_number: int) -> Path:
        path = self.data_file(instrument, run_number)
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = self.instruments[instrument].get("kind", "powder")
        write_synthetic_run(
            kind,
            path,
            instrument=instrument,
            run_number=run_number,
            experiment_ref="2610001",
            title=f"e2e run {run_number}",
            n_events=20_000,
            seed=run_number,
        )
        return path

    def bump(self, instrument: str, run_number: int) -> None:
        path = self.lastruns(instrument)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{instrument} {run_number:08d} 0\n")

    def play(self, instrument: str, run_number: int) -> None:
        self.write_data(instrument, run_number)
        self.bump(instrument, run_number)

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        response = requests.get(f"{self.api_url}/api/v1/runs", params=params, timeout=10)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def run(self, instrument: str, run_number: int) -> dict[str, Any] | None:
        response = requests.get(f"{self.api_url}/api/v1/runs/{instrument}/{run_number}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        versions: list[dict[str, Any]] = response.json()["versions"]
        return versions[0]

    def wait_final(self, instrument: str, run_number: int, timeout_s: float = 90) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.run(instrument, run_number)
            return run if run and run["status"] in ("Completed", "Error", "Skipped") else None

        result: dict[str, Any] = wait_for(finished, timeout_s=timeout_s, interval_s=0.1)
        return result


def _write_config(
    root: Path, instruments: dict[str, dict[str, Any]], extra: dict[str, Any], public_read: bool
) -> Path:
    tables = {key: value for key, value in extra.items() if isinstance(value, dict)}
    lines = [f"{key} = {_toml_value(value)}" for key, value in extra.items() if key not in tables]
    lines += [f'data_dir = "{root / "data"}"', f"public_read = {_toml_value(public_read)}"]
    lines += ["", "[archive]", f'root = "{root / "archive"}"']
    for name, table in instruments.items():
        lines += [
            "",
            f"[instruments.{name}]",
            f'plugin = "{table["plugin"]}"',
            'lastruns = "{root}/NDX{instrument}/logs/lastruns.txt"',
            'data = "{root}/NDX{instrument}/data/cycle_*/{instrument}{run_number:08d}.nxs"',
            f"timeout_s = {table.get('timeout_s', 120)}",
            f"memory_mb = {table.get('memory_mb', 2048)}",
        ]
        if table.get("variables"):
            lines += [f"[instruments.{name}.variables]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table["variables"].items()]
    if tables:  # e.g. {"ldap": {...}}: TOML tables, after everything else
        lines += ["", tomli_w.dumps(tables)]
    path = root / "autoreduce.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_facility(
    root: Path,
    instruments: dict[str, dict[str, Any]],
    *,
    processors: int = 2,
    settings: dict[str, Any] | None = None,
    python: str = sys.executable,
    public_read: bool = True,
) -> Facility:
    """Start ``autoreduce up`` on a temporary archive under ``root``, the built-in plugins
    approved first as an operator would, and wait until it detects.

    ``settings`` are more top-level TOML settings; ``public_read=False`` makes reading need a
    token or a signed-in user; ``python`` is the interpreter that runs it (another environment's).
    """
    port = free_port()
    facility = Facility(root=root, api_url=f"http://127.0.0.1:{port}", instruments=instruments)
    for name in instruments:
        facility.bump(name, 0)  # the detector's first sight: run 0 becomes its cursor
    config = _write_config(root, instruments, settings or {}, public_read)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    env["AUTOREDUCE_CONFIG"] = str(config)
    facility.log_path = root / "up.log"
    approve = [python, "-m", "autoreduce", "plugins", "approve", "--builtin"]
    subprocess.run(approve, env=env, check=True, capture_output=True, timeout=120)
    command = [python, "-m", "autoreduce", "up", "--port", str(port)]
    command += ["--processors", str(processors)]
    with open(facility.log_path, "wb") as log:
        facility.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    cursors = root / "data" / "run_detection" / "cursors.json"

    def ready() -> bool:
        assert facility.process is not None and facility.process.poll() is None, (
            "autoreduce up exited:\n" + facility.log_path.read_text()
        )
        try:
            healthy = requests.get(f"{facility.api_url}/health", timeout=2).ok
        except requests.RequestException:
            return False
        return (
            healthy
            and cursors.is_file()
            and set(instruments) <= set(json.loads(cursors.read_text()))
        )

    wait_for(ready, timeout_s=90, interval_s=0.2)
    return facility


def stop_facility(facility: Facility) -> None:
    process = facility.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
