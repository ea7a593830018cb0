"""The STOMP transport on real brokers: ActiveMQ and RabbitMQ's STOMP plugin.

Every test that takes ``stomp_transport`` runs on both brokers, on queues of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from autoreduce.settings import Settings
from autoreduce.transport import TransportError, open_transport
from autoreduce.transport.stomp import StompTransport
from autoreduce.transport.stomp_url import parse_stomp_url
from tests.integration.conftest import REPO, SERVICES
from tests.polling import wait_for

Factory = Callable[..., StompTransport]


def drain(transport: StompTransport, queue: str, wait_s: float = 1.0) -> list[str]:
    """Receive and ack until ``queue`` stays empty for ``wait_s``; the bodies, in order."""
    bodies = []
    while (delivery := transport.receive(queue, timeout_s=wait_s)) is not None:
        bodies.append(delivery.body)
        assert transport.ack(delivery)
    return bodies


# --- URLs and settings (no broker needed) -------------------------------------------------------
def test_a_url_lists_failover_hosts_in_order_with_options() -> None:
    url = parse_stomp_url("stomp://me:p%40ss@h1:61613,h2:61614?vhost=/&heartbeat_ms=2500")

    assert url.hosts == (("h1", 61613), ("h2", 61614))
    assert (url.username, url.password, url.vhost, url.heartbeat_ms) == ("me", "p@ss", "/", 2500)
    assert "p@ss" not in str(url) and "p@ss" not in repr(url)


def test_a_bad_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(TransportError) as refused:
        parse_stomp_url("stomp://me:s3cret@host:notaport")

    assert "s3cret" not in str(refused.value)


def test_open_transport_builds_a_stomp_transport_from_the_settings(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        broker_url="stomp://guest:guest@127.0.0.1:61614",
        stomp_heartbeat_ms=4000,
        stomp_receipt_timeout_s=3,
    )

    transport = open_transport(settings, consumer="p1")

    assert isinstance(transport, StompTransport)
    assert (transport.heartbeat_ms, transport.receipt_timeout_s) == (4000, 3)
    assert transport.consumer == "p1"


def test_stomp_over_tls_is_refused_clearly(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(TransportError, match="not supported"):
        open_transport(make_settings(broker_url="stomp+ssl://u:p@host:61612"))


def test_check_on_a_closed_port_raises_without_the_password() -> None:
    transport = StompTransport("stomp://user:s3cret@127.0.0.1:1", reconnect_timeout_s=1)

    with pytest.raises(TransportError) as unreachable:
        transport.check()

    assert "127.0.0.1:1" in str(unreachable.value)
    assert "s3cret" not in str(unreachable.value)


@pytest.fixture
def silent_broker() -> Iterator[int]:
    """A fake STOMP server that answers CONNECT and then never sends a receipt; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        client, _ = server.accept()
        client.recv(65536)  # the CONNECT frame
        client.sendall(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00")
        client.settimeout(0.2)
        while not stop.is_set():
            try:
                if not client.recv(65536):
                    break
            except TimeoutError:
                continue
        client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_a_send_without_a_receipt_raises(silent_broker: int) -> None:
    transport = StompTransport(
        f"stomp://u:p@127.0.0.1:{silent_broker}", receipt_timeout_s=0.5, reconnect_timeout_s=1
    )

    with pytest.raises(TransportError, match="no receipt"):
        transport.send("q", "lost?")
    transport.close()


# --- on both brokers ----------------------------------------------------------------------------
def test_messages_come_out_in_the_order_they_went_in(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    for n in range(5):
        queue.send("q", f"m{n}")

    assert drain(queue, "q") == [f"m{n}" for n in range(5)]


def test_headers_with_colons_and_newlines_survive(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    headers = {"x-run": "12", "x-note": "reason: bad\nsecond line \\ backslash"}
    queue.send("q", "body é", headers)

    delivery = queue.receive("q", timeout_s=10)

    assert delivery is not None
    assert delivery.headers == headers and delivery.body == "body é"


def test_a_sent_message_is_on_the_broker_when_send_returns(stomp_transport: Factory) -> None:
    producer, consumer = stomp_transport(), stomp_transport()

    producer.send("q", "confirmed")
    producer.close()  # nothing left in a client-side buffer could still deliver it

    delivery = consumer.receive("q", timeout_s=10)
    assert delivery is not None and delivery.body == "confirmed"


def test_an_unacked_message_returns_when_its_consumer_disconnects(
    stomp_transport: Factory,
) -> None:
    first, second = stomp_transport(), stomp_transport()
    first.send("q", "work")
    held = first.receive("q", timeout_s=10)
    assert held is not None

    first.close()

    again = second.receive("q", timeout_s=30)
    assert again is not None and again.body == "work" and again.redelivered
    assert again.message_id == held.message_id


HOLDER = """
import sys, time
from autoreduce.transport.stomp import StompTransport
transport = StompTransport(sys.argv[1], queue_prefix=sys.argv[2])
delivery = transport.receive("q", timeout_s=30)
print(delivery.body if delivery else "", flush=True)
time.sleep(600)
"""


def test_a_message_held_by_a_killed_process_goes_to_another_consumer(
    stomp_transport: Factory, broker_url: str, queue_prefix: str
) -> None:
    survivor = stomp_transport()
    survivor.send("q", "run 812")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, broker_url, queue_prefix],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "run 812"  # it holds the message unacked
        assert survivor.receive("q", timeout_s=0.5) is None
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)

    again = survivor.receive("q", timeout_s=30)
    assert again is not None and again.body == "run 812" and again.redelivered


def test_one_thread_sends_while_another_receives_on_the_same_transport(
    stomp_transport: Factory,
) -> None:
    queue = stomp_transport()
    total = 100
    relay = threading.Thread(target=lambda: [queue.send("q", str(n)) for n in range(total)])
    relay.start()

    received = []
    while len(received) < total and (delivery := queue.receive("q", timeout_s=10)) is not None:
        received.append(delivery.body)
        assert queue.ack(delivery)
    relay.join(timeout=60)

    assert received == [str(n) for n in range(total)]


def test_prefetch_of_one_leaves_the_next_message_to_another_consumer(
    stomp_transport: Factory,
) -> None:
    busy, idle = stomp_transport(consumer="busy"), stomp_transport(consumer="idle")
    busy.send("q", "first")
    first = busy.receive("q", timeout_s=10)  # busy now subscribes and works on "first"
    assert first is not None and first.body == "first"
    busy.send("q", "second")

    second = idle.receive("q", timeout_s=10)

    assert second is not None and second.body == "second"
    assert busy.ack(first) and idle.ack(second)


def test_release_puts_the_message_back_on_the_same_queue(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    queue.send("q", "again", {"x-run": "7"})
    delivery = queue.receive("q", timeout_s=10)
    assert delivery is not None

    queue.release(delivery)

    back = queue.receive("q", timeout_s=10)
    assert back is not None and back.body == "again" and back.headers == {"x-run": "7"}
    assert back.redelivered and back.message_id == delivery.message_id
    assert queue.ack(back)
    assert queue.receive("q", timeout_s=0.5) is None


def test_release_with_a_delay_holds_the_message_back_on_activemq(
    stomp_transport: Factory, broker: str
) -> None:
    queue = stomp_transport()
    queue.send("q", "later")
    delivery = queue.receive("q", timeout_s=10)
    assert delivery is not None

    queue.release(delivery, delay_s=1.5)

    if broker == "activemq":  # scheduled: not in the queue yet
        assert queue.browse("q") == []
    back = queue.receive("q", timeout_s=30)
    assert back is not None and back.body == "later"


def test_dead_letter_copies_the_message_with_its_reason_and_acks_it(
    stomp_transport: Factory,
) -> None:
    queue = stomp_transport()
    queue.send("autoreduce.reduction.pending", "poison", {"a": "b"})
    delivery = queue.receive("autoreduce.reduction.pending", timeout_s=10)
    assert delivery is not None

    queue.dead_letter(delivery, "invalid run message: body: not JSON\nat line 1")

    dead = queue.receive("autoreduce.reduction.dlq", timeout_s=10)
    assert dead is not None and dead.body == "poison"
    assert dead.headers["x-dead-letter-reason"] == "invalid run message: body: not JSON\nat line 1"
    assert dead.headers["x-original-queue"] == "autoreduce.reduction.pending"
    assert dead.headers["a"] == "b"
    assert stomp_transport().browse("autoreduce.reduction.pending") == []


def test_browse_take_and_purge(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    for body in ("a", "b", "c"):
        queue.send("q", body)

    browsed = queue.browse("q", limit=10)
    assert [d.body for d in browsed] == ["a", "b", "c"]
    assert queue.browse("q", limit=2)[1].message_id == browsed[1].message_id

    taken = queue.take("q", browsed[1].message_id)
    assert taken is not None and taken.body == "b"
    assert queue.ack(taken)
    assert queue.take("q", "no-such-id", timeout_s=1) is None
    assert [d.body for d in queue.browse("q")] == ["a", "c"]

    assert queue.purge("q") == 2
    assert queue.browse("q") == []


def test_a_taken_message_that_is_released_stays_in_the_queue(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    for body in ("a", "b"):
        queue.send("q", body)
    wanted = queue.browse("q")[1]

    taken = queue.take("q", wanted.message_id)
    assert taken is not None
    queue.release(taken)

    assert sorted(d.body for d in queue.browse("q")) == ["a", "b"]


def test_failover_skips_a_host_that_does_not_answer(broker_url: str, queue_prefix: str) -> None:
    first_dead = broker_url.replace("@127.0.0.1:", "@127.0.0.1:1,127.0.0.1:")
    queue = StompTransport(first_dead, queue_prefix=queue_prefix)
    try:
        queue.send("q", "via the second host")
        assert drain(queue, "q") == ["via the second host"]
    finally:
        queue.close()


def test_heart_beats_are_negotiated(broker_url: str) -> None:
    queue = StompTransport(broker_url + "?heartbeat_ms=4000")
    try:
        queue.check()
        outgoing_ms, incoming_ms = map(int, queue.connected_headers["heart-beat"].split(","))
    finally:
        queue.close()

    assert outgoing_ms > 0 and incoming_ms > 0


def test_ack_after_the_connection_was_lost_returns_false(stomp_transport: Factory) -> None:
    queue = stomp_transport()
    queue.send("q", "work")
    delivery = queue.receive("q", timeout_s=10)
    assert delivery is not None
    delivery.handle.link.close()  # as if the broker had dropped the connection

    assert queue.ack(delivery) is False
    again = queue.receive("q", timeout_s=30)  # reconnects; the broker delivers it again
    assert again is not None and again.body == "work" and queue.ack(again)


def restart_broker(broker: str) -> None:
    if broker == "activemq":
        subprocess.run([str(SERVICES), "stop", "activemq"], check=True, timeout=120)
        subprocess.run([str(SERVICES), "start", "activemq"], check=True, timeout=300)
    else:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, timeout=120, capture_output=True)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, timeout=120, capture_output=True)


def test_the_transport_reconnects_after_a_broker_restart_and_loses_nothing(
    stomp_transport: Factory, broker: str
) -> None:
    queue = stomp_transport()
    for body in ("a", "b", "c"):
        queue.send("q", body)
    held = queue.receive("q", timeout_s=10)
    assert held is not None

    restart_broker(broker)
    wait_for(lambda: not held.handle.link.alive, timeout_s=30)
    queue.send("q", "after restart")

    assert sorted(drain(queue, "q", wait_s=2)) == ["a", "after restart", "b", "c"]
