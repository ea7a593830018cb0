"""Failed runs: runs whose latest version ended in Error, and the ones an admin hid as dealt with.

A run counts as failed while its latest version is in Error: a re-run (a new version) takes it
off the list, and if that version fails too the run is back. Hiding marks one version's row
(:class:`autoreduce.db.models.HiddenFailure`), so a later failure of the same run shows again.
Both the web UI's failed-runs page and any API route read through :func:`failed_runs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import HTTPException
from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from autoreduce.audit import record_event
from autoreduce.db import Database
from autoreduce.db.models import HiddenFailure, ReductionRun, RunStatus, utcnow
from rest_api.auth import Caller

DEFAULT_WINDOW = timedelta(days=30)
"""How far back the failed-runs page looks by default: 30 days of finished errors."""


@dataclass(frozen=True)
class FailedRun:
    """One failed run: its latest version (in Error) and, when hidden, who hid it and when."""

    run: ReductionRun
    hidden_by: str | None
    hidden_at: datetime | None


@dataclass(frozen=True)
class FailedRunPage:
    items: list[FailedRun]
    total: int
    hidden: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        following = self.offset + len(self.items)
        return following if following < self.total else None


def _conditions(caller: Caller, since: datetime) -> list[ColumnElement[bool]]:
    """Latest versions in Error, finished since ``since``, of instruments ``caller`` reads."""
    later = aliased(ReductionRun)
    newer_version = exists().where(
        later.instrument == ReductionRun.instrument,
        later.run_number == ReductionRun.run_number,
        later.run_version > ReductionRun.run_version,
    )
    conditions = [
        ReductionRun.status == RunStatus.ERROR.value,
        ReductionRun.finished_at >= since,
        ~newer_version,
    ]
    if caller.instruments:
        conditions.append(ReductionRun.instrument.in_(caller.instruments))
    return conditions


def failed_runs(
    session: Session,
    caller: Caller,
    *,
    show_hidden: bool = False,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> FailedRunPage:
    """The failed runs ``caller`` may read, the latest failure first; hidden ones only when
    ``show_hidden``. ``since`` defaults to :data:`DEFAULT_WINDOW` ago."""
    conditions = _conditions(caller, since or utcnow() - DEFAULT_WINDOW)
    is_hidden = HiddenFailure.run_id.is_not(None)
    base = select(ReductionRun).outerjoin(HiddenFailure, HiddenFailure.run_id == ReductionRun.id)
    base = base.where(*conditions)
    matching = base.with_only_columns(
        ReductionRun.id, HiddenFailure.run_id.label("hidden")
    ).subquery()
    counted = select(func.count(), func.count(matching.c.hidden))
    everything, hidden = session.execute(counted).one()
    shown = base if show_hidden else base.where(~is_hidden)
    rows = session.execute(
        shown.add_columns(HiddenFailure.hidden_by, HiddenFailure.hidden_at)
        .order_by(ReductionRun.finished_at.desc(), ReductionRun.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return FailedRunPage(
        items=[FailedRun(run, hidden_by, hidden_at) for run, hidden_by, hidden_at in rows],
        total=everything if show_hidden else everything - hidden,
        hidden=hidden,
        limit=limit,
        offset=offset,
    )


def _failed_version(session: Session, instrument: str, run_number: int, version: int) -> int:
    """The row id of that version, which must be in Error; 404 / 409 otherwise."""
    run = session.scalar(
        select(ReductionRun).where(
            and_(
                ReductionRun.instrument == instrument,
                ReductionRun.run_number == run_number,
                ReductionRun.run_version == version,
            )
        )
    )
    if run is None:
        raise HTTPException(
            status_code=404, detail=f"run {instrument} {run_number} v{version} not found"
        )
    if run.status != RunStatus.ERROR.value:
        raise HTTPException(
            status_code=409,
            detail=f"run {instrument} {run_number} v{version} is {run.status}, not in Error",
        )
    return run.id


def set_failure_hidden(
    database: Database,
    caller: Caller,
    instrument: str,
    run_number: int,
    version: int,
    *,
    hidden: bool,
    note: str = "",
) -> bool:
    """Hide (or show again) a failed run version; True if that changed anything.

    Admins only (403 otherwise); recorded in the audit trail as ``failure.hide`` or
    ``failure.unhide`` in the same transaction.
    """
    if caller.role != "admin":
        raise HTTPException(
            status_code=403, detail=f"{caller.name!r} is a {caller.role}; hiding needs an admin"
        )
    target = f"{instrument} {run_number} v{version}"
    try:
        with database.session() as session:
            run_id = _failed_version(session, instrument, run_number, version)
            existing = session.get(HiddenFailure, run_id)
            if hidden == (existing is not None):
                return False
            if hidden:
                session.add(
                    HiddenFailure(
                        run_id=run_id, hidden_by=caller.name, hidden_at=utcnow(), note=note
                    )
                )
            else:
                session.delete(existing)
            action = "failure.hide" if hidden else "failure.unhide"
            details = {"note": note} if note else {}
            record_event(
                session, caller.actor, action, target, instrument=instrument, details=details
            )
    except IntegrityError:  # hidden concurrently by someone else: it is hidden either way
        return False
    return True
