"""Cancelling a run version: a Queued one at once, a Processing one by asking its processor.

A Queued version becomes Cancelled in the request's transaction; its message, when the broker
delivers it later, finds the run final and is acked and dropped. A Processing version gets the
request recorded (who, when, why); the processor holding it sees the request within about its
heartbeat interval, stops the reduction and records Cancelled itself. A final version cannot be
cancelled (409).

The run's row is read with ``FOR UPDATE`` (SQLite: the write transaction already holds the
lock), so the state read is the state changed: a processor cannot claim or finish the run in
between.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import Select, select, update
from sqlalchemy.orm import selectinload

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, utcnow
from autoreduce.run_events import log_run_event, nanoseconds_between
from autoreduce.state_machine import cancelled_message, transition


@dataclass(frozen=True)
class Cancellation:
    """The run version after the request, and whether it is already Cancelled."""

    run: ReductionRun
    done: bool  # False: the request is recorded, the processor holding the run will stop it


def cancel_run_version(
    database: Database,
    instrument: str,
    run_number: int,
    run_version: int,
    *,
    actor: Actor,
    reason: str,
) -> Cancellation:
    """Cancel one run version on behalf of ``actor``; 404 if there is none, 409 if it is final.

    The request is recorded in the audit trail in the same transaction.
    """
    by = actor.name
    label = f"run {instrument!r} {run_number} v{run_version}"
    with database.session() as session:
        run = session.scalar(_version(instrument, run_number, run_version).with_for_update())
        if run is None:
            raise HTTPException(status_code=404, detail=f"{label} not found")
        status = RunStatus(run.status)
        if status.is_final:
            raise HTTPException(
                status_code=409,
                detail=f"{label} is already {status}; only a Queued or Processing run can be "
                "cancelled",
            )
        now = utcnow()
        if status is RunStatus.QUEUED:
            log_run_event(
                "run.cancelled",
                run,
                cancelled_by=by,
                detection_to_final_ns=nanoseconds_between(run.detected_at or run.queued_at, now),
            )
            transition(
                session,
                run.id,
                RunStatus.QUEUED,
                RunStatus.CANCELLED,
                message=cancelled_message(by, now, reason),
                finished_at=now,
                cancel_requested_at=now,
                cancel_requested_by=by,
                cancel_reason=reason,
            )
        elif run.cancel_requested_at is None:  # asked again: the first request stands
            session.execute(
                update(ReductionRun)
                .where(ReductionRun.id == run.id, ReductionRun.status == status.value)
                .values(cancel_requested_at=now, cancel_requested_by=by, cancel_reason=reason),
                execution_options={"synchronize_session": False},
            )
        record_event(
            session,
            actor,
            "run.cancel",
            f"{instrument} {run_number} v{run_version}",
            instrument=instrument,
            details={"reason": reason, "status": status.value},
        )
        fresh = session.scalar(
            _version(instrument, run_number, run_version).execution_options(populate_existing=True)
        )
        assert fresh is not None  # the row is locked: it cannot have gone
        return Cancellation(fresh, done=fresh.status == RunStatus.CANCELLED)


def _version(instrument: str, run_number: int, run_version: int) -> Select[ReductionRun]:
    return (
        select(ReductionRun)
        .where(
            ReductionRun.instrument == instrument,
            ReductionRun.run_number == run_number,
            ReductionRun.run_version == run_version,
        )
        .options(selectinload(ReductionRun.outputs))
    )
