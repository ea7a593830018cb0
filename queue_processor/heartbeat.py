"""A processor's heartbeat: its row in ``processor_heartbeats``, and the claim on its run kept.

The heartbeat runs on its own thread, never on the thread that waits for a reduction, so a long
reduction neither looks dead to the API nor lets its message's visibility lapse. Each beat also
looks (one primary-key read) whether cancelling the run in hand was asked for; the launcher's
wait loop asks :meth:`Heartbeat.cancel_requested`, which reads memory only.

The same row carries a drain request (``autoreduce processors drain ID``): each beat reads it, and
the claim reads it afresh in its own transaction (:func:`queue_processor.claim.claim_run`), so a
processor takes no run once the request is committed. A processor that starts clears its row's
request: starting a processor again is the operator's way of putting it back to work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import ProcessorHeartbeat, ReductionRun, utcnow
from autoreduce.transport import Delivery, Transport

logger = logging.getLogger("autoreduce.process")


class Heartbeat:
    def __init__(
        self, database: Database, transport: Transport, processor_id: str, interval_s: float
    ) -> None:
        self.database = database
        self.transport = transport
        self.processor_id = processor_id
        self.interval_s = interval_s
        self.started_at: datetime = utcnow()
        self._current: tuple[int, Delivery] | None = None
        self._cancel_seen_for: int | None = None  # the run in hand, once a cancel was asked
        self._draining = False  # the last drain request seen (by a beat or a fresh read)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> None:
        with self.database.session() as session:  # a drain of an earlier life is withdrawn
            session.execute(
                update(ProcessorHeartbeat)
                .where(ProcessorHeartbeat.id == self.processor_id)
                .values(drain_requested_at=None, drain_requested_by="", drained_at=None)
            )
        self.beat()
        self._thread.start()

    def holding(self, run_id: int | None, delivery: Delivery | None = None) -> None:
        """Say which run (and delivery) this processor holds now; None when idle."""
        self._current = (run_id, delivery) if run_id is not None and delivery else None

    def cancel_requested(self, run_id: int) -> bool:
        """True once a beat has seen a request to cancel run ``run_id`` (read from memory)."""
        return self._cancel_seen_for == run_id

    @property
    def draining(self) -> bool:
        """True once a drain request was seen, until it is withdrawn (read from memory)."""
        return self._draining

    def note_drain_requested(self) -> None:
        """A fresh read (the claim's) saw this processor's drain request."""
        self._draining = True

    def drain_requested(self) -> bool:
        """Read this processor's drain request afresh (one primary-key read)."""
        with self.database.read_session() as session:
            requested = session.scalar(
                select(ProcessorHeartbeat.drain_requested_at).where(
                    ProcessorHeartbeat.id == self.processor_id
                )
            )
        self._draining = requested is not None
        return self._draining

    def mark_drained(self) -> None:
        """Record that this processor, drained, now idles with no run in hand."""
        with self.database.session() as session:
            session.execute(
                update(ProcessorHeartbeat)
                .where(
                    ProcessorHeartbeat.id == self.processor_id,
                    ProcessorHeartbeat.drain_requested_at.is_not(None),
                    ProcessorHeartbeat.drained_at.is_(None),
                )
                .values(drained_at=utcnow())
            )

    def beat(self) -> None:
        current = self._current
        with self.database.session() as session:
            if current and session.scalar(
                select(ReductionRun.cancel_requested_at).where(ReductionRun.id == current[0])
            ):
                self._cancel_seen_for = current[0]
            self._draining = (
                session.scalar(
                    select(ProcessorHeartbeat.drain_requested_at).where(
                        ProcessorHeartbeat.id == self.processor_id
                    )
                )
                is not None
            )
            session.merge(
                ProcessorHeartbeat(
                    id=self.processor_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=self.started_at,
                    last_seen_at=utcnow(),
                    current_run_id=current[0] if current else None,
                    stopped_at=None,
                )
            )
        if current:
            self.transport.extend(current[1])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as error:  # a missed beat is logged, the next one retries
                logger.warning("heartbeat failed: %s: %s", type(error).__name__, error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
        try:
            with self.database.session() as session:
                session.execute(
                    update(ProcessorHeartbeat)
                    .where(ProcessorHeartbeat.id == self.processor_id)
                    .values(stopped_at=utcnow(), current_run_id=None)
                )
        except Exception as error:
            logger.warning("could not record the processor's stop: %s", error)
