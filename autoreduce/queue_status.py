"""The state of the queue at a glance: depths, outbox backlog, runs waiting, processors.

One function, :func:`queue_status`, serves ``autoreduce queue status`` and ``GET
/api/v1/queue``, so the command and the API can never disagree. Depths come from the transport
(:meth:`~autoreduce.transport.Transport.queue_depth`): exact on the SQL queue, counted by
browsing on ActiveMQ, unknown on RabbitMQ, each with a note that says which. A broker that does
not answer makes its depths unknown with the reason; the rest of the report still comes.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import Instrument, OutboxMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.processors import ProcessorView, list_processors
from autoreduce.settings import Settings
from autoreduce.state_machine import HELD_PREFIX, one_line
from autoreduce.transport import QueueDepth, Transport
from autoreduce.transport.stomp_url import redact_url


class QueueReport(BaseModel):
    """One broker queue's depth."""

    name: str
    messages: int | None = Field(description="Messages in the queue; null when it cannot be known.")
    in_flight: int | None = Field(
        None, description="Of those, delivered to a processor and not yet acked (if known)."
    )
    exact: bool = Field(description="False when the count leaves some messages out or is unknown.")
    note: str = Field("", description="How it was counted, or why it is unknown.")


class HeldOutbox(BaseModel):
    """Outbox rows the relay keeps back on purpose, and why."""

    instrument: str
    messages: int
    reason: str


class OutboxReport(BaseModel):
    """Messages recorded with their runs and not yet published to the broker."""

    unsent: int = Field(description="Rows the relay should publish now (not held).")
    oldest_unsent_at: datetime | None = Field(description="When the oldest of those was recorded.")
    held: list[HeldOutbox] = Field(description="Rows held back, by instrument, with the reason.")


class RunCounts(BaseModel):
    queued: int = Field(description="Runs waiting to be reduced (held ones included).")
    held: int = Field(description="Of the queued, held back (e.g. their instrument is paused).")
    processing: int


class CurrentRunReport(BaseModel):
    id: int
    run: str = Field(description="`GEM 44733 v0`.")
    status: str
    started_at: datetime | None
    attempts: int


class ProcessorReport(BaseModel):
    id: str
    host: str
    pid: int
    state: str = Field(description="idle, busy, draining, drained, stopped or silent.")
    alive: bool
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    drain_requested_at: datetime | None
    drain_requested_by: str
    drained_at: datetime | None
    current_run: CurrentRunReport | None
    slurm_jobs: int = Field(0, description="Slurm jobs its follower follows (handed off).")


class QueueStatus(BaseModel):
    """Everything ``autoreduce queue status`` shows."""

    checked_at: datetime
    broker: str = Field(description="The broker URL, password masked; `sql://` is the table.")
    queues: list[QueueReport]
    outbox: OutboxReport
    runs: RunCounts
    processors: list[ProcessorReport] = Field(
        description="Processors seen within `processor_history_s`, alive first."
    )


def _depth(transport: Transport, queue: str) -> QueueReport:
    try:
        depth = transport.queue_depth(queue)
    except Exception as error:  # an unreachable broker is a fact to report, not a failure
        depth = QueueDepth(None, exact=False, note=one_line(f"broker unreachable: {error}", 300))
    return QueueReport(
        name=queue,
        messages=depth.messages,
        in_flight=depth.in_flight,
        exact=depth.exact and depth.messages is not None,
        note=depth.note,
    )


def _outbox(session: Session) -> OutboxReport:
    paused = select(Instrument.name).where(Instrument.is_paused.is_(True))
    unsent = OutboxMessage.sent_at.is_(None)
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            unsent, OutboxMessage.instrument.not_in(paused)
        )
    ).one()
    held_rows = session.execute(
        select(OutboxMessage.instrument, func.count())
        .where(unsent, OutboxMessage.instrument.in_(paused))
        .group_by(OutboxMessage.instrument)
        .order_by(OutboxMessage.instrument)
    ).all()
    held = [
        HeldOutbox(
            instrument=instrument,
            messages=int(messages),
            reason=f"instrument {instrument} is paused; sent when it resumes",
        )
        for instrument, messages in held_rows
    ]
    return OutboxReport(unsent=int(count or 0), oldest_unsent_at=oldest, held=held)


def _runs(session: Session) -> RunCounts:
    counts = dict(
        session.execute(
            select(ReductionRun.status, func.count())
            .where(ReductionRun.status.in_([RunStatus.QUEUED, RunStatus.PROCESSING]))
            .group_by(ReductionRun.status)
        ).all()
    )
    held = session.scalar(
        select(func.count()).where(
            ReductionRun.status == RunStatus.QUEUED,
            ReductionRun.message.startswith(HELD_PREFIX, autoescape=True),
        )
    )
    return RunCounts(
        queued=int(counts.get(RunStatus.QUEUED, 0)),
        held=int(held or 0),
        processing=int(counts.get(RunStatus.PROCESSING, 0)),
    )


def processor_report(view: ProcessorView) -> ProcessorReport:
    current = view.current_run
    return ProcessorReport(
        id=view.id,
        host=view.host,
        pid=view.pid,
        state=str(view.state),
        alive=view.alive,
        started_at=view.started_at,
        last_seen_at=view.last_seen_at,
        stopped_at=view.stopped_at,
        drain_requested_at=view.drain_requested_at,
        drain_requested_by=view.drain_requested_by,
        drained_at=view.drained_at,
        slurm_jobs=view.slurm_jobs,
        current_run=None
        if current is None
        else CurrentRunReport(
            id=current.id,
            run=current.label,
            status=current.status,
            started_at=current.started_at,
            attempts=current.attempts,
        ),
    )


def queue_status(database: Database, transport: Transport, settings: Settings) -> QueueStatus:
    """The queue's state now (database reads, then one look at each broker queue)."""
    with database.read_session() as session:
        outbox = _outbox(session)
        runs = _runs(session)
        processors = list_processors(
            session,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            history_s=settings.processor_history_s,
        )
    return QueueStatus(
        checked_at=utcnow(),
        broker=redact_url(settings.broker_url),
        queues=[_depth(transport, PENDING_QUEUE), _depth(transport, DEAD_LETTER_QUEUE)],
        outbox=outbox,
        runs=runs,
        processors=[processor_report(view) for view in processors],
    )
