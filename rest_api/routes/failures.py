"""Failures: recent runs in Error grouped by the fingerprint of their cause, for triage.

Reads only runs in Error that finished since ``since`` (default 7 days ago), through the index
on (status, finished_at, error_fingerprint): the cost follows the recent errors, not the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from autoreduce.db.models import ReductionRun, RunStatus, utcnow
from autoreduce.failures import ErrorCategory
from rest_api.auth import Caller, ReaderDep
from rest_api.dependencies import SessionDep
from rest_api.problems import problems
from rest_api.schemas import FailureExample, FailureGroup, FailurePage, utc_timestamp

router = APIRouter(prefix="/api/v1/failures", tags=["failures"])

DEFAULT_WINDOW = timedelta(days=7)
EXAMPLES_PER_GROUP = 5
UNCLASSIFIED = "errors recorded before failures were categorised"


def _since(value: datetime | None) -> datetime:
    if value is None:
        return utcnow() - DEFAULT_WINDOW
    try:
        return utc_timestamp(value)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=f"since: {error}") from None


def _conditions(
    caller: Caller, since: datetime, instrument: str | None, category: ErrorCategory | None
) -> list[ColumnElement[bool]]:
    """Runs in Error, finished since ``since``, of instruments the caller may read."""
    conditions = [
        ReductionRun.status == RunStatus.ERROR.value,
        ReductionRun.finished_at >= since,
    ]
    if caller.instruments:
        conditions.append(ReductionRun.instrument.in_(caller.instruments))
    if instrument is not None:
        if not caller.may_read(instrument):
            raise HTTPException(
                status_code=403, detail=f"{caller.name!r} may not read instrument {instrument!r}"
            )
        conditions.append(ReductionRun.instrument == instrument)
    if category is not None:
        conditions.append(ReductionRun.error_category == category.value)
    return conditions


def _instruments(
    session: Session, conditions: list[ColumnElement[bool]], fingerprints: list[str]
) -> dict[str, list[str]]:
    query = (
        select(ReductionRun.error_fingerprint, ReductionRun.instrument)
        .where(*conditions, ReductionRun.error_fingerprint.in_(fingerprints))
        .distinct()
    )
    found: dict[str, list[str]] = {fingerprint: [] for fingerprint in fingerprints}
    for fingerprint, instrument in session.execute(query):
        found[fingerprint].append(instrument)
    return {fingerprint: sorted(names) for fingerprint, names in found.items()}


def _examples(
    session: Session, conditions: list[ColumnElement[bool]], fingerprint: str
) -> list[FailureExample]:
    """The newest ``EXAMPLES_PER_GROUP`` run versions of one group."""
    query = (
        select(ReductionRun)
        .where(*conditions, ReductionRun.error_fingerprint == fingerprint)
        .order_by(ReductionRun.finished_at.desc(), ReductionRun.id.desc())
        .limit(EXAMPLES_PER_GROUP)
    )
    return [
        FailureExample(
            instrument=run.instrument,
            run_number=run.run_number,
            run_version=run.run_version,
            finished_at=run.finished_at,
            message=run.message,
            url=f"/api/v1/runs/{run.instrument}/{run.run_number}",
        )
        for run in session.scalars(query)
    ]


def _group(row: Any, instruments: list[str], examples: list[FailureExample]) -> FailureGroup:
    fingerprint, category, signature, count, first_seen, last_seen = row
    return FailureGroup(
        fingerprint=fingerprint,
        category=category or "",
        signature=signature or (UNCLASSIFIED if not fingerprint else ""),
        count=count,
        instruments=instruments,
        first_seen=first_seen,
        last_seen=last_seen,
        examples=examples,
    )


@router.get("", response_model=FailurePage, responses=problems(401, 403))
def list_failures(
    session: SessionDep,
    caller: ReaderDep,
    since: Annotated[
        datetime | None,
        Query(description="Errors finished at or after (ISO 8601); default 7 days ago."),
    ] = None,
    instrument: Annotated[str | None, Query(max_length=64)] = None,
    category: ErrorCategory | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FailurePage:
    """Recent errors grouped by the fingerprint of their cause, newest group first; paged.

    Each group has its count, category, signature, instruments, first and last time seen and
    up to 5 example runs. Only the instruments the caller may read are counted.
    """
    start = _since(since)
    conditions = _conditions(caller, start, instrument, category)
    fingerprint = ReductionRun.error_fingerprint
    total = session.scalar(select(func.count(func.distinct(fingerprint))).where(*conditions)) or 0
    last_seen = func.max(ReductionRun.finished_at)
    rows = session.execute(
        select(
            fingerprint,
            func.max(ReductionRun.error_category),
            func.max(ReductionRun.error_signature),
            func.count(),
            func.min(ReductionRun.finished_at),
            last_seen,
        )
        .where(*conditions)
        .group_by(fingerprint)
        .order_by(last_seen.desc(), fingerprint)
        .limit(limit)
        .offset(offset)
    ).all()
    instruments = _instruments(session, conditions, [row[0] for row in rows])
    items = [
        _group(row, instruments[row[0]], _examples(session, conditions, row[0])) for row in rows
    ]
    following = offset + len(items)
    return FailurePage(
        items=items,
        total=total,
        since=start,
        limit=limit,
        offset=offset,
        next_offset=following if following < total else None,
    )
