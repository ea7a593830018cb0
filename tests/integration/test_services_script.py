"""``scripts/services.sh``: what it leaves behind must let the next start run.

Concurrent starts (pytest workers, then ``make test`` after ``.ci/run``) serialize on lock files. A
daemon that inherited a lock's descriptor held the lock for its whole life, and the next
``services.sh start`` waited forever: CI timed out that way once (munged, started by the Slurm
section, kept both the SeaweedFS and the Slurm lock).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.conftest import SERVICES, start_service

STATE_DIR = Path(os.environ.get("AUTOREDUCE_SERVICES_DIR", "/var/tmp/autoreduce-services"))


def _holders_of_lock_files() -> dict[int, list[str]]:
    """Every process with one of the script's lock files open, and which."""
    holders: dict[int, list[str]] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            targets = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:  # the process ended, or is not ours to read
            continue
        locks = [t for t in targets if t.startswith(str(STATE_DIR)) and t.endswith(".lock")]
        if locks:
            holders[int(fd_dir.parent.name)] = locks
    return holders


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def test_no_daemon_keeps_a_start_lock_once_the_services_run() -> None:
    start_service("seaweedfs")
    start_service("slurm")
    holders = {f"{pid} {_command(pid)}": locks for pid, locks in _holders_of_lock_files().items()}
    assert holders == {}


def test_a_second_start_of_every_service_returns() -> None:
    start_service("seaweedfs")
    start_service("slurm")
    again = subprocess.run(
        [str(SERVICES), "start", "seaweedfs", "slurm"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "seaweedfs already runs" in again.stderr + again.stdout
