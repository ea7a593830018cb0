"""Runs: submit a detected run, list and search runs, read one run's versions, re-run, cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from autoreduce.db.models import ReductionRun, RunStatus, RunStep
from autoreduce.run_attempts import attempts_by_run
from autoreduce.search import SearchSyntaxError, parse_search
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.cancellation import cancel_run_version
from rest_api.dependencies import SessionDep, StateDep
from rest_api.problems import problems
from rest_api.rerun_schemas import RerunPlanItem
from rest_api.reruns import preview_rerun, record_rerun
from rest_api.schemas import (
    MAX_RUN_NUMBER,
    MAX_RUN_VERSION,
    AttemptItem,
    CancelRequest,
    OutputItem,
    Provenance,
    RerunRequest,
    RunItem,
    RunPage,
    RunSubmission,
    RunVersions,
    StepItem,
    check_text,
    utc_timestamp,
)
from rest_api.search_query import (
    WINDOW_STEP,
    WINDOW_VERSIONS,
    WordWindow,
    apply_search,
    regex_refused,
    windowed_words,
)
from rest_api.submission import find_versions, record_detected_run

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

RunNumber = Annotated[int, Path(ge=0, le=MAX_RUN_NUMBER, description="The run number.")]
RunVersion = Annotated[int, Path(ge=0, le=MAX_RUN_VERSION, description="The run version.")]
InstrumentName = Annotated[str, Path(max_length=64, description="The instrument's name.")]
RunNumberQuery = Annotated[int | None, Query(ge=0, le=MAX_RUN_NUMBER)]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def run_item(run: ReductionRun) -> RunItem:
    """The JSON view of one run version (its outputs must be loaded)."""
    return RunItem(
        id=run.id,
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        status=run.status,
        message=run.message,
        experiment_ref=run.experiment_ref,
        title=run.title,
        data_path=run.data_path,
        variables=run.variables or {},
        variable_sources=run.variable_sources or {},
        derived_from_version=run.derived_from_version,
        reason=run.reason,
        description=run.description or "",
        submitted_by=run.submitted_by,
        summary=run.summary,
        attempts=run.attempts,
        processor=run.processor,
        detected_at=run.detected_at,
        queued_at=run.queued_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        queue_wait_s=_seconds(run.queued_at, run.started_at),
        reduction_s=_seconds(run.started_at, run.finished_at),
        cancel_requested_at=run.cancel_requested_at,
        cancel_requested_by=run.cancel_requested_by or "",
        cancel_reason=run.cancel_reason or "",
        outputs=[
            OutputItem(
                id=output.id,
                kind=output.kind,
                name=output.name,
                size_bytes=output.size_bytes,
                url=f"/api/v1/outputs/{output.id}",
            )
            for output in run.outputs
        ],
        attempt_history=None,
        provenance=_provenance(run.provenance),
        error_category=run.error_category or "",
        error_fingerprint=run.error_fingerprint or "",
        error_signature=run.error_signature or "",
        from_step=run.from_step or "",
    )


def steps_by_run(session: Session, run_ids: list[int]) -> dict[int, list[StepItem]]:
    """The pipeline steps of each of ``run_ids``, in file order."""
    query = select(RunStep).where(RunStep.run_id.in_(run_ids)).order_by(RunStep.position)
    found: dict[int, list[StepItem]] = {}
    for row in session.scalars(query):
        found.setdefault(row.run_id, []).append(
            StepItem(
                step=row.step,
                state=row.state,
                message=row.message,
                plugin=row.plugin,
                rely=list(row.rely or []),
                cpus=row.cpus,
                memory_mb=row.memory_mb,
                timeout_s=row.timeout_s,
                executor=row.executor,
                peak_rss_mb=row.peak_rss_mb,
                wall_s=row.wall_s,
                log=row.log_path,
                reused_from_version=row.reused_from_version,
                started_at=row.started_at,
                finished_at=row.finished_at,
            )
        )
    return found


def run_items_with_attempts(session: Session, runs: Sequence[ReductionRun]) -> list[RunItem]:
    """The JSON views of ``runs`` with each one's attempts and pipeline steps (a query each)."""
    items = [run_item(run) for run in runs]
    ids = [run.id for run in runs]
    attempts = attempts_by_run(session, ids)
    steps = steps_by_run(session, ids)
    for item in items:
        item.attempt_history = [AttemptItem(**row) for row in attempts.get(item.id, [])]
        item.steps = steps.get(item.id, [])
    return items


def _provenance(recorded: dict[str, object] | None) -> Provenance | None:
    """The stored provenance as the API shows it; None if absent or not understood."""
    if not recorded:
        return None
    try:
        return Provenance.model_validate(recorded)
    except ValueError:
        return None


def _text_or_422(value: str, name: str) -> str:
    try:
        return check_text(value)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=f"{name}: {error}") from None


def utc_or_422(value: datetime | None, name: str) -> datetime | None:
    try:
        return None if value is None else utc_timestamp(value)
    except ValueError as error:
        raise HTTPException(status_code=422, detail=f"{name}: {error}") from None


@router.post(
    "",
    status_code=201,
    response_model=RunItem,
    responses={
        200: {"model": RunItem, "description": "The run was already recorded."},
        **problems(401, 403, 404, 409, 413),
    },
)
def submit_run(
    submission: RunSubmission,
    response: Response,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("detector", "admin"))],
) -> RunItem:
    """Record a detected run (version 0) and queue it; 200 with the existing run if known.

    The API finds the data file from the instrument's template (409 while it does not exist);
    a ``data_path`` the client names must be a regular file under the archive root (422).
    The same run submitted again with another data file is a 409 naming both.
    """
    state.instrument_config(submission.instrument)
    caller.check_instrument(submission.instrument)
    run, created = record_detected_run(state, submission, caller.actor)
    if not created:
        response.status_code = 200
    return run_item(run)


def scoped(query: Select[ReductionRun], caller: Caller) -> Select[ReductionRun]:
    """Only the runs of the instruments ``caller`` may read."""
    if caller.instruments:
        return query.where(ReductionRun.instrument.in_(caller.instruments))
    return query


def _fitting(items: list[RunItem], max_bytes: int) -> list[RunItem]:
    """The leading items whose JSON fits in ``max_bytes`` (always at least one)."""
    kept: list[RunItem] = []
    size = 0
    for item in items:
        size += len(item.model_dump_json())
        if kept and size > max_bytes:
            break
        kept.append(item)
    return kept


TOTAL_LIMIT = 10_000
"""Totals are counted exactly up to this many; past it ``total_exact`` is false."""


def bounded_total(session: Session, query: Select[ReductionRun]) -> tuple[int, bool]:
    """How many versions ``query`` selects, counted up to :data:`TOTAL_LIMIT`; whether exact.

    Counting stops after ``TOTAL_LIMIT + 1`` ids, so a count reads at most that many index
    entries however large the match; past it the total is ``TOTAL_LIMIT``, not exact.
    """
    ids = query.with_only_columns(ReductionRun.id).order_by(None).limit(TOTAL_LIMIT + 1)
    counted = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    return min(counted, TOTAL_LIMIT), counted <= TOTAL_LIMIT


def windowed_page(
    session: Session, query: Select[ReductionRun], window: WordWindow, *, offset: int, limit: int
) -> tuple[list[int], int, bool]:
    """Ids ``offset`` to ``offset + limit`` (one more than a page) of the versions ``query`` and
    ``window``'s words select, newest first; the total; whether it is exact.

    The words are first matched on the rows of the newest versions ``query`` selects, read on
    its index :data:`WINDOW_STEP` at a time (a small ``OFFSET`` keeps MariaDB on the ordered
    index) until the page is found, :data:`WINDOW_VERSIONS` were read, or the matches so far
    say the word is too rare to fill the page from them (none in the first thousand: at once).
    What the page needs beyond the versions read, the text index finds among the older ones. When
    the versions read fill the page, their matches are the total, a lower bound
    (``total_exact`` false: at least that many match) unless they were every version
    ``query`` selects.
    """
    ids = query.with_only_columns(ReductionRun.id).order_by(ReductionRun.id.desc())
    wanted = offset + limit + 1
    found: list[int] = []
    below: int | None = None  # the versions read are those from here up
    steps = WINDOW_VERSIONS // WINDOW_STEP
    for taken in range(1, steps + 1):
        step = ids if below is None else ids.where(ReductionRun.id < below)
        edge = session.scalar(step.offset(WINDOW_STEP - 1).limit(1))  # None: the last step
        read = step if edge is None else step.where(ReductionRun.id >= edge)
        found += session.scalars(read.where(window.scanned))
        if edge is None:  # every version the query selects was read: the total is exact
            return found[offset:wanted], min(len(found), TOTAL_LIMIT), len(found) <= TOTAL_LIMIT
        below = edge
        if len(found) >= wanted:
            return found[offset:wanted], min(len(found), TOTAL_LIMIT), False
        if len(found) * steps < wanted * taken:  # too rare to fill the page at this rate
            break
    assert below is not None
    older = query.where(ReductionRun.id < below, window.indexed)
    rest = list(
        session.scalars(
            older.with_only_columns(ReductionRun.id)
            .order_by(ReductionRun.id.desc())
            .offset(max(0, offset - len(found)))
            .limit(wanted - max(offset, len(found)))
        )
    )
    counted, exact = bounded_total(session, older)
    total = len(found) + counted
    return found[offset:] + rest, min(total, TOTAL_LIMIT), exact and total <= TOTAL_LIMIT


def run_page(
    session: Session,
    query: Select[ReductionRun],
    order: tuple[ColumnElement[Any], ...],
    *,
    limit: int,
    offset: int,
    max_page_bytes: int,
    after: int | None = None,
    window: WordWindow | None = None,
) -> RunPage:
    """One page of the run versions ``query`` selects, in ``order``, with the total.

    The page's ids are found first (on an index that holds the filter and the order, the rows
    skipped by ``offset`` are never read), then their rows and outputs. ``after`` (a version id)
    pages by key instead: the versions older than it, for ``order`` newest id first. With
    ``window`` (plain words; ``order`` must be newest id first) the words are looked for as
    :func:`windowed_page` says.
    """
    keyed = query if after is None else query.where(ReductionRun.id < after)
    if window is not None:
        ids, total, exact = windowed_page(session, keyed, window, offset=offset, limit=limit)
        if after is not None:  # the total is the whole match's, as on the first page
            _, total, exact = windowed_page(session, query, window, offset=0, limit=0)
    else:
        total, exact = bounded_total(session, query)
        ids = list(
            session.scalars(
                keyed.with_only_columns(ReductionRun.id)
                .order_by(*order)
                .limit(limit + 1)
                .offset(offset)
            )
        )
    more = len(ids) > limit
    rows = {
        run.id: run
        for run in session.scalars(
            select(ReductionRun)
            .where(ReductionRun.id.in_(ids[:limit]))
            .options(selectinload(ReductionRun.outputs))
        )
    }
    page = [rows[run_id] for run_id in ids[:limit] if run_id in rows]
    items = _fitting([run_item(run) for run in page], max_page_bytes)
    more = more or len(items) < len(page)
    following = offset + len(items)
    return RunPage(
        items=items,
        total=total,
        total_exact=exact,
        limit=limit,
        offset=offset,
        next_offset=following if more else None,
        next_after=items[-1].id if more and items else None,
    )


def _searched(
    query: Select[ReductionRun], q: str, state: StateDep, *, windowed: bool
) -> tuple[Select[ReductionRun], WordWindow | None]:
    """``query`` narrowed by ``q``; with ``windowed``, plain words are left out of it and
    returned as a :class:`WordWindow` when the other terms allow one."""
    try:
        terms = parse_search(_text_or_422(q, "q"))
    except SearchSyntaxError as error:
        raise HTTPException(status_code=400, detail=f"q: {error}") from None
    window = None
    if windowed:
        terms, window = windowed_words(terms, state.database.dialect)
    searched = apply_search(
        query, terms, dialect=state.database.dialect, instruments=state.settings.instruments
    )
    return searched, window


Q_DESCRIPTION = (
    "Search (AND of terms): plain words and quoted phrases in title, experiment, instrument or "
    "message; `instrument:`, `status:`, `experiment:`, `title:`, `message:`, `by:`, "
    "`run:100..200`, `date:2026-11-01..2026-11-20`, `var.<name>:<value>`, `/regex/` on the "
    "title. Bad syntax is a 400 naming the term."
)


@router.get("", response_model=RunPage, responses=problems(400, 401, 403))
def list_runs(
    session: SessionDep,
    state: StateDep,
    caller: ReaderDep,
    instrument: Annotated[str | None, Query(max_length=64)] = None,
    status: RunStatus | None = None,
    run_min: RunNumberQuery = None,
    run_max: RunNumberQuery = None,
    since: Annotated[datetime | None, Query(description="Queued at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Queued before (ISO 8601).")] = None,
    q: Annotated[str | None, Query(max_length=200, description=Q_DESCRIPTION)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_RUN_NUMBER)] = 0,
    after: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_RUN_NUMBER,
            description="Page by key: the versions older than this version id (the previous "
            "page's `next_after`); beside `offset`, which then counts from there.",
        ),
    ] = None,
) -> RunPage:
    """Run versions, newest first (by id), filtered and paged (only the caller's instruments).

    `total` is exact up to 10,000 matches; past that it is 10,000 and `total_exact` is false.
    Deep pages are cheapest by key: pass the previous page's `next_after` as `after`.
    """
    query = scoped(select(ReductionRun), caller)
    if instrument is not None:
        if not caller.may_read(instrument):
            raise HTTPException(
                status_code=403, detail=f"{caller.name!r} may not read instrument {instrument!r}"
            )
        query = query.where(ReductionRun.instrument == instrument)
    if status is not None:
        query = query.where(ReductionRun.status == status.value)
    if run_min is not None:
        query = query.where(ReductionRun.run_number >= run_min)
    if run_max is not None:
        query = query.where(ReductionRun.run_number <= run_max)
    if (start := utc_or_422(since, "since")) is not None:
        query = query.where(ReductionRun.queued_at >= start)
    if (end := utc_or_422(until, "until")) is not None:
        query = query.where(ReductionRun.queued_at < end)
    window = None
    if q:  # a window needs every other filter on one index: one instrument's, a status's
        one_index = instrument is not None or len(caller.instruments or ()) <= 1
        indexed = one_index and (run_min, run_max, start, end) == (None, None, None, None)
        query, window = _searched(query, q, state, windowed=indexed)
    try:
        return run_page(
            session,
            query,
            (ReductionRun.id.desc(),),
            limit=limit,
            offset=offset,
            after=after,
            window=window,
            max_page_bytes=state.settings.max_page_bytes,
        )
    except DBAPIError as error:
        if (reason := regex_refused(error)) is None:
            raise
        raise HTTPException(
            status_code=400, detail=f"q: the database refused a regex in {q!r}: {reason}"
        ) from None


@router.get("/{instrument}/{run_number}", response_model=RunVersions, responses=problems(401, 404))
def get_run(
    instrument: InstrumentName, run_number: RunNumber, session: SessionDep, caller: ReaderDep
) -> RunVersions:
    """Every version of one run, ascending."""
    if not caller.may_read(instrument):  # as if it did not exist: a 404, like an unknown run
        raise HTTPException(status_code=404, detail=f"run {instrument!r} {run_number} not found")
    versions = find_versions(session, instrument, run_number)
    if not versions:
        raise HTTPException(status_code=404, detail=f"run {instrument!r} {run_number} not found")
    items = run_items_with_attempts(session, versions)
    return RunVersions(instrument=instrument, run_number=run_number, versions=items)


@router.post(
    "/{instrument}/{run_number}/reruns",
    status_code=201,
    response_model=RunItem | RerunPlanItem,
    responses={
        201: {"model": RunItem, "description": "The new version, queued."},
        200: {"model": RerunPlanItem, "description": "A dry run: the version it would make."},
        **problems(401, 403, 404, 409, 413),
    },
)
def rerun(
    instrument: InstrumentName,
    run_number: RunNumber,
    request: RerunRequest,
    response: Response,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> RunItem | RerunPlanItem:
    """Queue a new version of a run: `variables` changed over its `base` (scientist of the
    instrument, admin). With `dry_run` answer the values it would get and their differences."""
    state.instrument_config(instrument)
    caller.check_instrument(instrument, must_list=caller.role == "scientist")
    if request.dry_run:
        response.status_code = 200
        return preview_rerun(state, instrument, run_number, request)
    return run_item(record_rerun(state, instrument, run_number, request, caller.actor))


@router.post(
    "/{instrument}/{run_number}/versions/{run_version}/cancel",
    response_model=RunItem,
    responses={
        202: {
            "model": RunItem,
            "description": "The version is Processing: the request is recorded and its "
            "processor stops it within about its heartbeat interval.",
        },
        **problems(401, 403, 404, 409, 413),
    },
)
def cancel(
    instrument: InstrumentName,
    run_number: RunNumber,
    run_version: RunVersion,
    request: CancelRequest,
    response: Response,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> RunItem:
    """Cancel a run version (scientist of the instrument, admin): 200 Cancelled if it was Queued.

    A Processing version answers 202 with its ``cancel_requested_at`` set; it ends Cancelled
    once its processor has stopped the reduction (partial outputs are discarded). A version in
    a final state is a 409 naming that state.
    """
    caller.check_instrument(instrument, must_list=caller.role == "scientist")
    cancellation = cancel_run_version(
        state.database,
        instrument,
        run_number,
        run_version,
        actor=caller.actor,
        reason=request.reason,
    )
    if not cancellation.done:
        response.status_code = 202
    return run_item(cancellation.run)
