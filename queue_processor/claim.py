"""Decide what to do with a delivered run message, and take the run if it is ours to reduce.

A message is taken (Queued → Processing, attempts + 1), taken over (Processing → Processing when
its previous processor died and the broker redelivered it), given up (Error after
``max_attempts``), or dropped (the run already reached a final state: the redelivery of a run
that was finished is acked and forgotten; or cancelling it was asked for while an earlier
processor held it: it becomes Cancelled, never reduced again).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, utcnow
from autoreduce.failures import ErrorCategory, classify
from autoreduce.messages import RunMessage
from autoreduce.state_machine import HELD_PREFIX, transition
from queue_processor.cancel import request_of


class Decision(enum.Enum):
    REDUCE = "reduce"  # this processor now holds the run
    DROP = "drop"  # nothing to do: ack the message
    GIVE_UP = "give_up"  # attempts exhausted: the run is Error, dead-letter the message
    MISSING = "missing"  # no such run: dead-letter the message


@dataclass(frozen=True)
class Claim:
    decision: Decision
    reason: str = ""
    run: ReductionRun | None = None
    attempt: int = 0


def claim_run(
    database: Database, message: RunMessage, *, processor: str, max_attempts: int
) -> Claim:
    """Take the run ``message`` names for ``processor``, or say why not."""
    with database.session() as session:
        run = session.execute(
            select(ReductionRun).where(ReductionRun.id == message.run_id)
        ).scalar_one_or_none()
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
        session.expunge(run)
        return Claim(Decision.REDUCE, run=run, attempt=attempt)


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
