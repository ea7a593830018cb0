"""The queue processors as an operator sees them: who is alive, what each holds, drain, resume.

A processor's row in ``processor_heartbeats`` is its voice (its heartbeat writes it every
``heartbeat_interval_s``) and its ear: a drain request written here is read by the processor
before each claim and at each beat. A drained processor finishes the run in hand, then takes
no new runs and idles, heartbeat on, until it is resumed or stopped (see
:mod:`queue_processor.heartbeat`). Each drain and resume records an audit event.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import ProcessorHeartbeat, ReductionRun, RunAttempt, utcnow
from autoreduce.run_attempts import handed_off_attempts

SILENT_AFTER_BEATS = 3
"""A processor whose last beat is older than this many heartbeat intervals counts as dead."""


class ProcessorState(enum.StrEnum):
    """What a processor is doing, as its heartbeat row says."""

    IDLE = "idle"  # alive, waiting for a message
    BUSY = "busy"  # alive, reducing a run
    DRAINING = "draining"  # asked to drain, still finishing its run
    DRAINED = "drained"  # drained: alive, idle, taking no runs
    STOPPED = "stopped"  # stopped cleanly
    SILENT = "silent"  # no heartbeat for SILENT_AFTER_BEATS intervals: presumed dead


@dataclass(frozen=True)
class CurrentRun:
    """The run a processor holds."""

    id: int
    instrument: str
    run_number: int
    run_version: int
    status: str
    started_at: datetime | None
    attempts: int

    @property
    def label(self) -> str:
        return f"{self.instrument} {self.run_number} v{self.run_version}"


@dataclass(frozen=True)
class ProcessorView:
    """One processor: identity, last sign of life, drain state and the run it holds."""

    id: str
    host: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    drain_requested_at: datetime | None
    drain_requested_by: str
    drained_at: datetime | None
    state: ProcessorState
    current_run: CurrentRun | None
    slurm_jobs: int = 0  # handed-off Slurm jobs its follower follows

    @property
    def alive(self) -> bool:
        return self.state not in (ProcessorState.STOPPED, ProcessorState.SILENT)


class UnknownProcessor(LookupError):
    """No processor has this id."""


def _state(row: ProcessorHeartbeat, horizon: datetime) -> ProcessorState:
    if row.stopped_at is not None:
        return ProcessorState.STOPPED
    if row.last_seen_at < horizon:
        return ProcessorState.SILENT
    if row.drain_requested_at is not None:
        if row.drained_at is not None and row.current_run_id is None:
            return ProcessorState.DRAINED
        return ProcessorState.DRAINING
    return ProcessorState.BUSY if row.current_run_id is not None else ProcessorState.IDLE


def list_processors(
    session: Session, *, heartbeat_interval_s: float, history_s: float
) -> list[ProcessorView]:
    """Processors seen within ``history_s`` seconds: alive ones first, then the most recent."""
    now = utcnow()
    horizon = now - timedelta(seconds=SILENT_AFTER_BEATS * heartbeat_interval_s)
    rows = session.scalars(
        select(ProcessorHeartbeat)
        .where(ProcessorHeartbeat.last_seen_at >= now - timedelta(seconds=history_s))
        .order_by(ProcessorHeartbeat.last_seen_at.desc(), ProcessorHeartbeat.id)
    ).all()
    run_ids = {row.current_run_id for row in rows if row.current_run_id is not None}
    runs = {
        run.id: run
        for run in session.scalars(select(ReductionRun).where(ReductionRun.id.in_(run_ids)))
    }
    following = followed_slurm_jobs(session)
    views = [
        _view(row, _state(row, horizon), runs.get(row.current_run_id or 0), following)
        for row in rows
    ]
    return sorted(views, key=lambda view: not view.alive)  # stable: recency kept within each


def followed_slurm_jobs(session: Session) -> dict[str, int]:
    """How many handed-off Slurm jobs each processor follows (of runs in Processing)."""
    rows = session.execute(
        handed_off_attempts(RunAttempt.processor, func.count())
        .where(RunAttempt.finished_at.is_(None))
        .group_by(RunAttempt.processor)
    )
    return {processor: int(count) for processor, count in rows}


def _view(
    row: ProcessorHeartbeat,
    state: ProcessorState,
    run: ReductionRun | None,
    following: dict[str, int],
) -> ProcessorView:
    current = None
    if run is not None:
        current = CurrentRun(
            id=run.id,
            instrument=run.instrument,
            run_number=run.run_number,
            run_version=run.run_version,
            status=run.status,
            started_at=run.started_at,
            attempts=run.attempts,
        )
    return ProcessorView(
        id=row.id,
        host=row.host,
        pid=row.pid,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        stopped_at=row.stopped_at,
        drain_requested_at=row.drain_requested_at,
        drain_requested_by=row.drain_requested_by,
        drained_at=row.drained_at,
        state=state,
        current_run=current,
        slurm_jobs=following.get(row.id, 0),
    )


def request_drain(database: Database, processor_id: str, actor: Actor) -> bool:
    """Ask processor ``processor_id`` to finish its run and take no new ones.

    False if it was already asked (nothing changes); :class:`UnknownProcessor` if no processor
    has that id.
    """
    with database.session() as session:
        row = session.get(ProcessorHeartbeat, processor_id)
        if row is None:
            raise UnknownProcessor(processor_id)
        if row.drain_requested_at is not None:
            return False
        session.execute(
            update(ProcessorHeartbeat)
            .where(
                ProcessorHeartbeat.id == processor_id,
                ProcessorHeartbeat.drain_requested_at.is_(None),
            )
            .values(drain_requested_at=utcnow(), drain_requested_by=actor.name[:100])
        )
        record_event(session, actor, "processor.drain", processor_id, details={"host": row.host})
        return True


def resume(database: Database, processor_id: str, actor: Actor) -> bool:
    """Withdraw a drain request: the processor takes runs again. False if none was made."""
    with database.session() as session:
        row = session.get(ProcessorHeartbeat, processor_id)
        if row is None:
            raise UnknownProcessor(processor_id)
        if row.drain_requested_at is None:
            return False
        session.execute(
            update(ProcessorHeartbeat)
            .where(ProcessorHeartbeat.id == processor_id)
            .values(drain_requested_at=None, drain_requested_by="", drained_at=None)
        )
        record_event(session, actor, "processor.resume", processor_id, details={"host": row.host})
        return True
