"""The outbox relay: publishes the messages recorded with their runs, then marks them sent.

The API writes a run and its outgoing message in one transaction (DESIGN §4, delivery
guarantees); this relay moves unsent outbox rows to the broker in id order, so runs of one
instrument reach the queue in the order they were recorded. A row is marked ``sent_at`` only
after the transport accepted it: a broker outage delays runs, it never loses one. A crash between
the send and the mark publishes that message twice, which the processors tolerate (every run
transition is conditional). Rows of paused instruments are held until the instrument resumes;
rows of instruments whose plugin (as installed here) is not approved are held until it is, and
rows a processor handed back for its own unapproved release until that release is approved
(:mod:`autoreduce.plugin_approvals`).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update

from autoreduce.db import Database
from autoreduce.db.models import Instrument, OutboxMessage, ReductionRun, utcnow
from autoreduce.messages import PENDING_QUEUE, run_message
from autoreduce.plugin_approvals import PluginGate, approved_held_rows, mark_held_runs
from autoreduce.state_machine import one_line
from autoreduce.transport import Transport

logger = logging.getLogger("autoreduce.outbox")

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


def outbox_message(run: ReductionRun) -> OutboxMessage:
    """The outbox row that queues ``run`` (recorded, so its id is known) for reduction."""
    message = run_message(run)
    return OutboxMessage(instrument=run.instrument, queue=PENDING_QUEUE, body=message.to_json())


class OutboxRelay:
    """Publish unsent outbox rows through ``transport``.

    ``batch_size`` rows are read per pass; with nothing to do the loop sleeps up to
    ``idle_wait_s`` seconds or until :meth:`wake` is called. ``gate`` says which instruments'
    plugins are not approved here (none without it).
    """

    def __init__(
        self,
        database: Database,
        transport: Transport,
        *,
        batch_size: int = 100,
        idle_wait_s: float = 0.5,
        gate: PluginGate | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.database = database
        self.transport = transport
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.gate = gate
        self._blocked_seen: dict[str, str] = {}
        self._wake = threading.Event()

    def wake(self) -> None:
        """Ask the loop to look at the outbox now (a run was recorded or an instrument resumed)."""
        self._wake.set()

    def _next_batch(self) -> list[OutboxMessage]:
        paused = select(Instrument.name).where(Instrument.is_paused.is_(True))
        with self.database.read_session() as session:
            blocked = self.gate.blocked(session) if self.gate is not None else {}
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.sent_at.is_(None),
                    OutboxMessage.instrument.not_in(paused),
                    OutboxMessage.instrument.not_in(list(blocked)),
                    approved_held_rows(),
                )
                .order_by(OutboxMessage.id)
                .limit(self.batch_size)
            )
            batch = list(session.scalars(query).all())
        if blocked != self._blocked_seen:  # a verdict or the installed plugins changed
            with self.database.session() as session:
                mark_held_runs(session, blocked)
            self._blocked_seen = blocked
        return batch

    def _mark_sent(self, message_id: int) -> None:
        with self.database.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None))
                .values(sent_at=utcnow())
            )

    def relay_once(self) -> int:
        """Publish one batch of unsent rows in id order; the number published.

        The first failure stops the batch (and propagates) so that no later message overtakes
        an earlier one.
        """
        published = 0
        for message in self._next_batch():
            self.transport.send(
                message.queue, message.body, headers={"x-outbox-id": str(message.id)}
            )
            self._mark_sent(message.id)
            published += 1
        return published

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; errors are logged in one line and retried with backoff."""
        backoff_s = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                published = self.relay_once()
            except Exception as error:  # the relay must outlive any broker or database outage
                backoff_s = min(max(backoff_s * 2, FIRST_BACKOFF_S), MAX_BACKOFF_S)
                logger.warning(
                    "outbox relay cannot publish (%s: %s); retrying in %.1f s",
                    type(error).__name__,
                    one_line(str(error), 300),
                    backoff_s,
                )
                stop.wait(backoff_s)
                continue
            if backoff_s:
                logger.info("outbox relay publishing again")
                backoff_s = 0.0
            if published < self.batch_size:
                self._wake.wait(self.idle_wait_s)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run the relay in a daemon thread; set ``stop`` and call :meth:`wake` to end it."""
        thread = threading.Thread(target=self.run, args=(stop,), name="outbox-relay", daemon=True)
        thread.start()
        return thread
