"""The queue for the admin pages: its status, and the dead letters (list, show, replay, purge).

Admins only. The status is :func:`autoreduce.queue_status.queue_status`, the same report as
``autoreduce queue status``; dead letters go through :mod:`autoreduce.dead_letters`, as
``autoreduce dlq`` does. Replay and purge record audit events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from autoreduce.audit import record_event
from autoreduce.dead_letters import (
    DeadLetter,
    find_dead_letter,
    list_dead_letters,
    purge_one,
    replay,
    replay_refusal,
    run_id_of,
)
from autoreduce.queue_status import QueueStatus, queue_status
from rest_api.auth import Caller, require_role
from rest_api.dependencies import ApiState, StateDep
from rest_api.problems import problems

router = APIRouter(prefix="/api/v1", tags=["queue"])
AdminDep = Annotated[Caller, Depends(require_role("admin"))]
LetterId = Annotated[
    str, Path(min_length=1, max_length=200, description="The dead letter's message id.")
]
WHEN_HEADER = "x-dead-lettered-at"


class DeadLetterItem(BaseModel):
    id: str = Field(description="The message id (use it in the routes below).")
    run: str = Field(description="`GEM 44733 v0`, or `?` when the body names no run.")
    run_id: int | None = Field(description="The run the body names, if any.")
    reason: str = Field(description="Why it could not be processed.")
    original_queue: str
    dead_lettered_at: datetime | None = Field(
        description="When it was dead-lettered (null for letters older than this field)."
    )


class DeadLetterDetail(DeadLetterItem):
    headers: dict[str, str]
    body: str


class ReplayResult(BaseModel):
    replayed: DeadLetterItem
    to_queue: str


def _when(letter: DeadLetter) -> datetime | None:
    try:
        return datetime.fromisoformat(letter.headers[WHEN_HEADER])
    except (KeyError, ValueError):
        return None


def dead_letter_item(letter: DeadLetter) -> DeadLetterItem:
    """What the API (and the admin page) shows of one dead letter."""
    return DeadLetterItem(
        id=letter.message_id,
        run=letter.run,
        run_id=run_id_of(letter),
        reason=letter.reason,
        original_queue=letter.original_queue,
        dead_lettered_at=_when(letter),
    )


def _not_found(message_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no dead letter with id {message_id!r}")


@router.get("/queue", response_model=QueueStatus, responses=problems(401, 403))
def get_queue_status(state: StateDep, _caller: AdminDep) -> QueueStatus:
    """Depth of the pending queue and the DLQ (or why unknown), outbox backlog (held rows apart,
    with why), runs waiting, processors and the run each holds."""
    return queue_status(state.database, state.transport, state.settings)


@router.get("/dead-letters", response_model=list[DeadLetterItem], responses=problems(401, 403))
def get_dead_letters(
    state: StateDep,
    _caller: AdminDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many, oldest first.")
    ] = 100,
) -> list[DeadLetterItem]:
    """Dead letters, oldest first: id, run, reason, when."""
    return [dead_letter_item(letter) for letter in list_dead_letters(state.transport, limit)]


@router.get(
    "/dead-letters/{message_id}", response_model=DeadLetterDetail, responses=problems(401, 403, 404)
)
def get_dead_letter(state: StateDep, _caller: AdminDep, message_id: LetterId) -> DeadLetterDetail:
    """One dead letter with its headers and body."""
    letter = find_dead_letter(state.transport, message_id)
    if letter is None:
        raise _not_found(message_id)
    return DeadLetterDetail(
        **dead_letter_item(letter).model_dump(), headers=letter.headers, body=letter.body
    )


@router.post(
    "/dead-letters/{message_id}/replay",
    response_model=ReplayResult,
    responses=problems(401, 403, 404, 409),
)
def replay_dead_letter(state: StateDep, caller: AdminDep, message_id: LetterId) -> ReplayResult:
    """Put a dead letter back on the queue it came from.

    409 when its run is already Completed, Error, Skipped or Cancelled: replaying would do
    nothing; the letter stays, and the detail names the re-run to submit instead.
    """
    letter = replay_letter(state, caller, message_id)
    return ReplayResult(replayed=dead_letter_item(letter), to_queue=letter.original_queue)


def replay_letter(state: ApiState, caller: Caller, message_id: str) -> DeadLetter:
    """Put the dead letter ``message_id`` back on its queue, audited (the API and the admin page).

    Raises 404 if there is no such letter, 409 (the letter stays) if its run is already final.
    """
    found = find_dead_letter(state.transport, message_id)
    if found is None:
        raise _not_found(message_id)
    refusal = replay_refusal(state.database, found)
    if refusal:
        raise HTTPException(status_code=409, detail=f"{refusal} (the letter stays)")
    letter = replay(state.transport, message_id)
    if letter is None:  # taken by someone else in between
        raise _not_found(message_id)
    with state.database.session() as session:
        record_event(
            session,
            caller.actor,
            "dead_letter.replay",
            f"{letter.run} ({letter.message_id})",
            instrument=_instrument(letter),
            details={"message_id": letter.message_id, "to_queue": letter.original_queue},
        )
    return letter


@router.delete("/dead-letters/{message_id}", status_code=204, responses=problems(401, 403, 404))
def purge_dead_letter(state: StateDep, caller: AdminDep, message_id: LetterId) -> Response:
    """Delete one dead letter for good."""
    purge_letter(state, caller, message_id)
    return Response(status_code=204)


def purge_letter(state: ApiState, caller: Caller, message_id: str) -> DeadLetter:
    """Delete the dead letter ``message_id`` for good, audited; 404 if there is none."""
    letter = purge_one(state.transport, message_id)
    if letter is None:
        raise _not_found(message_id)
    with state.database.session() as session:
        record_event(
            session,
            caller.actor,
            "dead_letter.purge",
            f"{letter.run} ({letter.message_id})",
            instrument=_instrument(letter),
            details={"message_id": letter.message_id, "reason": letter.reason[:300]},
        )
    return letter


def _instrument(letter: DeadLetter) -> str | None:
    return letter.run.split(" ", 1)[0] if letter.run != "?" else None
