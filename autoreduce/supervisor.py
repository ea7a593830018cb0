"""``autoreduce up``: every service as its own process on one machine, restarted if it dies.

Each service is the same ``autoreduce <service>`` command an operator would run; the supervisor
only starts them, restarts one that exits unexpectedly (with a growing delay), and on SIGINT or
SIGTERM stops them all: SIGTERM first, SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("autoreduce.up")
RESTART_DELAY_MAX_S = 30.0
HEALTHY_AFTER_S = 10.0


@dataclass
class Service:
    """One supervised command; ``name`` labels it in logs."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    console_log: Path | None = None  # where its stdout and stderr go; None: inherited
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start_at: float = 0.0

    def start(self) -> None:
        command = [sys.executable, "-m", "autoreduce", *self.args]
        output = None
        if self.console_log is not None:
            self.console_log.parent.mkdir(parents=True, exist_ok=True)
            output = open(self.console_log, "ab")  # noqa: SIM115 - the child owns it now
        try:
            self.process = subprocess.Popen(
                command, env={**os.environ, **self.env}, stdout=output, stderr=output
            )
        finally:
            if output is not None:
                output.close()
        self.started_at = time.monotonic()
        logger.info("started %s (pid %s)", self.name, self.process.pid)


class Supervisor:
    def __init__(self, services: list[Service], *, stop_timeout_s: float = 20.0) -> None:
        self.services = services
        self.stop_timeout_s = stop_timeout_s
        self.stopping = threading.Event()

    def start(self) -> None:
        for service in self.services:
            service.start()

    def watch_once(self) -> None:
        """Restart services that exited while the supervisor was not stopping."""
        now = time.monotonic()
        for service in self.services:
            process = service.process
            if process is None or process.poll() is None or self.stopping.is_set():
                continue
            if service.next_start_at == 0.0:
                if now - service.started_at > HEALTHY_AFTER_S:
                    service.restarts = 0
                delay_s = min(RESTART_DELAY_MAX_S, 0.5 * 2**service.restarts)
                service.next_start_at = now + delay_s
                logger.error(
                    "%s exited with status %s; restarting in %.1f s",
                    service.name,
                    process.returncode,
                    delay_s,
                )
            elif now >= service.next_start_at:
                service.restarts += 1
                service.next_start_at = 0.0
                service.start()

    def run(self, until: threading.Event | None = None) -> None:
        """Watch until SIGINT/SIGTERM (or ``until`` is set), then stop everything."""
        until = until or threading.Event()

        def request_stop(signum: int, _frame: object) -> None:
            until.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {
                sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
            }
        try:
            while not until.wait(0.2):
                self.watch_once()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self.stopping.set()
        running = [s for s in self.services if s.process and s.process.poll() is None]
        for service in running:
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for service in running:
            assert service.process is not None
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", service.name)
                service.process.kill()
                service.process.wait()
        logger.info("all services stopped")
