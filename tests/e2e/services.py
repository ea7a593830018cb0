"""Stopping and starting the real services under an end-to-end test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil

from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("AUTOREDUCE_SERVICES_DIR", "/var/tmp/autoreduce-services"))
ACTIVEMQ_URL = "stomp://admin:admin@127.0.0.1:61613"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def restart_mariadb() -> None:
    subprocess.run(["mariadb-admin", "-uroot", "-h127.0.0.1", "shutdown"], check=True)
    wait_for(lambda: not _mariadbd_running(), timeout_s=60, interval_s=0.1)
    subprocess.run(
        [
            "start-stop-daemon",
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
        ],
        check=True,
    )
    wait_for(lambda: _port_open(3306), timeout_s=60, interval_s=0.1)


def _mariadbd_running() -> bool:
    return any(
        p.info["name"] == "mariadbd" and p.info["status"] != psutil.STATUS_ZOMBIE
        for p in psutil.process_iter(["name", "status"])
    )


def start_activemq() -> None:
    subprocess.run([str(REPO / "scripts" / "services.sh"), "start", "activemq"], check=True)


def activemq_pid() -> int:
    """The broker the services script started and still sees running."""
    return int(
        subprocess.run(
            [str(REPO / "scripts" / "services.sh"), "pid", "activemq"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def stop_activemq(sig: signal.Signals = signal.SIGTERM) -> None:
    pid = activemq_pid()
    os.kill(pid, sig)
    wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), timeout_s=30)


def restart_activemq() -> None:
    """Kill the broker outright (SIGKILL), then start it again."""
    stop_activemq(signal.SIGKILL)
    start_activemq()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
