"""Cancelled on request: read whether cancelling a run was asked for, and by whom and why.

The API records the request on a Processing run (``cancel_requested_at``, ``_by``,
``cancel_reason``); the heartbeat notices it and the launcher stops the reduction. Before it
records any result, the worker asks :func:`cancel_request` once more, so a request that came
while the reduction was ending is honoured too: the work directory is discarded and the run is
recorded Cancelled (never Error, never retried) and its message acked. :mod:`.claim` honours a
request found on a run it is about to take (its previous processor died or released it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun
from autoreduce.state_machine import cancelled_message


@dataclass(frozen=True)
class CancelRequest:
    """Who asked to cancel a run, when and why."""

    by: str
    at: datetime
    reason: str

    @property
    def message(self) -> str:
        """The Cancelled run's one-line message."""
        return cancelled_message(self.by, self.at, self.reason)


def request_of(run: ReductionRun) -> CancelRequest | None:
    """The cancel request recorded on ``run``, if any."""
    if run.cancel_requested_at is None:
        return None
    return CancelRequest(run.cancel_requested_by, run.cancel_requested_at, run.cancel_reason)


def cancel_request(database: Database, run_id: int) -> CancelRequest | None:
    """The cancel request recorded on run ``run_id`` now (one primary-key read), if any."""

    def read() -> CancelRequest | None:
        query = select(
            ReductionRun.cancel_requested_by,
            ReductionRun.cancel_requested_at,
            ReductionRun.cancel_reason,
        ).where(ReductionRun.id == run_id)
        with database.read_session() as session:
            row = session.execute(query).one_or_none()
        if row is None or row.cancel_requested_at is None:
            return None
        return CancelRequest(row.cancel_requested_by, row.cancel_requested_at, row.cancel_reason)

    return database.when_reachable(read)
