"""Requeue stuck runs: a disaster-recovery sweep that is safe to run at any time.

A run is *stuck* when it has been Queued longer than ``older_than_s`` and is not held (paused
instrument, unapproved plugin: those wait on purpose). For each, in this order:

1. **The broker has its message** (the pending queue is browsed and each body's ``run_id``
   read): left alone.
2. **The outbox says it was never delivered** (its outbox row has no ``sent_at``): the relay
   should have sent it long ago (is the API running, the broker reachable?). The sweep marks
   the row sent (a conditional UPDATE, so only one of two sweeps wins) and publishes it; if the
   broker refuses, the mark is undone.
3. **The broker lost it** (sent, yet not in the queue): a new copy is published, built from its
   outbox row (or from the run's row when there is none), with ``x-requeued: stuck``.

What it guarantees: no second message for a run whose message the broker shows. The SQL queue
shows every message, held ones included, so there it is exact. On ActiveMQ and RabbitMQ a
browse does not see a message a processor holds unacked; a processor holds one only between its
receive and its claim (Queued → Processing, milliseconds), so each run is read again after the
browse and only those still Queued are published. Runs waiting for a retry after a crashed
attempt (``attempts`` > 0) are left alone unless ``include_retried``: ActiveMQ keeps a delayed
retry in its scheduler, where no browse sees it. A duplicate that slips through anyway is
harmless for a run that finishes first (the claim drops it) and costs at most one extra
attempt otherwise (the claim takes a Processing run over, as for a redelivery).
Every re-published run records a ``run.requeue`` audit event.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import Instrument, OutboxMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import PENDING_QUEUE, run_message
from autoreduce.state_machine import HELD_PREFIX
from autoreduce.transport import Transport

BROWSE_LIMIT = 100_000
"""The pending queue is browsed up to this many messages; a fuller queue cannot be checked."""
REQUEUED_HEADER = "x-requeued"


class Action(enum.StrEnum):
    """What the sweep did (or, dry, would do) with one stuck run."""

    PUBLISHED_FROM_OUTBOX = "published-from-outbox"  # the outbox never delivered it
    REPUBLISHED = "republished"  # sent, but the broker no longer has it
    ON_BROKER = "on-broker"  # the broker has its message: left alone
    SENT_MEANWHILE = "sent-meanwhile"  # the relay sent it while the sweep looked
    MOVED_ON = "moved-on"  # no longer Queued when checked again: a processor took it


@dataclass(frozen=True)
class StuckRun:
    run_id: int
    run: str  # "GEM 44733 v0"
    queued_at: datetime
    attempts: int
    action: Action
    outbox_id: int | None = None


@dataclass
class RequeueReport:
    older_than_s: float
    dry_run: bool
    pending_messages_seen: int = 0
    runs: list[StuckRun] = field(default_factory=list)

    def count(self, *actions: Action) -> int:
        return sum(1 for run in self.runs if run.action in actions)


class RequeueRefused(RuntimeError):
    """The sweep cannot know which runs lack a message; nothing was published."""


def _label(run: ReductionRun) -> str:
    return f"{run.instrument} {run.run_number} v{run.run_version}"


def _run_id(body: str) -> int | None:
    try:
        run_id = json.loads(body)["run_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return run_id if isinstance(run_id, int) and not isinstance(run_id, bool) else None


def stuck_runs(
    database: Database, older_than_s: float, *, include_retried: bool = False
) -> list[ReductionRun]:
    """Runs Queued for longer than ``older_than_s`` seconds that are not held, oldest first."""
    paused = select(Instrument.name).where(Instrument.is_paused.is_(True))
    query = (
        select(ReductionRun)
        .where(
            ReductionRun.status == RunStatus.QUEUED,
            ReductionRun.queued_at < utcnow() - timedelta(seconds=older_than_s),
            ReductionRun.instrument.not_in(paused),
            ~ReductionRun.message.startswith(HELD_PREFIX, autoescape=True),
        )
        .order_by(ReductionRun.queued_at, ReductionRun.id)
    )
    if not include_retried:
        query = query.where(ReductionRun.attempts == 0)
    with database.read_session() as session:
        runs = list(session.scalars(query))
        session.expunge_all()
    return runs


def _outbox_rows(database: Database, runs: list[ReductionRun]) -> dict[int, list[OutboxMessage]]:
    """The outbox rows of ``runs``, by run id (rows are found by the ``run_id`` of their body)."""
    if not runs:
        return {}
    wanted = {run.id for run in runs}
    since = min(run.queued_at for run in runs) - timedelta(minutes=1)
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.queue == PENDING_QUEUE,
            OutboxMessage.instrument.in_({run.instrument for run in runs}),
            OutboxMessage.created_at >= since,
        )
        .order_by(OutboxMessage.id)
    )
    rows: dict[int, list[OutboxMessage]] = {}
    with database.read_session() as session:
        for row in session.scalars(query):
            run_id = _run_id(row.body)
            if run_id in wanted:
                rows.setdefault(run_id, []).append(row)
        session.expunge_all()
    return rows


def _messages_on_broker(transport: Transport) -> tuple[set[int], int]:
    """Run ids that have a message in the pending queue, and how many messages were seen."""
    deliveries = transport.browse(PENDING_QUEUE, BROWSE_LIMIT)
    if len(deliveries) >= BROWSE_LIMIT:
        raise RequeueRefused(
            f"the pending queue holds at least {BROWSE_LIMIT} messages; the sweep cannot check "
            "every run against it, so nothing was re-published"
        )
    run_ids = {run_id for d in deliveries if (run_id := _run_id(d.body)) is not None}
    return run_ids, len(deliveries)


def _still_queued(database: Database, run_ids: Iterable[int]) -> set[int]:
    with database.read_session() as session:
        return set(
            session.scalars(
                select(ReductionRun.id).where(
                    ReductionRun.id.in_(list(run_ids)), ReductionRun.status == RunStatus.QUEUED
                )
            )
        )


def _message_of(run: ReductionRun) -> str:
    """A run message built from the run's row, for a run that has no outbox row."""
    return run_message(run).to_json()


class _Sweep:
    def __init__(self, database: Database, transport: Transport, actor: Actor) -> None:
        self.database = database
        self.transport = transport
        self.actor = actor

    def publish_unsent(self, run: ReductionRun, row: OutboxMessage) -> bool:
        """Publish an outbox row the relay never sent; False if it was sent meanwhile."""
        with self.database.session() as session:
            claimed = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.sent_at.is_(None))
                .values(sent_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return False
        try:
            self.transport.send(
                row.queue, row.body, {"x-outbox-id": str(row.id), REQUEUED_HEADER: "stuck"}
            )
        except BaseException:
            with self.database.session() as session:  # the relay will try it again
                session.execute(
                    update(OutboxMessage).where(OutboxMessage.id == row.id).values(sent_at=None),
                    execution_options={"synchronize_session": False},
                )
            raise
        self._audit(run, "the outbox never delivered it", row.id)
        return True

    def republish(self, run: ReductionRun, row: OutboxMessage | None) -> None:
        headers = {REQUEUED_HEADER: "stuck"}
        if row is not None:
            headers["x-outbox-id"] = str(row.id)
        body = row.body if row is not None else _message_of(run)
        self.transport.send(PENDING_QUEUE, body, headers)
        self._audit(run, "the broker lost its message", row.id if row else None)

    def _audit(self, run: ReductionRun, why: str, outbox_id: int | None) -> None:
        with self.database.session() as session:
            record_event(
                session,
                self.actor,
                "run.requeue",
                _label(run),
                instrument=run.instrument,
                details={"why": why, "outbox_id": outbox_id},
            )


def requeue_stuck(
    database: Database,
    transport: Transport,
    *,
    older_than_s: float,
    actor: Actor,
    dry_run: bool = False,
    include_retried: bool = False,
) -> RequeueReport:
    """Re-publish what the stuck runs lack (see the module's doc); what was done to each."""
    report = RequeueReport(older_than_s=older_than_s, dry_run=dry_run)
    runs = stuck_runs(database, older_than_s, include_retried=include_retried)
    if not runs:
        return report
    outbox = _outbox_rows(database, runs)
    on_broker, report.pending_messages_seen = _messages_on_broker(transport)
    queued = _still_queued(database, (run.id for run in runs))  # read after the browse
    sweep = _Sweep(database, transport, actor)
    for run in runs:
        rows = outbox.get(run.id, [])
        unsent = next((row for row in rows if row.sent_at is None), None)
        last = rows[-1] if rows else None
        if run.id not in queued:
            action = Action.MOVED_ON
        elif run.id in on_broker:
            action = Action.ON_BROKER
        elif unsent is not None:
            action = Action.PUBLISHED_FROM_OUTBOX
            if not dry_run and not sweep.publish_unsent(run, unsent):
                action = Action.SENT_MEANWHILE
            last = unsent
        else:
            action = Action.REPUBLISHED
            if not dry_run:
                sweep.republish(run, last)
        report.runs.append(
            StuckRun(
                run_id=run.id,
                run=_label(run),
                queued_at=run.queued_at,
                attempts=run.attempts,
                action=action,
                outbox_id=last.id if last else None,
            )
        )
    return report
