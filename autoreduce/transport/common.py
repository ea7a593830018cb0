"""The transport interface: public verbs here, each backend implements the ``_verbs``."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoreduce.messages import DEAD_LETTER_QUEUE


class TransportError(RuntimeError):
    """The broker cannot be used as configured, or refused an operation."""


@dataclass(frozen=True)
class Delivery:
    """One received message, held by this consumer until acked, released or dead-lettered."""

    queue: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    redelivered: bool = False
    handle: Any = None  # what the backend needs to ack or release this delivery
    message_id: str = ""  # the broker's id of the message, stable across deliveries


@dataclass(frozen=True)
class QueueDepth:
    """How many messages a queue holds, as far as the broker lets us see.

    ``messages`` is None when the broker cannot tell (``note`` says why); ``exact`` is False when
    the count is a lower bound or leaves some messages out (``note`` says which).
    """

    messages: int | None
    in_flight: int | None = None  # delivered to a consumer and not yet acked
    exact: bool = True
    note: str = ""


class Transport(abc.ABC):
    """Send, receive, acknowledge: the verbs the services use, whatever the broker."""

    def send(self, queue: str, body: str, headers: dict[str, str] | None = None) -> None:
        """Publish ``body`` persistently; returns once the broker has it."""
        self._send(queue, body, dict(headers or {}))

    def receive(self, queue: str, timeout_s: float) -> Delivery | None:
        """The next message of ``queue``, waiting at most ``timeout_s``; None if there is none."""
        return self._receive(queue, timeout_s)

    def ack(self, delivery: Delivery) -> bool:
        """Remove a delivery for good; False if this consumer no longer held it."""
        return self._ack(delivery)

    def ack_within(self, session: Any, delivery: Delivery, database_url: str) -> bool | None:
        """Ack ``delivery`` inside ``session``'s transaction on the database at ``database_url``,
        so the ack commits with the result or not at all; None when this transport cannot (its
        queue is elsewhere): then ack after the commit."""
        return None

    def release(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        """Give a delivery back to the queue, to be delivered again after ``delay_s``."""
        self._release(delivery, delay_s)

    def extend(self, delivery: Delivery) -> None:
        """Tell the broker this consumer still works on ``delivery`` (no-op where not needed)."""
        self._extend(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy a delivery to the dead-letter queue with its reason, then ack it."""
        headers = dict(delivery.headers)
        headers["x-dead-letter-reason"] = reason[:1000]
        headers["x-original-queue"] = delivery.queue
        headers["x-dead-lettered-at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._send(DEAD_LETTER_QUEUE, delivery.body, headers)
        self._ack(delivery)

    def browse(self, queue: str, limit: int = 100) -> list[Delivery]:
        """Up to ``limit`` messages of ``queue``, oldest first, left in the queue."""
        return self._browse(queue, limit)

    def take(self, queue: str, message_id: str, timeout_s: float = 5.0) -> Delivery | None:
        """Receive the message ``message_id`` of ``queue`` (to ack or release), or None."""
        return self._take(queue, message_id, timeout_s)

    def queue_depth(self, queue: str) -> QueueDepth:
        """How many messages ``queue`` holds, or why that cannot be known."""
        return self._queue_depth(queue)

    def purge(self, queue: str) -> int:
        """Remove every message of ``queue``; how many there were."""
        return self._purge(queue)

    def check(self) -> None:
        """Raise :class:`TransportError` unless the broker answers (for health checks)."""
        self._check()

    def close(self) -> None:
        """Release the connection; pending deliveries return to the queue."""
        self._close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _send(self, queue: str, body: str, headers: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def _receive(self, queue: str, timeout_s: float) -> Delivery | None: ...

    @abc.abstractmethod
    def _ack(self, delivery: Delivery) -> bool: ...

    @abc.abstractmethod
    def _release(self, delivery: Delivery, delay_s: float) -> None: ...

    @abc.abstractmethod
    def _browse(self, queue: str, limit: int) -> list[Delivery]: ...

    @abc.abstractmethod
    def _take(self, queue: str, message_id: str, timeout_s: float) -> Delivery | None: ...

    @abc.abstractmethod
    def _purge(self, queue: str) -> int: ...

    def _extend(self, delivery: Delivery) -> None:
        return None

    def _queue_depth(self, queue: str) -> QueueDepth:
        return QueueDepth(None, exact=False, note="this broker does not tell queue depths")

    def _check(self) -> None:
        return None

    def _close(self) -> None:
        return None
