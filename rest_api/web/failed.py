"""The failed-runs page ``/failed``: runs whose latest version is in Error, across instruments.

Each row has its reason and a one-click re-run (a new version from the latest one's values, as
``POST /api/v1/runs/{instrument}/{run_number}/reruns`` makes it); an admin may hide a failure
that was dealt with (:mod:`rest_api.failed_runs`), and show hidden ones again with a toggle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from rest_api.dependencies import SessionDep, StateDep
from rest_api.failed_runs import failed_runs, set_failure_hidden
from rest_api.reruns import record_rerun
from rest_api.schemas import MAX_RUN_NUMBER, MAX_RUN_VERSION, RerunRequest
from rest_api.web.flash import flash, pop_flash
from rest_api.web.render import render
from rest_api.web.session import PageCaller, verify_csrf

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
InstrumentField = Annotated[str, Form(min_length=1, max_length=32)]
RunNumberField = Annotated[int, Form(ge=0, le=MAX_RUN_NUMBER)]
RunVersionField = Annotated[int, Form(ge=0, le=MAX_RUN_VERSION)]
ShowHidden = Annotated[bool, Form()]


def _back(show_hidden: bool) -> RedirectResponse:
    return RedirectResponse("/failed?hidden=1" if show_hidden else "/failed", status_code=303)


@router.get("/failed", response_class=HTMLResponse)
def failed(
    request: Request,
    session: SessionDep,
    caller: PageCaller,
    hidden: Annotated[bool, Query(description="Show hidden failures too.")] = False,
    offset: Annotated[int, Query(ge=0, le=MAX_RUN_NUMBER)] = 0,
) -> HTMLResponse:
    """Failed runs, the latest failure first, with re-run and (admins) hide buttons."""
    page = failed_runs(session, caller, show_hidden=hidden, limit=PAGE_SIZE, offset=offset)
    return render(
        request,
        "failed.html",
        title="Failed runs — autoreduce",
        nav="failed",
        page=page,
        show_hidden=hidden,
        may_rerun=caller.role in ("scientist", "admin"),
        may_hide=caller.role == "admin",
        caller=caller,
        flash=pop_flash(request),
    )


@router.post("/failed/rerun", dependencies=[Depends(verify_csrf)])
def rerun_failed(
    request: Request,
    state: StateDep,
    caller: PageCaller,
    instrument: InstrumentField,
    run_number: RunNumberField,
    show_hidden: ShowHidden = False,
) -> RedirectResponse:
    """Re-run a failed run with its latest version's values (scientist of it, or admin)."""
    if caller.role not in ("scientist", "admin"):
        raise HTTPException(status_code=403, detail="re-running needs a scientist or an admin")
    state.instrument_config(instrument)
    caller.check_instrument(instrument, must_list=caller.role == "scientist")
    request_body = RerunRequest(
        base="latest", dry_run=False, reason="re-run from the failed-runs page"
    )
    try:
        run = record_rerun(state, instrument, run_number, request_body, caller.actor)
    except HTTPException as refused:
        if refused.status_code >= 500 or refused.status_code == 404:
            raise
        flash(request, f"{instrument} {run_number} was not re-run: {refused.detail}", "error")
        return _back(show_hidden)
    flash(request, f"Queued {instrument} {run_number} v{run.run_version}.")
    return _back(show_hidden)


@router.post("/failed/hide", dependencies=[Depends(verify_csrf)])
def hide_failed(
    request: Request,
    state: StateDep,
    caller: PageCaller,
    instrument: InstrumentField,
    run_number: RunNumberField,
    run_version: RunVersionField,
    hide: Annotated[bool, Form()],
    show_hidden: ShowHidden = False,
) -> RedirectResponse:
    """Hide a dealt-with failure from the page, or show it again (admins)."""
    set_failure_hidden(state.database, caller, instrument, run_number, run_version, hidden=hide)
    what = "Hid" if hide else "Showing again"
    flash(request, f"{what} {instrument} {run_number} v{run_version}.")
    return _back(show_hidden)
