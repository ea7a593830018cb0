"""What every transport promises, whichever broker is behind it: SQL queue, ActiveMQ, RabbitMQ.

STOMP transports use a queue-name prefix of the test's own; the SQL queue a fresh SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoreduce.db import Database
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.transport import Transport
from autoreduce.transport.sql import SqlTransport
from autoreduce.transport.stomp import StompTransport
from tests.integration.conftest import ACTIVEMQ_URL, RABBITMQ_URL

OpenTransport = Callable[[str], Transport]


@pytest.fixture(params=["sql", "activemq", "rabbitmq"])
def open_queue(
    request: pytest.FixtureRequest, tmp_path: Path, queue_prefix: str
) -> Iterator[OpenTransport]:
    """Open transports (one per consumer name) on the same broker and queues."""
    opened: list[Transport] = []
    database: Database | None = None
    if request.param == "sql":
        database = Database(f"sqlite:///{tmp_path / 'queue.db'}")
        database.upgrade()
    else:
        request.getfixturevalue(f"{request.param}_url")

    def build(consumer: str) -> Transport:
        transport: Transport
        if database is not None:
            transport = SqlTransport(
                database.url, consumer=consumer, database=database, visibility_timeout_s=1.0
            )
        else:
            url = ACTIVEMQ_URL if request.param == "activemq" else RABBITMQ_URL
            transport = StompTransport(url, consumer=consumer, queue_prefix=queue_prefix)
        opened.append(transport)
        return transport

    yield build
    for transport in opened:
        transport.close()
    if database is not None:
        database.dispose()


def test_messages_come_out_in_the_order_they_went_in(open_queue: OpenTransport) -> None:
    queue = open_queue("c1")
    for n in range(5):
        queue.send(PENDING_QUEUE, f"m{n}", {"n": str(n)})

    received = []
    while (delivery := queue.receive(PENDING_QUEUE, timeout_s=1)) is not None:
        received.append((delivery.body, delivery.headers["n"]))
        assert queue.ack(delivery)

    assert received == [(f"m{n}", str(n)) for n in range(5)]


def test_an_acked_message_is_gone_for_every_consumer(open_queue: OpenTransport) -> None:
    first = open_queue("c1")
    first.send(PENDING_QUEUE, "once")
    delivery = first.receive(PENDING_QUEUE, timeout_s=10)
    assert delivery is not None and delivery.message_id

    assert first.ack(delivery)
    first.close()

    assert open_queue("c2").receive(PENDING_QUEUE, timeout_s=2) is None


def test_a_released_message_is_delivered_again(open_queue: OpenTransport) -> None:
    queue = open_queue("c1")
    queue.send(PENDING_QUEUE, "again")
    delivery = queue.receive(PENDING_QUEUE, timeout_s=10)
    assert delivery is not None

    queue.release(delivery)

    back = queue.receive(PENDING_QUEUE, timeout_s=10)
    assert back is not None and back.body == "again" and back.redelivered
    assert back.message_id == delivery.message_id


def test_dead_letter_moves_the_message_with_its_reason(open_queue: OpenTransport) -> None:
    queue = open_queue("c1")
    queue.send(PENDING_QUEUE, "poison")
    delivery = queue.receive(PENDING_QUEUE, timeout_s=10)
    assert delivery is not None

    queue.dead_letter(delivery, "run 812: data file not found")

    [dead] = open_queue("operator").browse(DEAD_LETTER_QUEUE)
    assert dead.body == "poison"
    assert dead.headers["x-dead-letter-reason"] == "run 812: data file not found"
    assert dead.headers["x-original-queue"] == PENDING_QUEUE
    assert open_queue("operator").browse(PENDING_QUEUE) == []


def test_browse_shows_messages_oldest_first_and_leaves_them(open_queue: OpenTransport) -> None:
    queue = open_queue("operator")
    for body in ("a", "b", "c"):
        queue.send(DEAD_LETTER_QUEUE, body)

    assert [d.body for d in queue.browse(DEAD_LETTER_QUEUE, limit=2)] == ["a", "b"]
    assert [d.body for d in queue.browse(DEAD_LETTER_QUEUE)] == ["a", "b", "c"]


def test_take_receives_one_message_by_its_id(open_queue: OpenTransport) -> None:
    queue = open_queue("operator")
    for body in ("a", "b", "c"):
        queue.send(DEAD_LETTER_QUEUE, body)
    wanted = queue.browse(DEAD_LETTER_QUEUE)[1]

    taken = queue.take(DEAD_LETTER_QUEUE, wanted.message_id)

    assert taken is not None and taken.body == "b"
    assert queue.ack(taken)
    assert [d.body for d in queue.browse(DEAD_LETTER_QUEUE)] == ["a", "c"]
    assert queue.take(DEAD_LETTER_QUEUE, "no-such-id", timeout_s=1) is None


def test_purge_empties_one_queue_and_says_how_many(open_queue: OpenTransport) -> None:
    queue = open_queue("operator")
    for body in ("a", "b"):
        queue.send(DEAD_LETTER_QUEUE, body)
    queue.send(PENDING_QUEUE, "kept")

    assert queue.purge(DEAD_LETTER_QUEUE) == 2

    assert queue.browse(DEAD_LETTER_QUEUE) == []
    assert [d.body for d in queue.browse(PENDING_QUEUE)] == ["kept"]


def test_after_close_an_unacked_message_goes_to_another_consumer(
    open_queue: OpenTransport,
) -> None:
    first = open_queue("c1")
    first.send(PENDING_QUEUE, "work")
    assert first.receive(PENDING_QUEUE, timeout_s=10) is not None

    first.close()

    assert first.receive(PENDING_QUEUE, timeout_s=0.1) is None
    again = open_queue("c2").receive(PENDING_QUEUE, timeout_s=30)
    assert again is not None and again.body == "work" and again.redelivered
