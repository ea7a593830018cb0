"""The embedded queue table as a broker, on SQLite and MariaDB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from autoreduce.db import Database
from autoreduce.settings import Settings
from autoreduce.transport import TransportError, open_transport
from autoreduce.transport.sql import SqlTransport


def consumer(database: Database, name: str, **options: float) -> SqlTransport:
    return SqlTransport(database.url, consumer=name, database=database, **options)


def test_messages_come_out_in_the_order_they_went_in(database: Database) -> None:
    queue = consumer(database, "c1")
    for n in range(5):
        queue.send("q", f"m{n}")

    bodies = []
    while (delivery := queue.receive("q", timeout_s=0.1)) is not None:
        bodies.append(delivery.body)
        assert queue.ack(delivery)

    assert bodies == [f"m{n}" for n in range(5)]


def test_headers_travel_with_the_message(database: Database) -> None:
    queue = consumer(database, "c1")
    queue.send("q", "body", {"x-run": "12"})

    delivery = queue.receive("q", timeout_s=1)

    assert delivery is not None and delivery.headers == {"x-run": "12"}


def test_a_claimed_message_is_hidden_from_other_consumers(database: Database) -> None:
    first, second = consumer(database, "c1"), consumer(database, "c2")
    first.send("q", "only")

    assert first.receive("q", timeout_s=1) is not None
    assert second.receive("q", timeout_s=0.2) is None


def test_an_unacked_message_returns_after_the_visibility_timeout(database: Database) -> None:
    dying = consumer(database, "dying", visibility_timeout_s=0.3)
    survivor = consumer(database, "survivor")
    dying.send("q", "work")
    assert dying.receive("q", timeout_s=1) is not None  # then it dies without acking

    again = survivor.receive("q", timeout_s=5)

    assert again is not None and again.body == "work" and again.redelivered


def test_a_consumer_whose_claim_lapsed_cannot_ack_the_new_holders_message(
    database: Database,
) -> None:
    slow = consumer(database, "slow", visibility_timeout_s=0.2)
    fast = consumer(database, "fast")
    slow.send("q", "work")
    stale = slow.receive("q", timeout_s=1)
    assert stale is not None
    current = fast.receive("q", timeout_s=5)
    assert current is not None

    assert not slow.ack(stale)
    assert fast.ack(current)


def test_extend_keeps_a_long_claim(database: Database) -> None:
    holder = consumer(database, "holder", visibility_timeout_s=0.5)
    other = consumer(database, "other")
    holder.send("q", "long job")
    delivery = holder.receive("q", timeout_s=1)
    assert delivery is not None

    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        holder.extend(delivery)
        assert other.receive("q", timeout_s=0.1) is None


def test_release_makes_a_message_available_again(database: Database) -> None:
    queue = consumer(database, "c1")
    queue.send("q", "again")
    delivery = queue.receive("q", timeout_s=1)
    assert delivery is not None

    queue.release(delivery)

    assert queue.receive("q", timeout_s=1) is not None


def test_dead_letter_copies_the_message_with_its_reason_and_acks_it(database: Database) -> None:
    queue = consumer(database, "c1")
    queue.send("autoreduce.reduction.pending", "poison", {"a": "b"})
    delivery = queue.receive("autoreduce.reduction.pending", timeout_s=1)
    assert delivery is not None

    queue.dead_letter(delivery, "invalid run message: body: not JSON")

    dead = queue.receive("autoreduce.reduction.dlq", timeout_s=1)
    assert dead is not None and dead.body == "poison"
    assert dead.headers["x-dead-letter-reason"] == "invalid run message: body: not JSON"
    assert dead.headers["x-original-queue"] == "autoreduce.reduction.pending"
    assert queue.depth("autoreduce.reduction.pending") == 0


def test_concurrent_consumers_deliver_every_message_exactly_once(database: Database) -> None:
    producer = consumer(database, "producer")
    total = 200
    for n in range(total):
        producer.send("q", str(n))
    received: list[str] = []
    lock = threading.Lock()

    def consume(name: str) -> None:
        queue = consumer(database, name)
        while (delivery := queue.receive("q", timeout_s=0.5)) is not None:
            with lock:
                received.append(delivery.body)
            assert queue.ack(delivery)

    workers = [threading.Thread(target=consume, args=(f"c{n}",)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert sorted(received, key=int) == [str(n) for n in range(total)]


def test_check_raises_when_the_database_is_unreachable() -> None:
    queue = SqlTransport("mysql+pymysql://root@127.0.0.1:1/none")

    with pytest.raises(TransportError, match="queue table unreachable"):
        queue.check()


def test_an_unknown_broker_scheme_is_refused_with_the_choices(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(broker_url="amqp://guest@localhost")

    with pytest.raises(TransportError, match="use sql:// or stomp://"):
        open_transport(settings)


def test_open_transport_uses_the_configured_queue_timings(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings(
        database_url=database.url, visibility_timeout_s=7.5, poll_interval_s=0.02
    )

    queue = open_transport(settings, consumer="p9")

    assert isinstance(queue, SqlTransport)
    assert (queue.visibility_timeout_s, queue.poll_interval_s, queue.consumer) == (7.5, 0.02, "p9")


def test_browse_lists_messages_oldest_first_without_consuming_them(database: Database) -> None:
    queue = consumer(database, "c1")
    for body in ("a", "b", "c"):
        queue.send("q", body)

    browsed = queue.browse("q", limit=2)

    assert [d.body for d in browsed] == ["a", "b"]
    assert all(d.message_id for d in browsed)
    assert queue.depth("q") == 3


def test_take_receives_one_message_by_its_id(database: Database) -> None:
    queue = consumer(database, "c1")
    for body in ("a", "b", "c"):
        queue.send("q", body)
    wanted = queue.browse("q")[1]

    taken = queue.take("q", wanted.message_id)

    assert taken is not None and taken.body == "b"
    assert queue.ack(taken)
    assert [d.body for d in queue.browse("q")] == ["a", "c"]
    assert queue.take("q", "no-such-id") is None


def test_purge_empties_one_queue_and_says_how_many(database: Database) -> None:
    queue = consumer(database, "c1")
    for body in ("a", "b"):
        queue.send("q", body)
    queue.send("other", "kept")

    assert queue.purge("q") == 2
    assert queue.depth("q") == 0 and queue.depth("other") == 1
