"""The production broker: STOMP 1.2 with stomp.py, for ActiveMQ and RabbitMQ's STOMP plugin.

URL: ``stomp://user:pass@host:61613``; a comma-separated host list fails over in order
(``stomp://user:pass@h1:61613,h2:61614``); optional query ``?vhost=/&heartbeat_ms=10000``. Queues
are ``/queue/<name>``. The password never appears in a log line or an exception.

How each verb maps onto the brokers:

- **receive** subscribes once per queue (``ack: client-individual``, prefetch 1 through both
  ``activemq.prefetchSize`` and ``prefetch-count``; each broker ignores the other's header).
  stomp.py's receiver thread only puts frames on a local queue; the caller takes them from there,
  so a reduction never runs on the thread that services the connection and its heart-beats.
- **send** is persistent and waits for the broker's RECEIPT, so it returns once the broker has
  the message. Every message carries ``autoreduce_message_id`` (a name JMS selectors accept): the
  id is stable across deliveries on both brokers (RabbitMQ's ``message-id`` names one delivery).
- **ack** uses the frame's ``ack`` id and waits for a receipt; False when the connection that
  received the message is gone (the broker redelivers it).
- **release**: a STOMP NACK sends the message to ``ActiveMQ.DLQ`` on a default ActiveMQ (and
  requeues it on RabbitMQ), so release re-sends a copy (same body, headers and message id, plus
  the ``autoreduce_releases`` counter) to the same queue and then acks the original; a crash in
  between gives a duplicate, which the processor's conditional updates drop. On ActiveMQ
  ``delay_s`` becomes ``AMQ_SCHEDULED_DELAY`` (the project's broker runs with
  ``schedulerSupport``). RabbitMQ has no per-message delay: the copy is available at once, at the
  tail of the queue.
- **browse**: ActiveMQ has queue browsers (``browser: true``, ended by a ``browser: end`` frame).
  RabbitMQ has none: a separate connection consumes up to ``limit`` messages without acking and
  disconnects, so they return to their places, with RabbitMQ's ``redelivered`` flag now set.
  Messages another consumer holds unacked are not seen on either broker.
- **take**: ActiveMQ receives the one message through a selector on a separate connection.
  RabbitMQ has no selectors: a separate connection consumes until it finds the message and holds
  the others unacked until the taken one is acked or released, then disconnects so they return.
- **queue_depth**: ActiveMQ counts by browsing (up to ``DEPTH_BROWSE_LIMIT``; messages a consumer
  holds or the scheduler delays are not seen); RabbitMQ tells depths only through its management
  API, so the depth is unknown there, with that reason.
- **purge** consumes with automatic ack on a separate connection until the queue stays quiet for
  ``PURGE_IDLE_S``; messages held unacked by other consumers survive it.
- **Connection loss**: ``on_disconnected`` only marks the connection dead. The next verb tears it
  down and connects again with exponential backoff (capped at 5 s) and subscriptions are made
  afresh; frames that arrived on the dead connection are dropped (the broker redelivers them).
- **extend** is a no-op: the broker keeps an unacked message for as long as the connection lives.
- **close** disconnects; every unacked message returns to its queue. A closed transport's
  ``receive`` returns None; its other verbs raise :class:`TransportError`.
"""

from __future__ import annotations

import logging
import queue as local_queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from autoreduce.transport.common import Delivery, QueueDepth, Transport, TransportError
from autoreduce.transport.stomp_link import StompLink
from autoreduce.transport.stomp_url import parse_stomp_url

logger = logging.getLogger("autoreduce.transport")

MESSAGE_ID_HEADER = "autoreduce_message_id"
RELEASES_HEADER = "autoreduce_releases"
SCHEDULED_DELAY_HEADER = "AMQ_SCHEDULED_DELAY"  # ActiveMQ scheduler, in milliseconds
# Headers the brokers (or STOMP itself) put on a MESSAGE frame: not the sender's headers.
BROKER_HEADERS = frozenset(
    {
        "ack",
        "browser",
        "content-length",
        "content-type",
        "destination",
        "expires",
        "message-id",
        "persistent",
        "priority",
        "receipt",
        "redelivered",
        "subscription",
        "timestamp",
        "scheduledJobId",
        SCHEDULED_DELAY_HEADER,
        "AMQ_SCHEDULED_PERIOD",
        "AMQ_SCHEDULED_REPEAT",
        MESSAGE_ID_HEADER,
        RELEASES_HEADER,
    }
)
CONNECT_TIMEOUT_S = 10.0
RECONNECT_BACKOFF_MAX_S = 5.0
LINK_CHECK_S = 0.5  # how often a waiting receive looks whether its connection died
PURGE_IDLE_S = 0.5  # purge, RabbitMQ browse and take stop after this long without a message
DEPTH_BROWSE_LIMIT = 10_000  # ActiveMQ's depth is counted by browsing at most this many


@dataclass(frozen=True)
class _Held:
    """What acking or releasing a delivery needs: its connection and the frame's ack id."""

    link: StompLink
    ack_id: str
    releases: int
    own_link: bool = False  # a take's private connection, closed once the delivery is settled


class StompTransport(Transport):
    """Queues on an ActiveMQ or RabbitMQ broker over STOMP 1.2."""

    def __init__(
        self,
        broker_url: str,
        *,
        consumer: str = "",
        heartbeat_ms: int = 10_000,
        receipt_timeout_s: float = 10.0,
        reconnect_timeout_s: float = 30.0,
        queue_prefix: str = "",
    ) -> None:
        self.url = parse_stomp_url(broker_url)
        self.consumer = consumer or "stomp-consumer"
        self.heartbeat_ms = (
            self.url.heartbeat_ms if self.url.heartbeat_ms is not None else heartbeat_ms
        )
        self.receipt_timeout_s = receipt_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.queue_prefix = queue_prefix
        self._lock = threading.RLock()
        self._link: StompLink | None = None
        self._taken: set[StompLink] = set()
        self._closed = False

    # --- connections --------------------------------------------------------------------------
    def _destination(self, queue: str) -> str:
        return f"/queue/{self.queue_prefix}{queue}"

    def _open_link(self) -> StompLink:
        link = StompLink(self.url, self.heartbeat_ms)
        link.open(min(CONNECT_TIMEOUT_S, self.receipt_timeout_s))
        return link

    def _current_link(self) -> StompLink:
        """The live connection, reconnecting with backoff if it died. Call with the lock held."""
        if self._closed:
            raise TransportError("the STOMP transport is closed")
        if self._link is not None and self._link.alive:
            return self._link
        if self._link is not None:
            logger.warning("connection to %s lost; reconnecting", self.url)
            self._link.close()
            self._link = None
        retrying = Retrying(
            wait=wait_exponential(multiplier=0.1, max=RECONNECT_BACKOFF_MAX_S),
            stop=stop_after_delay(self.reconnect_timeout_s),
            retry=retry_if_exception_type(TransportError),
            reraise=True,
        )
        self._link = retrying(self._open_link)
        logger.info(
            "%s connected to %s (%s, heart-beat %s)",
            self.consumer,
            self.url,
            self._link.connected_headers.get("server", "?"),
            self._link.connected_headers.get("heart-beat", "0,0"),
        )
        return self._link

    @property
    def connected_headers(self) -> dict[str, str]:
        """The CONNECTED frame's headers (server, negotiated heart-beat) of the live connection."""
        with self._lock:
            return dict(self._current_link().connected_headers)

    # --- the verbs ----------------------------------------------------------------------------
    def _send(self, queue: str, body: str, headers: dict[str, str]) -> None:
        frame_headers = {name: str(value) for name, value in headers.items()}
        frame_headers.setdefault(MESSAGE_ID_HEADER, uuid.uuid4().hex)
        frame_headers["persistent"] = "true"
        destination = self._destination(queue)
        with self._lock:
            link = self._current_link()
            link.request(
                "send",
                lambda receipt: link.connection.send(
                    destination, body, headers={**frame_headers, "receipt": receipt}
                ),
                self.receipt_timeout_s,
            )

    def _consumer_inbox(self, queue: str) -> tuple[StompLink, local_queue.Queue[Any]]:
        with self._lock:
            link = self._current_link()
            subscription_id = link.subscriptions.get(queue)
            if subscription_id is None:
                subscription_id, _ = link.subscribe(
                    self._destination(queue),
                    {"activemq.prefetchSize": "1", "prefetch-count": "1"},
                    "client-individual",
                    self.receipt_timeout_s,
                )
                link.subscriptions[queue] = subscription_id
            return link, link.inboxes[subscription_id]

    def _receive(self, queue: str, timeout_s: float) -> Delivery | None:
        deadline = time.monotonic() + timeout_s
        while not self._closed:
            try:
                link, inbox = self._consumer_inbox(queue)
            except TransportError:
                if self._closed:  # closed by another thread while this one waited
                    return None
                raise
            remaining_s = deadline - time.monotonic()
            try:
                frame = inbox.get(timeout=max(0.0, min(remaining_s, LINK_CHECK_S)))
            except local_queue.Empty:
                if time.monotonic() >= deadline:
                    return None
                continue
            if link.alive:  # a frame of a dead connection is dropped: the broker redelivers it
                return self._delivery(queue, frame, link)
        return None

    def _delivery(
        self, queue: str, frame: Any, link: StompLink | None, *, own_link: bool = False
    ) -> Delivery:
        frame_headers: dict[str, str] = dict(frame.headers)
        releases_text = frame_headers.get(RELEASES_HEADER, "0")
        releases = int(releases_text) if releases_text.isdigit() else 0
        held = None
        if link is not None and "ack" in frame_headers:
            held = _Held(link, frame_headers["ack"], releases, own_link)
        return Delivery(
            queue=queue,
            body=frame.body if isinstance(frame.body, str) else frame.body.decode("utf-8"),
            headers={k: v for k, v in frame_headers.items() if k not in BROKER_HEADERS},
            redelivered=frame_headers.get("redelivered") == "true" or releases > 0,
            handle=held,
            message_id=frame_headers.get(MESSAGE_ID_HEADER) or frame_headers.get("message-id", ""),
        )

    def _ack(self, delivery: Delivery) -> bool:
        held: _Held | None = delivery.handle
        if held is None:
            raise TransportError("this delivery was browsed, not received: it cannot be acked")
        with self._lock:
            if not held.link.alive or (held.link is not self._link and not held.own_link):
                self._settled(held)
                return False  # the broker has put it back already
            try:
                held.link.request(
                    "ack",
                    lambda receipt: held.link.connection.ack(held.ack_id, receipt=receipt),
                    self.receipt_timeout_s,
                )
            except TransportError as error:
                logger.warning("ack of message %s failed: %s", delivery.message_id, error)
                return False
            finally:
                self._settled(held)
            return True

    def _release(self, delivery: Delivery, delay_s: float) -> None:
        held: _Held | None = delivery.handle
        if held is None:
            raise TransportError("this delivery was browsed, not received: it cannot be released")
        with self._lock:
            if not held.link.alive:  # the broker has already put it back
                self._settled(held)
                return
            headers = dict(delivery.headers)
            headers[MESSAGE_ID_HEADER] = delivery.message_id
            headers[RELEASES_HEADER] = str(held.releases + 1)
            if delay_s > 0 and held.link.broker == "activemq":
                headers[SCHEDULED_DELAY_HEADER] = str(round(delay_s * 1000))
            self._send(delivery.queue, delivery.body, headers)
            self._ack(delivery)

    def _settled(self, held: _Held) -> None:
        if held.own_link:
            self._taken.discard(held.link)
            held.link.close()

    def _browse(self, queue: str, limit: int) -> list[Delivery]:
        link = self._open_side_link()
        try:
            if link.broker == "activemq":
                frames = self._browse_activemq(link, self._destination(queue), limit)
            else:
                frames = self._consume_quietly(link, self._destination(queue), limit)
        finally:
            link.close()  # what RabbitMQ lent us unacked returns to the queue
        return [self._delivery(queue, frame, None) for frame in frames]

    def _browse_activemq(
        self, link: StompLink, destination: str, limit: int, selector: str = ""
    ) -> list[Any]:
        headers = {"browser": "true", **({"selector": selector} if selector else {})}
        _, inbox = link.subscribe(destination, headers, "auto", self.receipt_timeout_s)
        frames: list[Any] = []
        while len(frames) < limit:
            try:
                frame = inbox.get(timeout=self.receipt_timeout_s)
            except local_queue.Empty:
                raise TransportError(f"browsing {destination}: the broker did not finish") from None
            if frame.headers.get("browser") == "end":
                break
            frames.append(frame)
        return frames

    def _consume_quietly(
        self,
        link: StompLink,
        destination: str,
        limit: int,
        until: Callable[[Any], bool] | None = None,
        timeout_s: float | None = None,
    ) -> list[Any]:
        """Take up to ``limit`` messages unacked; stop early at the first ``until`` matches."""
        headers = {"prefetch-count": str(limit)} if until is None else {}
        _, inbox = link.subscribe(destination, headers, "client-individual", self.receipt_timeout_s)
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else 1e9)
        frames: list[Any] = []
        while len(frames) < limit and link.alive:
            wait_s = min(PURGE_IDLE_S, max(0.0, deadline - time.monotonic()))
            try:
                frames.append(inbox.get(timeout=wait_s))
            except local_queue.Empty:
                break
            if until is not None and until(frames[-1]):
                break
        return frames

    def _take(self, queue: str, message_id: str, timeout_s: float) -> Delivery | None:
        if not message_id or "'" in message_id:
            return None
        destination = self._destination(queue)
        link = self._open_side_link()
        try:
            if link.broker == "activemq":
                frame = self._take_activemq(link, destination, message_id, timeout_s)
            else:
                frames = self._consume_quietly(
                    link,
                    destination,
                    limit=1_000_000,
                    until=lambda frame: _frame_message_id(frame) == message_id,
                    timeout_s=timeout_s,
                )
                found = frames and _frame_message_id(frames[-1]) == message_id
                frame = frames[-1] if found else None
        except BaseException:
            link.close()
            raise
        if frame is None:
            link.close()
            return None
        with self._lock:
            self._taken.add(link)
        return self._delivery(queue, frame, link, own_link=True)

    def _take_activemq(
        self, link: StompLink, destination: str, message_id: str, timeout_s: float
    ) -> Any:
        selector = f"{MESSAGE_ID_HEADER} = '{message_id}'"
        if message_id.startswith("ID:"):
            selector = f"JMSMessageID = '{message_id}' OR {selector}"
        if not self._browse_activemq(link, destination, 1, selector):
            return None  # not there (or held by another consumer): no need to wait
        headers = {"selector": selector, "activemq.prefetchSize": "1"}
        _, inbox = link.subscribe(destination, headers, "client-individual", self.receipt_timeout_s)
        try:
            return inbox.get(timeout=timeout_s)
        except local_queue.Empty:
            return None

    def _queue_depth(self, queue: str) -> QueueDepth:
        link = self._open_side_link()
        try:
            if link.broker != "activemq":
                return QueueDepth(
                    None,
                    exact=False,
                    note=f"{link.broker} tells queue depths only through its management API, "
                    "which autoreduce does not use; browsing over STOMP would mark every "
                    "message redelivered",
                )
            frames = self._browse_activemq(link, self._destination(queue), DEPTH_BROWSE_LIMIT)
        finally:
            link.close()
        note = "counted by browsing: messages held by a consumer or scheduled for later are not"
        if len(frames) >= DEPTH_BROWSE_LIMIT:
            note = f"at least {DEPTH_BROWSE_LIMIT} (browsing stops there); {note}"
        return QueueDepth(len(frames), exact=False, note=note)

    def _purge(self, queue: str) -> int:
        link = self._open_side_link()
        try:
            _, inbox = link.subscribe(self._destination(queue), {}, "auto", self.receipt_timeout_s)
            count = 0
            while link.alive:
                try:
                    inbox.get(timeout=PURGE_IDLE_S)
                except local_queue.Empty:
                    break
                count += 1
            return count
        finally:
            link.close()

    def _open_side_link(self) -> StompLink:
        """A separate connection for browse, take and purge, so the consumer's stays as it is."""
        if self._closed:
            raise TransportError("the STOMP transport is closed")
        return self._open_link()

    def _check(self) -> None:
        with self._lock:
            if self._closed:
                raise TransportError("the STOMP transport is closed")
            if self._link is not None and self._link.alive:
                return
            if self._link is not None:
                self._link.close()
                self._link = None
            self._link = self._open_link()  # one attempt, no backoff: a health check must answer

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            links = [*self._taken, *([self._link] if self._link else [])]
            self._taken.clear()
            self._link = None
        for link in links:
            link.close()


def _frame_message_id(frame: Any) -> str:
    return str(frame.headers.get(MESSAGE_ID_HEADER) or frame.headers.get("message-id", ""))
