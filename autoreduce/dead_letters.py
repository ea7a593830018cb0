"""The dead-letter queue as an operator sees it: list, show, replay, purge.

Works through the transport verbs (browse, take, send, ack, purge), so the same commands serve
the SQL queue and the STOMP brokers. A replay puts the message back on the queue it came from;
the processor then treats it like any delivery: a run already in a final state stays there. So a
letter whose run is final is not replayed (:func:`replay_refusal` says why and names the re-run
to submit instead, which makes a new version); it stays in the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus
from autoreduce.messages import DEAD_LETTER_QUEUE, PENDING_QUEUE
from autoreduce.transport import Delivery, Transport

REASON_HEADER = "x-dead-letter-reason"
ORIGIN_HEADER = "x-original-queue"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    run: str  # "GEM 123 v0", or "?" when the body is not a run message
    reason: str
    original_queue: str
    body: str
    headers: dict[str, str]


def _describe_run(body: str) -> str:
    try:
        fields = json.loads(body)
        return f"{fields['instrument']} {fields['run_number']} v{fields['run_version']}"
    except (ValueError, KeyError, TypeError):
        return "?"


def dead_letter_of(delivery: Delivery) -> DeadLetter:
    """The dead letter a delivery of the dead-letter queue is."""
    return DeadLetter(
        message_id=delivery.message_id,
        run=_describe_run(delivery.body),
        reason=delivery.headers.get(REASON_HEADER, ""),
        original_queue=delivery.headers.get(ORIGIN_HEADER, PENDING_QUEUE),
        body=delivery.body,
        headers=dict(delivery.headers),
    )


def list_dead_letters(transport: Transport, limit: int = 100) -> list[DeadLetter]:
    return [dead_letter_of(d) for d in transport.browse(DEAD_LETTER_QUEUE, limit)]


def find_dead_letter(transport: Transport, message_id: str) -> DeadLetter | None:
    for delivery in transport.browse(DEAD_LETTER_QUEUE, limit=10_000):
        if delivery.message_id == message_id:
            return dead_letter_of(delivery)
    return None


def replay(transport: Transport, message_id: str) -> DeadLetter | None:
    """Move one dead letter back to its original queue; None if there is no such message."""
    delivery = transport.take(DEAD_LETTER_QUEUE, message_id)
    if delivery is None:
        return None
    letter = dead_letter_of(delivery)
    headers = {k: v for k, v in delivery.headers.items() if k not in (REASON_HEADER, ORIGIN_HEADER)}
    headers["x-replayed-from-dlq"] = "true"
    transport.send(letter.original_queue, delivery.body, headers)
    transport.ack(delivery)
    return letter


def purge_one(transport: Transport, message_id: str) -> DeadLetter | None:
    """Delete one dead letter for good; None if there is no such message."""
    delivery = transport.take(DEAD_LETTER_QUEUE, message_id)
    if delivery is None:
        return None
    transport.ack(delivery)
    return dead_letter_of(delivery)


def run_id_of(letter: DeadLetter) -> int | None:
    """The ``run_id`` a run message names, or None for a body that names none."""
    try:
        run_id = json.loads(letter.body)["run_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return run_id if isinstance(run_id, int) and not isinstance(run_id, bool) else None


def replay_refusal(database: Database, letter: DeadLetter) -> str | None:
    """Why replaying ``letter`` would do nothing (its run is already final), or None."""
    run_id = run_id_of(letter)
    if run_id is None:
        return None
    with database.session() as session:
        run = session.get(ReductionRun, run_id)
        if run is None or not RunStatus(run.status).is_final:
            return None
        return (
            f"run {run.instrument} {run.run_number} v{run.run_version} is already {run.status}; "
            f"replaying would do nothing — re-run it with "
            f"POST /api/v1/runs/{run.instrument}/{run.run_number}/reruns"
        )


def replay_all(
    transport: Transport,
    limit: int = 10_000,
    refusal: Callable[[DeadLetter], str | None] = lambda letter: None,
) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """Replay every dead letter there is now (at most ``limit``) that ``refusal`` lets through.

    Returns the replayed letters and the kept ones with the reason each was kept.
    """
    replayed, kept = [], []
    for letter in list_dead_letters(transport, limit):
        reason = refusal(letter)
        if reason:
            kept.append((letter, reason))
            continue
        moved = replay(transport, letter.message_id)
        if moved is not None:
            replayed.append(moved)
    return replayed, kept
