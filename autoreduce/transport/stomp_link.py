"""One STOMP connection: frames routed to local queues, receipts awaited, never patched in place.

stomp.py's receiver thread only records what arrives (CONNECTED, MESSAGE, RECEIPT, ERROR,
disconnection) and hands it over; every decision happens on the caller's thread. A connection that
died is marked dead and replaced whole by :class:`~autoreduce.transport.stomp.StompTransport`.
"""

from __future__ import annotations

import itertools
import logging
import queue as local_queue
import threading
from collections.abc import Callable
from typing import Any

import stomp
from stomp.exception import ConnectFailedException

from autoreduce.transport.common import TransportError
from autoreduce.transport.stomp_url import StompUrl

logger = logging.getLogger("autoreduce.transport")
DISCONNECT_WAIT_S = 2.0


class StompLink(stomp.ConnectionListener):
    """One STOMP connection: its frames routed to local queues, its receipts awaited."""

    def __init__(self, url: StompUrl, heartbeat_ms: int) -> None:
        self.url = url
        self.connection = stomp.Connection12(
            list(url.hosts),
            prefer_localhost=False,  # the URL's order is the failover order
            try_loopback_connect=False,
            reconnect_attempts_max=1,  # one pass over the hosts; the backoff is ours
            reconnect_sleep_initial=0.05,
            heartbeats=(heartbeat_ms, heartbeat_ms),
            vhost=url.vhost,
        )
        self.connection.set_listener("autoreduce", self)
        self.alive = False
        self.connected_headers: dict[str, str] = {}
        self.inboxes: dict[str, local_queue.Queue[Any]] = {}  # subscription id -> MESSAGE frames
        self.subscriptions: dict[str, str] = {}  # queue name -> subscription id
        self._ids = itertools.count(1)
        self._answered = threading.Event()  # CONNECTED or ERROR arrived
        self._disconnected = threading.Event()
        self._receipts: dict[str, threading.Event] = {}
        self._failures: dict[str, str] = {}
        self._error = ""

    # --- stomp.py's receiver thread: record and hand over, nothing more ------------------------
    def on_connected(self, frame: Any) -> None:
        self.connected_headers = dict(frame.headers)
        self.alive = True
        self._answered.set()

    def on_message(self, frame: Any) -> None:
        inbox = self.inboxes.get(frame.headers.get("subscription", ""))
        if inbox is not None:
            inbox.put(frame)

    def on_receipt(self, frame: Any) -> None:
        event = self._receipts.get(frame.headers.get("receipt-id", ""))
        if event is not None:
            event.set()

    def on_error(self, frame: Any) -> None:
        lines = str(frame.body or "").strip().splitlines()
        self._error = frame.headers.get("message", "") or (lines[0] if lines else "ERROR frame")
        receipt_id = frame.headers.get("receipt-id")
        if receipt_id in self._receipts:
            self._failures[receipt_id] = self._error
            self._receipts[receipt_id].set()
            return
        # An error about no frame of ours: the session's state is unknown; start afresh.
        self.alive = False
        self._answered.set()
        self._wake_all()

    def on_disconnected(self) -> None:
        self.alive = False
        self._disconnected.set()
        self._answered.set()
        self._wake_all()

    def on_heartbeat_timeout(self) -> None:
        self.alive = False
        self._wake_all()

    def _wake_all(self) -> None:
        for event in list(self._receipts.values()):
            event.set()

    # --- the caller's thread ------------------------------------------------------------------
    @property
    def broker(self) -> str:
        """``activemq``, ``rabbitmq`` or ``other``, from the CONNECTED frame's server header."""
        server = self.connected_headers.get("server", "").lower()
        return next((name for name in ("activemq", "rabbitmq") if name in server), "other")

    def open(self, timeout_s: float) -> None:
        try:
            self.connection.connect(self.url.username, self.url.password, wait=False)
        except ConnectFailedException:
            raise TransportError(f"no STOMP broker answers at {self.url}") from None
        except OSError as error:
            raise TransportError(f"cannot reach {self.url}: {error.strerror or error}") from None
        if not self._answered.wait(timeout_s) or not self.alive:
            reason = self._error or f"no CONNECTED frame within {timeout_s:g} s"
            self.close()
            raise TransportError(f"STOMP broker at {self.url} refused the connection: {reason}")

    def request(self, action: str, send_frame: Callable[[str], None], timeout_s: float) -> None:
        """Send one frame with a receipt id and wait for the broker's RECEIPT."""
        receipt_id = f"{action}-{next(self._ids)}"
        event = self._receipts[receipt_id] = threading.Event()
        try:
            if not self.alive:
                raise TransportError(f"{action}: the connection to {self.url} is closed")
            try:
                send_frame(receipt_id)
            except Exception as error:
                self.alive = False
                raise TransportError(
                    f"{action}: connection to {self.url} lost ({type(error).__name__})"
                ) from None
            if not event.wait(timeout_s):
                self.alive = False  # a broker this slow is treated as gone
                raise TransportError(f"{action}: no receipt from {self.url} within {timeout_s:g} s")
            if receipt_id in self._failures:
                raise TransportError(f"{action}: broker refused it: {self._failures[receipt_id]}")
            if not self.alive:
                raise TransportError(f"{action}: connection to {self.url} lost")
        finally:
            self._receipts.pop(receipt_id, None)
            self._failures.pop(receipt_id, None)

    def subscribe(
        self, destination: str, headers: dict[str, str], ack: str, timeout_s: float
    ) -> tuple[str, local_queue.Queue[Any]]:
        subscription_id = f"sub-{next(self._ids)}"
        inbox: local_queue.Queue[Any] = local_queue.Queue()
        self.inboxes[subscription_id] = inbox  # before SUBSCRIBE, so no frame is missed
        self.request(
            "subscribe",
            lambda receipt: self.connection.subscribe(
                destination, subscription_id, ack=ack, headers={**headers, "receipt": receipt}
            ),
            timeout_s,
        )
        return subscription_id, inbox

    def close(self) -> None:
        """Disconnect; the broker returns every unacked message to its queue."""
        self.alive = False
        try:
            if self.connection.is_connected():
                self.connection.disconnect()  # the socket closes when its receipt arrives
                self._disconnected.wait(DISCONNECT_WAIT_S)
        except Exception as error:  # already gone: nothing left to say goodbye to
            logger.debug("STOMP disconnect from %s: %s", self.url, type(error).__name__)
        try:
            self.connection.transport.disconnect_socket()
        except Exception as error:
            logger.debug("closing the STOMP socket to %s: %s", self.url, type(error).__name__)
        self._wake_all()
