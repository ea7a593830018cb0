"""Run state transitions: every change of status is a conditional UPDATE.

``WHERE status = <expected>`` (and, for a run in hand, ``AND attempts = <n>``) makes each
transition happen at most once: a redelivered message for a finished run changes nothing, and
two processors can never both record one run version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from autoreduce.db.models import ReductionRun, RunStatus

ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset(
        {RunStatus.PROCESSING, RunStatus.SKIPPED, RunStatus.ERROR, RunStatus.CANCELLED}
    ),
    RunStatus.PROCESSING: frozenset(
        {
            RunStatus.PROCESSING,  # taken over after its processor died (attempts + 1)
            RunStatus.QUEUED,  # released by a processor shutting down
            RunStatus.COMPLETED,
            RunStatus.ERROR,
            RunStatus.SKIPPED,
            RunStatus.CANCELLED,  # its processor stopped the reduction on request
        }
    ),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.ERROR: frozenset(),
    RunStatus.SKIPPED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    """A transition the state machine does not have (a bug in the caller, not bad input)."""


def transition(
    session: Session,
    run_id: int,
    expected: RunStatus,
    new: RunStatus,
    *,
    expected_attempts: int | None = None,
    **values: Any,
) -> bool:
    """Move run ``run_id`` from ``expected`` to ``new``, setting ``values``; True if it moved.

    With ``expected_attempts`` the run must also still carry that attempt count (the fencing
    token of the processor that holds it). False means another party got there first.
    """
    if new not in ALLOWED[expected]:
        raise IllegalTransition(f"a run cannot go from {expected} to {new}")
    if new in (RunStatus.ERROR, RunStatus.SKIPPED, RunStatus.CANCELLED) and not values.get(
        "message"
    ):
        raise IllegalTransition(f"a run moved to {new} needs a message with the reason")
    if "message" in values:
        values["message"] = one_line(values["message"])
    conditions = [ReductionRun.id == run_id, ReductionRun.status == expected.value]
    if expected_attempts is not None:
        conditions.append(ReductionRun.attempts == expected_attempts)
    result = session.execute(
        update(ReductionRun).where(*conditions).values(status=new.value, **values),
        # a plain conditional UPDATE: callers re-read what they need, nothing in the session
        # needs synchronising (and doing it costs a RETURNING round trip and ORM work)
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def one_line(text: str, limit: int = 1000) -> str:
    """A reason fit for a run's one-line message: first line, trimmed to ``limit`` characters."""
    first = " ".join(str(text).strip().splitlines()[:1]).strip() or str(text).strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


HELD_PREFIX = "held: "
"""How the ``message`` of a Queued run that is held back (its instrument paused, or its plugin
not approved) begins."""

PLUGIN_HELD_PREFIX = f"{HELD_PREFIX}plugin "
"""How the ``message`` of a Queued run held because its plugin is not approved begins."""


def held_message(instrument: str) -> str:
    """The ``message`` of a Queued run held because its instrument is paused."""
    return f"{HELD_PREFIX}instrument {instrument} is paused; the run is reduced when it resumes"


def plugin_held_message(plugin: str, version: str, state: str) -> str:
    """The ``message`` of a Queued run held because ``plugin`` at ``version`` is not approved
    (``state`` is ``pending`` or ``revoked``)."""
    described = "pending approval" if state == "pending" else state
    return f"{PLUGIN_HELD_PREFIX}{plugin} {version} is {described}".replace("  ", " ")


def cancelled_message(by: str, at: datetime, reason: str) -> str:
    """The ``message`` of a Cancelled run: who cancelled it, when (UTC, to the second) and why.

    The reason's line breaks become spaces, so all of it fits the one-line message.
    """
    when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return one_line(f"cancelled by {by} at {when}: {' '.join(reason.split())}")
