"""The experiment page ``/experiments/{ref}``: its runs across instruments and batch re-runs.

The runs come from :func:`rest_api.routes.experiments.get_experiment`; the batch re-run form
(:mod:`rest_api.web.batch_form`) previews (a dry run) or queues batches through
:mod:`rest_api.batches`, as ``POST /api/v1/reruns`` does, with the same role and instrument
checks. After queuing, the page shows each batch's progress, refreshed from
``/batches/{id}/progress`` (the data of ``GET /api/v1/reruns/{id}``) until every version ends.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rest_api.auth import Caller
from rest_api.batches import preview_batch, read_batch, record_batch
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.rerun_schemas import BatchItem, BatchRerunRequest
from rest_api.routes.experiments import get_experiment
from rest_api.schemas import MAX_RUN_NUMBER
from rest_api.web.batch_form import BatchForm, BatchFormError, batch_requests
from rest_api.web.flash import flash, pop_flash
from rest_api.web.render import render
from rest_api.web.session import PageCaller, verify_csrf

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
MAX_SHOWN_BATCHES = 10
UNFINISHED = ("Queued", "Processing")
ExperimentRef = Annotated[str, Path(max_length=64)]
BatchId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _may_rerun(caller: Caller) -> bool:
    return caller.role in ("scientist", "admin")


def batch_progress(batch: BatchItem) -> dict[str, Any]:
    """How far a batch has got: its versions counted by state, and whether all have ended."""
    counts = Counter(run.status for run in batch.runs)
    made = sum(count for status, count in counts.items() if status != "Refused")
    unfinished = sum(counts[status] for status in UNFINISHED)
    return {
        "batch": batch,
        "counts": dict(sorted(counts.items())),
        "made": made,
        "finished": made - unfinished,
        "done": unfinished == 0,
    }


def _page(
    request: Request,
    state: ApiState,
    caller: Caller,
    ref: str,
    *,
    offset: int = 0,
    batch_ids: list[int] | None = None,
    form: BatchForm | None = None,
    form_error: str = "",
    preview: list[BatchItem] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with state.database.read_session() as session:
        experiment = get_experiment(ref, session, state, caller, limit=PAGE_SIZE, offset=offset)
        batches = []
        for batch_id in (batch_ids or [])[:MAX_SHOWN_BATCHES]:
            try:
                batches.append(batch_progress(read_batch(session, batch_id, caller)))
            except HTTPException:
                continue  # not a batch this caller may read: nothing to show
    return render(
        request,
        "experiment.html",
        status_code=status_code,
        title=f"Experiment {ref} — autoreduce",
        nav="experiment",
        experiment=experiment,
        may_rerun=_may_rerun(caller),
        form=form or BatchForm(),
        form_error=form_error,
        preview=preview,
        batches=batches,
        flash=pop_flash(request),
        ref_path=quote(ref, safe=""),
    )


@router.get("/experiments/{ref}", response_class=HTMLResponse)
def experiment(
    request: Request,
    ref: ExperimentRef,
    state: StateDep,
    caller: PageCaller,
    offset: Annotated[int, Query(ge=0, le=MAX_RUN_NUMBER)] = 0,
    batch: Annotated[list[int], Query(max_length=MAX_SHOWN_BATCHES)] = [],  # noqa: B006
) -> HTMLResponse:
    """The experiment's counts and runs (every version, newest first) and the batch form."""
    return _page(request, state, caller, ref, offset=offset, batch_ids=batch)


def _run_batches(
    state: ApiState, caller: Caller, requests: list[BatchRerunRequest], *, dry_run: bool
) -> list[BatchItem]:
    """Preview every request; queue the ones that select a run unless ``dry_run``."""
    for batch_request in requests:
        state.instrument_config(batch_request.instrument)
        caller.check_instrument(batch_request.instrument, must_list=caller.role == "scientist")
    previews = [preview_batch(state, batch_request, caller) for batch_request in requests]
    chosen = [r for r, p in zip(requests, previews, strict=True) if p.runs]
    if dry_run:
        return [p for p in previews if p.runs]
    return [record_batch(state, r.model_copy(update={"dry_run": False}), caller) for r in chosen]


@router.post("/experiments/{ref}/rerun", dependencies=[Depends(verify_csrf)])
def rerun_experiment(
    request: Request,
    ref: ExperimentRef,
    state: StateDep,
    session: SessionDep,
    caller: PageCaller,
    action: Annotated[str, Form(pattern="^(preview|queue)$")],
    selection: Annotated[str, Form(max_length=16)] = "all",
    run_min: Annotated[str, Form(max_length=20)] = "",
    run_max: Annotated[str, Form(max_length=20)] = "",
    runs: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006
    changes: Annotated[str, Form(max_length=5000)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    supersede: Annotated[bool, Form()] = False,
) -> Response:
    """Preview (a dry run, shown on the page) or queue a batch re-run per instrument."""
    if not _may_rerun(caller):
        raise HTTPException(status_code=403, detail="re-running needs a scientist or an admin")
    form = BatchForm(selection, run_min, run_max, runs, changes, reason, supersede)
    instruments = get_experiment(ref, session, state, caller, limit=1, offset=0).instruments
    dry_run = action == "preview"
    try:
        requests = batch_requests(form, ref, instruments, dry_run=dry_run)
        batches = _run_batches(state, caller, requests, dry_run=dry_run)
    except BatchFormError as error:
        return _page(request, state, caller, ref, form=form, form_error=str(error), status_code=422)
    except HTTPException as refused:
        if refused.status_code >= 500:
            raise
        detail = str(refused.detail)
        return _page(request, state, caller, ref, form=form, form_error=detail, status_code=422)
    if dry_run:
        return _page(request, state, caller, ref, form=form, preview=batches)
    if not batches:
        flash(
            request, "The selection holds no run of this experiment; nothing was queued.", "error"
        )
        return RedirectResponse(f"/experiments/{quote(ref, safe='')}", status_code=303)
    made = sum(1 for batch in batches for run in batch.runs if run.run_version is not None)
    names = ", ".join(f"batch {batch.id} ({batch.instrument})" for batch in batches)
    flash(request, f"Queued {made} re-run{'' if made == 1 else 's'}: {names}.")
    ids = "&".join(f"batch={batch.id}" for batch in batches)
    return RedirectResponse(f"/experiments/{quote(ref, safe='')}?{ids}#batches", status_code=303)


@router.get("/batches/{batch_id}/progress", response_class=HTMLResponse)
def batch_progress_fragment(
    request: Request, batch_id: BatchId, session: SessionDep, caller: PageCaller
) -> HTMLResponse:
    """An HTML fragment: one batch's versions counted by state (the page refreshes it)."""
    progress = batch_progress(read_batch(session, batch_id, caller))
    return render(request, "_batch_progress.html", progress=progress)
