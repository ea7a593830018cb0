"""Decide what to do with a delivered run message, and take the run if it is ours to reduce.

A message is taken (Queued → Processing, attempts + 1), taken over (Processing → Processing when
its previous processor died and the broker redelivered it), given up (Error after
``max_attempts``), or dropped (the run already reached a final state: the redelivery of a run
that was finished is acked and forgotten; its Slurm job was handed to a processor's follower,
which records its end; or cancelling it was asked for while an earlier processor held it: it
becomes Cancelled, never reduced again).

It is one transaction with one commit, in Core statements (no ORM unit of work): the
processor's drain request and the plugin's approval are read in it too, so a drained processor
takes no run (the delivery goes back untouched) and a run of an unapproved plugin is handed to
:func:`~queue_processor.approval.hold_unapproved` without being taken.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import ProcessorHeartbeat, ReductionRun, RunAttempt, RunStatus, utcnow
from autoreduce.failures import ErrorCategory, classify
from autoreduce.messages import RunMessage
from autoreduce.plugin_approvals import PluginGate
from autoreduce.state_machine import HELD_PREFIX, transition
from queue_processor.cancel import request_of


class Decision(enum.Enum):
    REDUCE = "reduce"  # this processor now holds the run
    DROP = "drop"  # nothing to do: ack the message
    GIVE_UP = "give_up"  # attempts exhausted: the run is Error, dead-letter the message
    MISSING = "missing"  # no such run: dead-letter the message
    HOLD = "hold"  # the run's plugin is not approved here: hold it (nothing changed yet)
    DRAINED = "drained"  # this processor is asked to drain: release the delivery untouched


@dataclass(frozen=True)
class Claim:
    decision: Decision
    reason: str = ""
    run: ReductionRun | None = None
    attempt: int = 0


_RUN_TABLE = ReductionRun.__table__
_RUN_ATTRIBUTES = [
    (attribute.key, attribute.columns[0].name) for attribute in ReductionRun.__mapper__.column_attrs
]


def _read_run(session: Any, run_id: int, processor: str | None) -> tuple[ReductionRun | None, bool]:
    """(The run as a detached object, whether ``processor``'s drain was asked): one SELECT."""
    drain = (
        select(ProcessorHeartbeat.drain_requested_at)
        .where(ProcessorHeartbeat.id == processor)
        .scalar_subquery()
        .label("drain_requested_at")
    )
    columns = [*_RUN_TABLE.columns, drain] if processor is not None else [*_RUN_TABLE.columns]
    row = session.execute(select(*columns).where(_RUN_TABLE.c.id == run_id)).mappings().first()
    if row is None:
        return None, False  # nothing is taken either way
    run = ReductionRun(**{key: row[name] for key, name in _RUN_ATTRIBUTES})
    return run, processor is not None and row["drain_requested_at"] is not None


def claim_run(
    database: Database,
    message: RunMessage,
    *,
    processor: str,
    max_attempts: int,
    gate: PluginGate | None = None,
    check_drain: bool = False,
) -> Claim:
    """Take the run ``message`` names for ``processor``, or say why not.

    With ``check_drain``, a drain requested for ``processor`` answers :attr:`Decision.DRAINED`;
    with ``gate``, a plugin not approved here answers :attr:`Decision.HOLD` (both change
    nothing).
    """
    with database.session() as session:
        run, drained = _read_run(session, message.run_id, processor if check_drain else None)
        if drained:
            return Claim(Decision.DRAINED, "drain requested")
        if run is None:
            return Claim(Decision.MISSING, f"run id {message.run_id} does not exist")
        if (run.instrument, run.run_number, run.run_version) != (
            message.instrument,
            message.run_number,
            message.run_version,
        ):
            return Claim(
                Decision.MISSING,
                f"run id {message.run_id} is {run.instrument} {run.run_number} "
                f"v{run.run_version}, not what the message says",
            )
        status = RunStatus(run.status)
        if status.is_final:
            return Claim(Decision.DROP, f"run already {status}")
        if status is RunStatus.PROCESSING and (job := _followed_job(session, run)):
            return Claim(Decision.DROP, f"its Slurm job {job} is followed by a processor")
        if gate is not None and (held := gate.held_message(session, message.instrument)):
            return Claim(Decision.HOLD, held)
        if (request := request_of(run)) is not None:  # asked while its processor held it
            moved = transition(
                session,
                run.id,
                status,
                RunStatus.CANCELLED,
                expected_attempts=run.attempts,
                message=request.message,
                finished_at=utcnow(),
            )
            return Claim(Decision.DROP, request.message if moved else "run changed first")
        if run.attempts >= max_attempts:
            last = run.message or (
                f"the processor reducing it ({run.processor or 'unknown'}) stopped without "
                "recording a result"
            )
            reason = f"gave up after {run.attempts} attempts: {last}"
            moved = transition(
                session,
                run.id,
                status,
                RunStatus.ERROR,
                message=reason,
                finished_at=utcnow(),
                **_last_failure(run, last),
            )
            return Claim(Decision.GIVE_UP if moved else Decision.DROP, reason)
        attempt = run.attempts + 1
        moved = transition(
            session,
            run.id,
            status,
            RunStatus.PROCESSING,
            expected_attempts=run.attempts,
            attempts=attempt,
            processor=processor,
            started_at=utcnow(),
            **({"message": ""} if run.message.startswith(HELD_PREFIX) else {}),
        )
        if not moved:
            return Claim(Decision.DROP, "another processor changed the run first")
        run.attempts, run.processor, run.status = attempt, processor, RunStatus.PROCESSING
        return Claim(Decision.REDUCE, run=run, attempt=attempt)


def _followed_job(session: Any, run: ReductionRun) -> str:
    """The Slurm job of the run's attempt if it was handed to a follower, else "" (a message
    delivered again after its hand-off, or published twice, must not start another attempt)."""
    return (
        session.scalar(
            select(RunAttempt.slurm_job_id).where(
                RunAttempt.run_id == run.id,
                RunAttempt.attempt == run.attempts,
                RunAttempt.handed_off_at.is_not(None),
                RunAttempt.finished_at.is_(None),
            )
        )
        or ""
    )


def _last_failure(run: ReductionRun, last: str) -> dict[str, Any]:
    """The failure columns of a run given up on: its last crash's, kept when it was requeued,
    or a ``crash`` of the processor that died holding it."""
    if run.error_fingerprint:
        return {
            "error_category": run.error_category,
            "error_fingerprint": run.error_fingerprint,
            "error_signature": run.error_signature,
        }
    return classify(ErrorCategory.CRASH, last).columns()
