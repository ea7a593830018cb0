"""Real brokers for the integration tests: ActiveMQ and RabbitMQ, both over STOMP.

``scripts/services.sh start activemq|rabbitmq`` runs once per session (installing and starting
what is missing; quick when all runs). ActiveMQ's default configuration accepts any login over
STOMP; ``admin``/``admin`` is what the Debian package's users file names. Each test gets its own
queue-name prefix, so tests never see each other's messages.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoreduce.transport.stomp import StompTransport

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"
ACTIVEMQ_URL = "stomp://admin:admin@127.0.0.1:61613"
RABBITMQ_URL = "stomp://guest:guest@127.0.0.1:61614"
BROKERS = ["activemq", "rabbitmq"]


def start_service(name: str) -> None:
    """Start one service through the project's script (idempotent)."""
    subprocess.run([str(SERVICES), "start", name], check=True, timeout=600)


@pytest.fixture(scope="session")
def activemq_url() -> str:
    start_service("activemq")
    return ACTIVEMQ_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    start_service("rabbitmq")
    return RABBITMQ_URL


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> str:
    """The name of a running STOMP broker: ``activemq``, then ``rabbitmq``."""
    request.getfixturevalue(f"{request.param}_url")
    return str(request.param)


@pytest.fixture
def broker_url(broker: str) -> str:
    return ACTIVEMQ_URL if broker == "activemq" else RABBITMQ_URL


@pytest.fixture
def queue_prefix() -> str:
    """A queue-name prefix of this test's own."""
    return f"test.{uuid.uuid4().hex[:12]}."


@pytest.fixture
def stomp_transport(broker_url: str, queue_prefix: str) -> Iterator[Callable[..., StompTransport]]:
    """Open STOMP transports on this test's queues: ``stomp_transport(consumer="c1")``."""
    opened: list[StompTransport] = []

    def build(**options: object) -> StompTransport:
        options.setdefault("queue_prefix", queue_prefix)
        options.setdefault("receipt_timeout_s", 10.0)
        transport = StompTransport(broker_url, **options)  # type: ignore[arg-type]
        opened.append(transport)
        return transport

    yield build
    for transport in opened:
        transport.close()
