"""The outbox relay: publishes in order, holds paused instruments, outlives broker outages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url, select

from autoreduce.db import Database
from autoreduce.db.models import Instrument, OutboxMessage
from autoreduce.messages import PENDING_QUEUE
from autoreduce.outbox import OutboxRelay
from autoreduce.transport.sql import SqlTransport
from tests.polling import wait_for
from tests.tcp_proxy import TcpProxy

UNREACHABLE_MYSQL = "mysql+pymysql://root@127.0.0.1:1/autoreduce"


@pytest.fixture
def queue(database: Database) -> Iterator[SqlTransport]:
    transport = SqlTransport(database.url, consumer="test", database=database)
    yield transport
    transport.close()


def add_messages(database: Database, *instrument_bodies: tuple[str, str]) -> None:
    with database.session() as session:
        for instrument, body in instrument_bodies:
            if session.get(Instrument, instrument) is None:
                session.add(Instrument(name=instrument, is_paused=False))
                session.flush()
            session.add(OutboxMessage(instrument=instrument, queue=PENDING_QUEUE, body=body))


def drain(queue: SqlTransport) -> list[str]:
    bodies = []
    while (delivery := queue.receive(PENDING_QUEUE, timeout_s=0)) is not None:
        bodies.append(delivery.body)
        queue.ack(delivery)
    return bodies


def unsent(database: Database) -> list[str]:
    with database.session() as session:
        query = select(OutboxMessage.body).where(OutboxMessage.sent_at.is_(None))
        return list(session.scalars(query.order_by(OutboxMessage.id)))


def test_relay_once_publishes_unsent_rows_in_id_order_and_marks_them(
    database: Database, queue: SqlTransport
) -> None:
    add_messages(database, ("GEM", "g1"), ("WISH", "w1"), ("GEM", "g2"))

    published = OutboxRelay(database, queue).relay_once()

    assert published == 3
    assert drain(queue) == ["g1", "w1", "g2"]
    assert unsent(database) == []
    assert OutboxRelay(database, queue).relay_once() == 0


def test_relay_once_respects_the_batch_size(database: Database, queue: SqlTransport) -> None:
    add_messages(database, *[("GEM", f"g{i}") for i in range(5)])

    assert OutboxRelay(database, queue, batch_size=2).relay_once() == 2
    assert unsent(database) == ["g2", "g3", "g4"]


def test_paused_instruments_are_held_and_others_flow(
    database: Database, queue: SqlTransport
) -> None:
    add_messages(database, ("GEM", "g1"), ("WISH", "w1"), ("GEM", "g2"))
    with database.session() as session:
        session.get_one(Instrument, "GEM").is_paused = True
    relay = OutboxRelay(database, queue)

    assert relay.relay_once() == 1
    assert drain(queue) == ["w1"]
    with database.session() as session:
        session.get_one(Instrument, "GEM").is_paused = False
    assert relay.relay_once() == 2
    assert drain(queue) == ["g1", "g2"]


def test_an_unreachable_broker_raises_and_loses_nothing(database: Database) -> None:
    add_messages(database, ("GEM", "g1"), ("GEM", "g2"))
    broken = SqlTransport(UNREACHABLE_MYSQL, consumer="test")

    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        OutboxRelay(database, broken).relay_once()

    assert unsent(database) == ["g1", "g2"]
    broken.database.dispose()


def test_relay_thread_survives_a_broker_outage_then_publishes_everything_once_in_order(
    database: Database, fresh_mysql_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_url(fresh_mysql_database)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or 3306)
    broker_database = Database(server.set(port=proxy.port).render_as_string(False))
    broker_database.upgrade()
    broker = SqlTransport(broker_database.url, consumer="relay", database=broker_database)
    proxy.cut()  # the broker (a queue table on another server) goes away
    add_messages(database, ("GEM", "g1"), ("WISH", "w1"))
    relay = OutboxRelay(database, broker, idle_wait_s=0.05)
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="autoreduce.outbox")

    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "autoreduce.outbox"]

    thread = relay.start(stop)
    try:
        wait_for(lambda: len(warnings()) >= 3)
        add_messages(database, ("GEM", "g2"))
        assert thread.is_alive()
        assert unsent(database) == ["g1", "w1", "g2"]

        proxy.restore()
        wait_for(lambda: not unsent(database))
    finally:
        stop.set()
        relay.wake()
        thread.join(10)
        proxy.close()

    assert not thread.is_alive()
    assert drain(SqlTransport(fresh_mysql_database, consumer="test")) == ["g1", "w1", "g2"]
    assert all(r.exc_info is None for r in warnings())


def test_relay_thread_survives_an_unreachable_database(
    queue: SqlTransport, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = Database(UNREACHABLE_MYSQL)
    relay = OutboxRelay(unreachable, queue)
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="autoreduce.outbox")
    thread = relay.start(stop)
    try:
        wait_for(lambda: len(caplog.records) >= 2)
        assert thread.is_alive()
    finally:
        stop.set()
        relay.wake()
        thread.join(10)
        unreachable.dispose()
    assert not thread.is_alive()


def test_wake_makes_an_idle_relay_publish_without_waiting_for_its_idle_period(
    database: Database, queue: SqlTransport
) -> None:
    add_messages(database, ("GEM", "g0"))
    relay = OutboxRelay(database, queue, idle_wait_s=600)
    stop = threading.Event()
    thread = relay.start(stop)
    try:
        wait_for(lambda: not unsent(database))  # first pass done: now idle for 600 s
        add_messages(database, ("GEM", "g1"))
        relay.wake()
        wait_for(lambda: not unsent(database))
    finally:
        stop.set()
        relay.wake()
        thread.join(10)
    assert drain(queue) == ["g0", "g1"]
