"""Batch re-runs: one new version per selected run, all in one transaction with their messages.

A run whose latest version is still Queued or Processing is refused with that reason; with
``supersede`` a Queued latest version is cancelled ("superseded by batch N by WHO") and the new
version made, while a Processing one is refused even so (it must be cancelled first). A dry run
plans the same way in a read-only transaction and records nothing.
"""

from __future__ import annotations

import contextlib

from fastapi import HTTPException
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from autoreduce.audit import record_event
from autoreduce.db.models import ReductionRun, RerunBatch, RerunBatchRun, RunStatus, utcnow
from autoreduce.plugin import Variable
from autoreduce.search import SearchSyntaxError, parse_search
from autoreduce.state_machine import transition
from rest_api.auth import Caller
from rest_api.cancellation import cancel_run_version
from rest_api.dependencies import ApiState
from rest_api.rerun_schemas import BatchItem, BatchRerunRequest, RerunPlanItem
from rest_api.reruns import (
    REFUSED,
    Base,
    RerunPlan,
    checked_changes,
    declared_or_409,
    new_version,
    plan_rerun,
)
from rest_api.resolution import active_rules, as_rule
from rest_api.search_query import apply_search
from rest_api.submission import (
    RECORD_ATTEMPTS,
    add_with_message,
    ensure_instrument,
    hold_reason,
    lost_race,
)


def batch_limit(state: ApiState, caller: Caller) -> tuple[int, str]:
    """The most runs ``caller`` may re-run in one batch, and the setting that says so."""
    if caller.role == "admin":
        return state.settings.max_batch_runs_admin, "max_batch_runs_admin"
    return state.settings.max_batch_runs_scientist, "max_batch_runs_scientist"


def _selected(
    state: ApiState,
    session: Session,
    request: BatchRerunRequest,
    limit: int,
    setting: str,
    role: str,
) -> list[int]:
    """The run numbers the request selects (listed ones as given); 422 past ``limit``."""
    if request.runs is not None:
        numbers = list(dict.fromkeys(request.runs))
    else:
        query = select(ReductionRun.run_number).where(ReductionRun.instrument == request.instrument)
        if request.experiment_ref is not None:
            query = query.where(ReductionRun.experiment_ref == request.experiment_ref)
        elif request.q is not None:
            query = query.where(ReductionRun.id.in_(_searched_ids(state, request.q)))
        elif request.failure is not None:
            query = query.where(
                ReductionRun.status == RunStatus.ERROR.value,
                ReductionRun.error_fingerprint == request.failure,
            )
        else:
            query = query.where(ReductionRun.run_number.between(request.run_min, request.run_max))
        query = query.distinct().order_by(ReductionRun.run_number).limit(limit + 1)
        numbers = list(session.scalars(query))
    if len(numbers) > limit:
        raise HTTPException(
            status_code=422,
            detail=f"the batch selects more than {limit} runs, the limit for a {role} "
            f"(setting {setting}); select fewer",
        )
    return numbers


def _searched_ids(state: ApiState, q: str) -> Select[tuple[int]]:
    """The ids of the run versions the search ``q`` matches; 400 naming a bad term."""
    try:
        terms = parse_search(q)
    except SearchSyntaxError as error:
        raise HTTPException(status_code=400, detail=f"q: {error}") from None
    searched = apply_search(
        select(ReductionRun),
        terms,
        dialect=state.database.dialect,
        instruments=state.settings.instruments,
    )
    return searched.with_only_columns(ReductionRun.id)


def _gate(plan: RerunPlan, supersede: bool) -> None:
    """Refuse ``plan`` while its latest version is unfinished (bar a Queued one superseded)."""
    latest = plan.latest
    if latest.status == RunStatus.PROCESSING.value:
        plan.refused = (
            f"version {latest.run_version} is still Processing; a batch cannot supersede it "
            "(cancel it first)"
        )
    elif latest.status == RunStatus.QUEUED.value and not supersede:
        plan.refused = (
            f"version {latest.run_version} is still Queued; supersede=true would cancel it"
        )


def _plans(
    state: ApiState,
    session: Session,
    request: BatchRerunRequest,
    caller: Caller,
    declared: list[Variable],
) -> list[RerunPlan]:
    limit, setting = batch_limit(state, caller)
    numbers = _selected(state, session, request, limit, setting, caller.role)
    rows = session.scalars(
        select(ReductionRun)
        .where(ReductionRun.instrument == request.instrument, ReductionRun.run_number.in_(numbers))
        .order_by(ReductionRun.run_number, ReductionRun.run_version)
    ).all()
    versions: dict[int, list[ReductionRun]] = {}
    for row in rows:
        versions.setdefault(row.run_number, []).append(row)
    rules = [as_rule(row) for row in active_rules(session, request.instrument)]
    base = Base.parse(request.base)
    plans = []
    for number in numbers:
        if number not in versions:
            plans.append(RerunPlan(number, [], refused="the run is not recorded"))
            continue
        plan = RerunPlan(number, versions[number])
        _gate(plan, request.supersede)
        if not plan.refused:
            plan = plan_rerun(state, declared, rules, versions[number], base, request.variables)
        plans.append(plan)
    return plans


def _superseded(plan: RerunPlan) -> int | None:
    if plan.refused or plan.latest.status != RunStatus.QUEUED.value:
        return None
    return plan.latest.run_version


def _answer(
    request: BatchRerunRequest, caller: Caller, items: list[RerunPlanItem], batch: RerunBatch | None
) -> BatchItem:
    return BatchItem(
        id=batch.id if batch else None,
        instrument=request.instrument,
        dry_run=batch is None,
        submitted_by=caller.name,
        created_at=batch.created_at if batch else None,
        reason=request.reason,
        base=request.base,
        changes=request.variables,
        runs=items,
    )


def preview_batch(state: ApiState, request: BatchRerunRequest, caller: Caller) -> BatchItem:
    """What :func:`record_batch` would do, recording nothing."""
    declared = declared_or_409(state, request.instrument)
    checked_changes(state, declared, request.variables)
    with state.database.read_session() as session:
        plans = _plans(state, session, request, caller, declared)
        items = [plan.item(superseded=_superseded(plan)) for plan in plans]
    return _answer(request, caller, items, None)


def _record(
    session: Session, batch: RerunBatch, plan: RerunPlan, who: str, held: str
) -> RerunPlanItem:
    superseded = _superseded(plan)
    if superseded is not None and not transition(
        session,
        plan.latest.id,
        RunStatus.QUEUED,
        RunStatus.CANCELLED,
        message=f"superseded by batch {batch.id} by {who}",
        finished_at=utcnow(),
    ):
        plan.refused = f"version {superseded} left Queued while the batch was recorded; retry"
    if plan.refused:
        session.add(
            RerunBatchRun(batch_id=batch.id, run_number=plan.run_number, refused=plan.refused)
        )
        return plan.item()
    run = new_version(plan, batch.description, who, held)
    add_with_message(session, run)
    session.add(RerunBatchRun(batch_id=batch.id, run_number=plan.run_number, run_id=run.id))
    return plan.item(run, superseded)


def record_batch(state: ApiState, request: BatchRerunRequest, caller: Caller) -> BatchItem:
    """Record the batch, its new versions and their outbox messages in one transaction."""
    declared = declared_or_409(state, request.instrument)
    checked_changes(state, declared, request.variables)
    for _ in range(RECORD_ATTEMPTS):
        try:
            with state.database.session() as session:
                paused = ensure_instrument(session, request.instrument)
                held = hold_reason(state, session, request.instrument, paused)
                plans = _plans(state, session, request, caller, declared)
                batch = RerunBatch(
                    instrument=request.instrument,
                    submitted_by=caller.name,
                    created_at=utcnow(),
                    description=request.reason,
                    base=request.base,
                    changes=request.variables,
                    selection=request.model_dump(
                        include={"runs", "run_min", "run_max", "experiment_ref"}
                    ),
                    supersede=request.supersede,
                )
                session.add(batch)
                session.flush()
                items = [_record(session, batch, plan, caller.name, held) for plan in plans]
                made = [item.run_number for item in items if item.run_version is not None]
                record_event(
                    session,
                    caller.actor,
                    "rerun.batch",
                    f"batch {batch.id}: {len(made)} of {len(items)} runs of {batch.instrument}",
                    instrument=batch.instrument,
                    details={
                        "batch": batch.id,
                        "runs": made,
                        "refused": len(items) - len(made),
                        "variables": request.variables,
                        "base": request.base,
                        "supersede": request.supersede,
                        "reason": request.reason,
                    },
                )
        except (IntegrityError, OperationalError) as error:
            if not lost_race(error):
                raise
            continue  # a concurrent re-run took a version number; plan again
        state.relay.wake()
        return _answer(request, caller, items, batch)
    raise HTTPException(status_code=409, detail="too many concurrent re-runs of these runs; retry")


def read_batch(session: Session, batch_id: int, caller: Caller) -> BatchItem:
    """The batch with each run's version and its state now; 404 if unknown or not readable."""
    batch = session.scalar(
        select(RerunBatch)
        .where(RerunBatch.id == batch_id)
        .options(selectinload(RerunBatch.runs).selectinload(RerunBatchRun.run))
    )
    if batch is None or not caller.may_read(batch.instrument):
        raise HTTPException(status_code=404, detail=f"batch {batch_id} not found")
    items = []
    for link in batch.runs:
        run = link.run
        items.append(
            RerunPlanItem(
                run_number=link.run_number,
                run_version=run.run_version if run else None,
                status=run.status if run else REFUSED,
                message=run.message if run else link.refused,
                derived_from_version=run.derived_from_version if run else None,
                variables=(run.variables or {}) if run else {},
                variable_sources=(run.variable_sources or {}) if run else {},
                superseded_version=None,
                differences=None,
            )
        )
    return BatchItem(
        id=batch.id,
        instrument=batch.instrument,
        dry_run=False,
        submitted_by=batch.submitted_by,
        created_at=batch.created_at,
        reason=batch.description,
        base=batch.base,
        changes=batch.changes,
        runs=items,
    )


def cancel_batch(state: ApiState, batch_id: int, caller: Caller, reason: str) -> BatchItem:
    """Cancel every version the batch made that is still Queued or Processing.

    Each goes through :func:`rest_api.cancellation.cancel_run_version` (Queued at once,
    Processing by its processor), each recorded in the audit trail; finished ones are left.
    """
    with state.database.read_session() as session:
        batch = session.get(RerunBatch, batch_id)
        if batch is None or not caller.may_read(batch.instrument):
            raise HTTPException(status_code=404, detail=f"batch {batch_id} not found")
        caller.check_instrument(batch.instrument, must_list=caller.role == "scientist")
        unfinished = session.execute(
            select(ReductionRun.run_number, ReductionRun.run_version)
            .join(RerunBatchRun, RerunBatchRun.run_id == ReductionRun.id)
            .where(
                RerunBatchRun.batch_id == batch_id,
                ReductionRun.status.in_([RunStatus.QUEUED.value, RunStatus.PROCESSING.value]),
            )
        ).all()
        instrument = batch.instrument
    for run_number, run_version in unfinished:
        with contextlib.suppress(HTTPException):  # it finished meanwhile: nothing to cancel
            cancel_run_version(
                state.database,
                instrument,
                run_number,
                run_version,
                actor=caller.actor,
                reason=f"batch {batch_id} cancelled: {reason}",
            )
    with state.database.read_session() as session:
        return read_batch(session, batch_id, caller)
