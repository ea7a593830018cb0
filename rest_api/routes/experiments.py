"""Experiments: the runs of one proposal (RB number) across instruments, and the list of them.

An experiment is the set of run versions sharing an ``experiment_ref`` read from the data
files; runs whose files named none (``""``) belong to no experiment. A caller limited to some
instruments sees only their runs: an experiment with none of them is not listed and is a 404.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from autoreduce.db.models import ReductionRun, RunStatus
from rest_api.auth import Caller, ReaderDep
from rest_api.dependencies import SessionDep, StateDep
from rest_api.problems import problems
from rest_api.routes.runs import run_page, scoped
from rest_api.schemas import (
    MAX_RUN_NUMBER,
    ExperimentItem,
    ExperimentPage,
    ExperimentRuns,
    check_text,
)

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])

ExperimentRef = Annotated[
    str, Path(max_length=64, description="The experiment reference (RB number).")
]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_RUN_NUMBER)]

_LAST_RUN_AT = func.max(ReductionRun.queued_at)


def _visible(caller: Caller) -> list[ColumnElement[bool]]:
    """The runs of an experiment ``caller`` may read."""
    conditions = [ReductionRun.experiment_ref != ""]
    if caller.instruments:
        conditions.append(ReductionRun.instrument.in_(caller.instruments))
    return conditions


def _summaries(
    session: Session, where: list[ColumnElement[bool]], *, limit: int, offset: int
) -> list[ExperimentItem]:
    """The experiments of the runs ``where`` selects, latest run first, with four queries."""
    rows = session.execute(
        select(
            ReductionRun.experiment_ref,
            func.count(),
            func.sum(case((ReductionRun.run_version == 0, 1), else_=0)),
            func.min(ReductionRun.queued_at),
            _LAST_RUN_AT,
        )
        .where(*where)
        .group_by(ReductionRun.experiment_ref)
        .order_by(_LAST_RUN_AT.desc(), ReductionRun.experiment_ref)
        .limit(limit)
        .offset(offset)
    ).all()
    refs = [row[0] for row in rows]
    counts: dict[str, dict[str, int]] = {ref: {s.value: 0 for s in RunStatus} for ref in refs}
    instruments: dict[str, list[str]] = defaultdict(list)
    if refs:
        on_page = [*where, ReductionRun.experiment_ref.in_(refs)]
        for ref, status, count in session.execute(
            select(ReductionRun.experiment_ref, ReductionRun.status, func.count())
            .where(*on_page)
            .group_by(ReductionRun.experiment_ref, ReductionRun.status)
        ):
            counts[ref][status] = count
        for ref, instrument in session.execute(
            select(ReductionRun.experiment_ref, ReductionRun.instrument)
            .where(*on_page)
            .group_by(ReductionRun.experiment_ref, ReductionRun.instrument)
            .order_by(ReductionRun.instrument)
        ):
            instruments[ref].append(instrument)
    return [
        ExperimentItem(
            ref=ref,
            run_count=int(runs or 0),
            version_count=versions,
            instruments=instruments[ref],
            first_run_at=first,
            last_run_at=last,
            status_counts=counts[ref],
        )
        for ref, versions, runs, first, last in rows
    ]


@router.get("", response_model=ExperimentPage, responses=problems(401))
def list_experiments(
    session: SessionDep, caller: ReaderDep, limit: Limit = 50, offset: Offset = 0
) -> ExperimentPage:
    """Experiments, the one with the latest queued run first, with their counts by status.

    Counts cover only the runs of the instruments the caller may read.
    """
    where = _visible(caller)
    total = session.scalar(select(func.count(ReductionRun.experiment_ref.distinct())).where(*where))
    items = _summaries(session, where, limit=limit, offset=offset)
    following = offset + len(items)
    return ExperimentPage(
        items=items,
        total=total or 0,
        limit=limit,
        offset=offset,
        next_offset=following if following < (total or 0) else None,
    )


@router.get("/{ref}", response_model=ExperimentRuns, responses=problems(401, 404))
def get_experiment(
    ref: ExperimentRef,
    session: SessionDep,
    state: StateDep,
    caller: ReaderDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ExperimentRuns:
    """One experiment: its counts, instruments, first and last run, and a page of its runs.

    The runs are every version, across instruments, the latest queued first.
    """
    try:
        check_text(ref)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=f"ref: {error}") from None
    where = [*_visible(caller), ReductionRun.experiment_ref == ref]
    summaries = _summaries(session, where, limit=1, offset=0)
    if not summaries:
        raise HTTPException(status_code=404, detail=f"experiment {ref!r} not found")
    order: tuple[ColumnElement[Any], ...] = (
        ReductionRun.queued_at.desc(),
        ReductionRun.id.desc(),
    )
    runs = run_page(
        session,
        scoped(select(ReductionRun), caller).where(ReductionRun.experiment_ref == ref),
        order,
        limit=limit,
        offset=offset,
        max_page_bytes=state.settings.max_page_bytes,
    )
    return ExperimentRuns(**summaries[0].model_dump(), runs=runs)
