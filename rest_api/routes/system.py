"""The service itself: health (database and broker reachable) and the queue processors."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from autoreduce.db.models import ProcessorHeartbeat, utcnow
from autoreduce.processors import followed_slurm_jobs
from autoreduce.state_machine import one_line
from rest_api.auth import ReaderDep
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.problems import problems
from rest_api.schemas import Health, ProcessorItem

router = APIRouter(tags=["system"])


def _database_health(state: StateDep) -> str:
    try:
        with state.database.read_session() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "unreachable"
        return one_line(f"unreachable: {type(error).__name__}: {error}", 300)
    return "ok"


def _broker_health(state: StateDep) -> str:
    try:
        state.transport.check()
    except Exception as error:  # any failure means "unreachable"
        return one_line(f"unreachable: {error}", 300)
    return "ok"


@router.get(
    "/health", response_model=Health, responses={503: {"model": Health, "description": "Degraded."}}
)
def health(state: StateDep) -> JSONResponse:
    """200 when the database and the broker answer, 503 (with the reasons) otherwise."""
    report = Health(status="ok", database=_database_health(state), broker=_broker_health(state))
    healthy = report.database == "ok" and report.broker == "ok"
    if not healthy:
        report.status = "degraded"
    return JSONResponse(report.model_dump(), status_code=200 if healthy else 503)


def processor_items(state: ApiState, session: Session) -> list[ProcessorItem]:
    """The queue processors alive now, and those stopped or silent within
    ``processor_history_s``; alive first, then the most recently seen."""
    now = utcnow()
    horizon = now - timedelta(seconds=3 * state.settings.heartbeat_interval_s)
    history = now - timedelta(seconds=state.settings.processor_history_s)
    rows = session.scalars(
        select(ProcessorHeartbeat)
        .where(ProcessorHeartbeat.last_seen_at >= history)
        .order_by(ProcessorHeartbeat.last_seen_at.desc(), ProcessorHeartbeat.id)
    ).all()
    following = followed_slurm_jobs(session)
    items = [
        ProcessorItem(
            id=row.id,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            stopped_at=row.stopped_at,
            current_run_id=row.current_run_id,
            alive=row.stopped_at is None and row.last_seen_at >= horizon,
            slurm_jobs=following.get(row.id, 0),
        )
        for row in rows
    ]
    return sorted(items, key=lambda item: not item.alive)  # stable: recency kept within each


@router.get("/api/v1/processors", response_model=list[ProcessorItem], responses=problems(401))
def list_processors(
    state: StateDep, session: SessionDep, _caller: ReaderDep
) -> list[ProcessorItem]:
    """The queue processors alive now, and those stopped or silent within
    ``processor_history_s``; alive first, then the most recently seen."""
    return processor_items(state, session)
