"""The audit trail: every write with who, what, when and from where (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from autoreduce.db.models import AuditEvent
from rest_api.auth import Caller, require_role
from rest_api.dependencies import SessionDep
from rest_api.problems import problems
from rest_api.routes.runs import utc_or_422
from rest_api.schemas import MAX_RUN_NUMBER, AuditItem, AuditPage

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=problems(401, 403))
def list_audit_events(
    session: SessionDep,
    _caller: Annotated[Caller, Depends(require_role("admin"))],
    actor: Annotated[str | None, Query(max_length=100, description="Token or client name.")] = None,
    action: Annotated[
        str | None, Query(max_length=40, description="E.g. `run.rerun`, `instrument.pause`.")
    ] = None,
    instrument: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_RUN_NUMBER, description="Keyset paging: events older than this id."),
    ] = None,
) -> AuditPage:
    """Audit events, newest first, filtered; page on with ``before_id=<next_before_id>``."""
    query = select(AuditEvent)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if instrument is not None:
        query = query.where(AuditEvent.instrument == instrument)
    if (start := utc_or_422(since, "since")) is not None:
        query = query.where(AuditEvent.at >= start)
    if (end := utc_or_422(until, "until")) is not None:
        query = query.where(AuditEvent.at < end)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)).all()
    items = [
        AuditItem(
            id=row.id,
            at=row.at,
            actor=row.actor,
            role=row.role,
            address=row.address,
            action=row.action,
            instrument=row.instrument,
            target=row.target,
            details=row.details or {},
        )
        for row in rows[:limit]
    ]
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)
