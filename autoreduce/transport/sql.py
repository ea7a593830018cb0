"""The embedded broker: a queue table in the service's own database.

A claim hides a message for ``visibility_timeout_s``; a consumer that dies without acking lets it
reappear, with ``redelivered`` set. Each claim bumps the row's ``deliveries`` count, and ack,
release and extend only touch the row while it still carries this consumer's claim, so a consumer
whose claim lapsed can never ack a message someone else now holds. On MySQL/MariaDB the claim
uses ``SELECT … FOR UPDATE SKIP LOCKED``; on SQLite the whole claim runs in one ``BEGIN
IMMEDIATE`` transaction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, update

from autoreduce.db import Database
from autoreduce.db.models import QueueMessage, utcnow
from autoreduce.transport.common import Delivery, QueueDepth, Transport, TransportError

MIN_IDLE_WAIT_S = 0.005


@dataclass(frozen=True)
class _Claim:
    message_id: int
    deliveries: int


class SqlTransport(Transport):
    def __init__(
        self,
        database_url: str,
        *,
        consumer: str = "",
        visibility_timeout_s: float = 60.0,
        poll_interval_s: float = 0.1,
        database: Database | None = None,
    ) -> None:
        self.database = database or Database(database_url)
        self.consumer = consumer or "sql-consumer"
        self.visibility_timeout_s = visibility_timeout_s
        self.poll_interval_s = poll_interval_s
        self._closed = threading.Event()

    def _send(self, queue: str, body: str, headers: dict[str, str]) -> None:
        with self.database.session() as session:
            session.add(QueueMessage(queue=queue, body=body, headers=headers))

    def _claim(self, queue: str, message_id: int | None = None) -> Delivery | None:
        now = utcnow()
        query = select(QueueMessage).where(
            QueueMessage.queue == queue, QueueMessage.visible_at <= now
        )
        if message_id is not None:
            query = query.where(QueueMessage.id == message_id)
        with self.database.session() as session:
            row = session.execute(
                query.order_by(QueueMessage.id).limit(1).with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if row is None:
                return None
            row.deliveries += 1
            row.claimed_by = self.consumer
            row.visible_at = now + timedelta(seconds=self.visibility_timeout_s)
            return _delivery(row)

    def _receive(self, queue: str, timeout_s: float) -> Delivery | None:
        deadline = utcnow() + timedelta(seconds=timeout_s)
        wait_s = MIN_IDLE_WAIT_S
        while not self._closed.is_set():
            delivery = self._claim(queue)
            if delivery is not None:
                return delivery
            remaining_s = (deadline - utcnow()).total_seconds()
            if remaining_s <= 0:
                return None
            # Poll fast right after work, slower when the queue stays empty.
            self._closed.wait(min(wait_s, remaining_s))
            wait_s = min(wait_s * 2, self.poll_interval_s)
        return None

    def _held(self, delivery: Delivery) -> ColumnElement[bool]:
        claim: _Claim = delivery.handle
        return and_(
            QueueMessage.id == claim.message_id,
            QueueMessage.claimed_by == self.consumer,
            QueueMessage.deliveries == claim.deliveries,
        )

    def _ack(self, delivery: Delivery) -> bool:
        with self.database.session() as session:
            result = session.execute(
                delete(QueueMessage).where(self._held(delivery)),
                execution_options={"synchronize_session": False},
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def ack_within(self, session: Any, delivery: Delivery, database_url: str) -> bool | None:
        if database_url != self.database.url:
            return None  # the queue table is in another database
        result = session.execute(
            delete(QueueMessage).where(self._held(delivery)),
            execution_options={"synchronize_session": False},
        )
        return bool(result.rowcount)

    def _release(self, delivery: Delivery, delay_s: float) -> None:
        with self.database.session() as session:
            session.execute(
                update(QueueMessage)
                .where(self._held(delivery))
                .values(visible_at=utcnow() + timedelta(seconds=delay_s), claimed_by=""),
                execution_options={"synchronize_session": False},
            )

    def _extend(self, delivery: Delivery) -> None:
        with self.database.session() as session:
            session.execute(
                update(QueueMessage)
                .where(self._held(delivery))
                .values(visible_at=utcnow() + timedelta(seconds=self.visibility_timeout_s)),
                execution_options={"synchronize_session": False},
            )

    def _browse(self, queue: str, limit: int) -> list[Delivery]:
        query = (
            select(QueueMessage)
            .where(QueueMessage.queue == queue)
            .order_by(QueueMessage.id)
            .limit(limit)
        )
        with self.database.session() as session:
            return [_delivery(row, claim=False) for row in session.scalars(query)]

    def _take(self, queue: str, message_id: str, timeout_s: float) -> Delivery | None:
        if not (message_id.isascii() and message_id.isdigit() and len(message_id) <= 18):
            return None  # not an id of this table (and "²".isdigit() is True)
        return self._claim(queue, int(message_id))

    def _purge(self, queue: str) -> int:
        with self.database.session() as session:
            result = session.execute(delete(QueueMessage).where(QueueMessage.queue == queue))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def _check(self) -> None:
        try:
            with self.database.session() as session:
                session.execute(select(1))
        except Exception as error:  # any driver error means "not reachable"
            raise TransportError(f"queue table unreachable: {type(error).__name__}") from None

    def _close(self) -> None:
        self._closed.set()

    def _queue_depth(self, queue: str) -> QueueDepth:
        in_queue = QueueMessage.queue == queue
        held = and_(in_queue, QueueMessage.claimed_by != "", QueueMessage.visible_at > utcnow())
        with self.database.session() as session:
            total = session.scalar(select(func.count()).select_from(QueueMessage).where(in_queue))
            in_flight = session.scalar(select(func.count()).select_from(QueueMessage).where(held))
        return QueueDepth(int(total or 0), in_flight=int(in_flight or 0))

    def depth(self, queue: str) -> int:
        """How many messages ``queue`` holds, claimed or not."""
        query = select(func.count()).select_from(QueueMessage).where(QueueMessage.queue == queue)
        with self.database.session() as session:
            return int(session.scalar(query) or 0)


def _delivery(row: QueueMessage, *, claim: bool = True) -> Delivery:
    return Delivery(
        queue=row.queue,
        body=row.body,
        headers=dict(row.headers or {}),
        redelivered=row.deliveries > 1,
        handle=_Claim(row.id, row.deliveries) if claim else None,
        message_id=str(row.id),
    )
