"""The four configurations of table (b), and whether each can run on this machine now.

A STOMP configuration runs only when ``open_transport`` accepts ``stomp://`` (the STOMP transport
is being built) and the broker answers; otherwise it is reported "not available: <reason>".
A broker that is not running is started with ``scripts/services.sh start <broker>``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autoreduce.messages import PENDING_QUEUE
from autoreduce.settings import Settings, load_settings
from bench.harness import DatabaseKind, port_open

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICES_SCRIPT = PROJECT_ROOT / "scripts" / "services.sh"
SERVICE_START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class BrokerConfig:
    """A database and a broker the services are pointed at."""

    name: str
    database: DatabaseKind
    broker_url: str
    stomp_port: int | None = None
    service: str = ""  # the argument of `scripts/services.sh start` that starts this broker


CONFIGS = (
    BrokerConfig("SQLite + SQL queue", "sqlite", "sql://"),
    BrokerConfig("MariaDB + SQL queue", "mariadb", "sql://"),
    BrokerConfig(
        "MariaDB + ActiveMQ", "mariadb", "stomp://admin:admin@127.0.0.1:61613", 61613, "activemq"
    ),
    BrokerConfig(
        "MariaDB + RabbitMQ STOMP",
        "mariadb",
        "stomp://guest:guest@127.0.0.1:61614",
        61614,
        "rabbitmq",
    ),
)


def _probe_settings(config: BrokerConfig) -> Settings:
    probe_dir = Path(tempfile.gettempdir()) / "autoreduce-bench-probe"
    return load_settings(
        broker_url=config.broker_url,
        database_url=f"sqlite:///{probe_dir / 'probe.db'}",
        data_dir=probe_dir,
    )


def _start_broker(config: BrokerConfig) -> str | None:
    """Start the broker with the project's script; the reason it is still down, or None."""
    assert config.stomp_port is not None
    if port_open(config.stomp_port):
        return None
    try:
        subprocess.run(
            [str(SERVICES_SCRIPT), "start", config.service],
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=SERVICE_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`scripts/services.sh start {config.service}` failed: {error}"
    if not port_open(config.stomp_port):
        return (
            f"nothing answers on 127.0.0.1:{config.stomp_port} after "
            f"`scripts/services.sh start {config.service}`"
        )
    return None


def unavailable_reason(config: BrokerConfig) -> str | None:
    """None if ``config`` can run now; otherwise why not, in one line."""
    if config.stomp_port is None:
        return None
    if importlib.util.find_spec("autoreduce.transport.stomp") is None:
        return "autoreduce/transport/stomp.py does not exist yet (open_transport refuses stomp://)"
    reason = _start_broker(config)
    if reason:
        return reason
    from autoreduce.transport import open_transport

    try:
        transport = open_transport(_probe_settings(config), consumer="bench-probe")
        try:
            transport.check()
        finally:
            transport.close()
    except Exception as error:
        return f"open_transport({config.broker_url!r}) failed: {type(error).__name__}: {error}"
    return None


def purge_pending(config: BrokerConfig) -> None:
    """Empty the broker's pending queue (STOMP only: the SQL queue lives in the fresh database)."""
    if config.stomp_port is None:
        return
    from autoreduce.transport import open_transport

    with contextlib.suppress(Exception):
        transport = open_transport(_probe_settings(config), consumer="bench-purge")
        try:
            transport.purge(PENDING_QUEUE)
        finally:
            transport.close()
