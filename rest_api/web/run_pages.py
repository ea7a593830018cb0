"""The run page ``/runs/{instrument}/{run_number}``: every version, its log, its plots; the
re-run form generated from the plugin's declarations; cancel for a version still going.

A job (:mod:`autoreduce.jobs`) is the run ``/runs/JOB/<job id>``: the same page with its plugin
and its inputs (each upload's name, size and SHA-256) instead of a data file and a re-run form
(a job is not re-run). It is read, like ``GET /api/v1/jobs/{id}``, by readers of ``JOB`` and by
its creator, and cancelled by its creator or an admin.

Writes go through the functions the API's routes call (:func:`rest_api.reruns.record_rerun`,
:func:`rest_api.cancellation.cancel_run_version`) with the same role and instrument checks,
then redirect back to the page (Post/Redirect/Get).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from autoreduce.db.models import Job, RunStatus
from autoreduce.jobs import JOB_INSTRUMENT, job_uploads
from autoreduce.retention import retention_of
from rest_api.auth import Caller
from rest_api.cancellation import cancel_run_version
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.reruns import record_rerun
from rest_api.routes.instruments import declarations
from rest_api.routes.jobs import check_job_canceller
from rest_api.routes.runs import run_items_with_attempts
from rest_api.routes.uploads import UploadItem, upload_item
from rest_api.schemas import MAX_RUN_NUMBER, MAX_RUN_VERSION, CancelRequest, RerunRequest, RunItem
from rest_api.submission import find_versions
from rest_api.web.render import render
from rest_api.web.session import PageCaller, session_user, verify_csrf
from rest_api.web.variable_form import FormField, changed, form_fields, parse_values, with_entered
from rest_api.web.writes import FormDep, form_text, require_page_role

router = APIRouter(include_in_schema=False)

REFRESH_INTERVAL_MS = 2000
InstrumentName = Annotated[str, Path(max_length=64)]
RunNumber = Annotated[int, Path(ge=0, le=MAX_RUN_NUMBER)]
RunVersion = Annotated[int, Path(ge=0, le=MAX_RUN_VERSION)]
CSRF = [Depends(verify_csrf)]


@dataclass(frozen=True)
class JobInput:
    """One input of a job: its upload id and, unless it is gone, the upload."""

    upload_id: str
    upload: UploadItem | None


@dataclass(frozen=True)
class JobView:
    """What a job's page shows beside its run's versions."""

    plugin: str
    created_by: str
    inputs: list[JobInput]


def _versions_or_404(
    session: Session, caller: Caller, instrument: str, run_number: int
) -> list[RunItem]:
    """The run's versions, latest first; 404 if none, or if the caller may not read it (another's
    instrument, or a job neither theirs nor of an instrument ``JOB`` they read)."""
    versions = find_versions(session, instrument, run_number)
    if not versions or not caller.may_read_run(versions[-1]):
        raise HTTPException(status_code=404, detail=f"run {instrument} {run_number} not found")
    return run_items_with_attempts(session, list(reversed(versions)))


def _job(session: Session, instrument: str, run_number: int) -> Job | None:
    return session.get(Job, run_number) if instrument == JOB_INSTRUMENT else None


def _job_view(session: Session, job: Job) -> JobView:
    uploads = job_uploads(session, job.inputs)
    inputs = [
        JobInput(upload_id, upload_item(uploads[upload_id]) if upload_id in uploads else None)
        for upload_id in job.inputs
    ]
    return JobView(plugin=job.plugin, created_by=job.created_by, inputs=inputs)


def _may_cancel(request: Request, job: Job | None) -> bool:
    """Whether the signed-in user gets cancel buttons: a scientist or an admin, and for a job
    its creator or an admin (the checks :func:`cancel` makes again)."""
    user = session_user(request)
    if user is None or user.role not in ("scientist", "admin"):
        return False
    return job is None or user.role == "admin" or user.name == job.created_by


def _removed_logs(session: Session, versions: list[RunItem]) -> dict[int, str]:
    """Each version whose log the retention clean-up removed: what the page says instead."""
    cleaned = retention_of(session, [version.id for version in versions])
    return {
        version.run_version: f"Log removed by retention on {cleaned[version.id]:%Y-%m-%d}; the "
        "run, its reduced data and plots remain."
        for version in versions
        if version.id in cleaned
    }


def _versions_context(
    versions: list[RunItem],
    instrument: str,
    run_number: int,
    removed_logs: dict[int, str] | None = None,
    *,
    may_cancel: bool,
) -> dict[str, Any]:
    return {
        "instrument": instrument,
        "run_number": run_number,
        "versions": versions,
        "removed_logs": removed_logs or {},
        "going": [v for v in versions if not RunStatus(v.status).is_final],
        "refresh_ms": REFRESH_INTERVAL_MS,
        "may_cancel": may_cancel,
    }


def _page(
    request: Request,
    state: ApiState,
    versions: list[RunItem],
    *,
    fields: list[FormField] | None = None,
    errors: dict[str, str] | None = None,
    reason: str = "",
    status_code: int = 200,
    removed_logs: dict[int, str] | None = None,
    job: Job | None = None,
    job_view: JobView | None = None,
) -> HTMLResponse:
    latest = versions[0]
    if job_view is None:
        declared, plugin_error = declarations(state, latest.instrument)
        title = f"{latest.instrument} {latest.run_number}"
    else:  # a job has no instrument configuration, and is not re-run
        declared, plugin_error, title = [], None, f"Job {latest.run_number}"
    return render(
        request,
        "run.html",
        status_code=status_code,
        title=f"{title} — autoreduce",
        nav="runs",
        latest=latest,
        job=job_view,
        fields=fields if fields is not None else form_fields(declared, latest.variables),
        errors=errors or {},
        reason=reason,
        plugin_error=plugin_error,
        **_versions_context(
            versions,
            latest.instrument,
            latest.run_number,
            removed_logs,
            may_cancel=_may_cancel(request, job),
        ),
    )


@router.get("/runs/{instrument}/{run_number}", response_class=HTMLResponse)
def run_page(
    request: Request,
    instrument: InstrumentName,
    run_number: RunNumber,
    state: StateDep,
    session: SessionDep,
    caller: PageCaller,
) -> HTMLResponse:
    """Every version of the run, latest first, and the re-run form (a job: its inputs)."""
    versions = _versions_or_404(session, caller, instrument, run_number)
    job = _job(session, instrument, run_number)
    return _page(
        request,
        state,
        versions,
        removed_logs=_removed_logs(session, versions),
        job=job,
        job_view=None if job is None else _job_view(session, job),
    )


@router.get("/runs/{instrument}/{run_number}/versions-fragment", response_class=HTMLResponse)
def versions_fragment(
    request: Request,
    instrument: InstrumentName,
    run_number: RunNumber,
    session: SessionDep,
    caller: PageCaller,
) -> HTMLResponse:
    """The versions alone, for the page's periodic refresh."""
    versions = _versions_or_404(session, caller, instrument, run_number)
    removed = _removed_logs(session, versions)
    may_cancel = _may_cancel(request, _job(session, instrument, run_number))
    return render(
        request,
        "run_versions.html",
        **_versions_context(versions, instrument, run_number, removed, may_cancel=may_cancel),
    )


def _check_writer(request: Request, caller: Caller, instrument: str) -> None:
    """The API's check for re-runs and cancels: a scientist of the instrument, or an admin."""
    require_page_role(request, caller, "scientist", "admin")
    caller.check_instrument(instrument, must_list=caller.role == "scientist")


@router.post("/runs/{instrument}/{run_number}/reruns", dependencies=CSRF, response_model=None)
def rerun(
    request: Request,
    instrument: InstrumentName,
    run_number: RunNumber,
    form: FormDep,
    state: StateDep,
    caller: PageCaller,
) -> HTMLResponse | RedirectResponse:
    """A new version with the form's values (those that differ from the latest version's)."""
    with state.database.read_session() as session:
        versions = _versions_or_404(session, caller, instrument, run_number)
    state.instrument_config(instrument)
    _check_writer(request, caller, instrument)
    declared, plugin_error = declarations(state, instrument)
    if plugin_error:
        raise HTTPException(status_code=409, detail=plugin_error)
    values, errors = parse_values(declared, form)
    reason = form_text(form, "reason")
    if not errors:
        try:
            body = RerunRequest.model_validate(
                {"variables": changed(values, versions[0].variables), "reason": reason}
            )
        except ValidationError as error:
            errors["reason"] = "; ".join(
                e["msg"].removeprefix("Value error, ") for e in error.errors()
            )
        else:
            try:
                made = record_rerun(state, instrument, run_number, body, caller.actor)
            except HTTPException as refused:
                if refused.status_code != 422:
                    raise
                errors["form"] = str(refused.detail)
            else:
                target = f"/runs/{instrument}/{run_number}#version-{made.run_version}"
                return RedirectResponse(target, status_code=303)
    fields = form_fields(declared)
    with_entered(fields, form, errors)
    return _page(
        request, state, versions, fields=fields, errors=errors, reason=reason, status_code=422
    )


@router.post("/runs/{instrument}/{run_number}/versions/{run_version}/cancel", dependencies=CSRF)
def cancel(
    request: Request,
    instrument: InstrumentName,
    run_number: RunNumber,
    run_version: RunVersion,
    form: FormDep,
    state: StateDep,
    caller: PageCaller,
) -> RedirectResponse:
    """Cancel a Queued or Processing version (scientist of the instrument, admin; a job: its
    creator, admin)."""
    with state.database.read_session() as session:
        _versions_or_404(session, caller, instrument, run_number)
        job = _job(session, instrument, run_number)
    if job is None:
        _check_writer(request, caller, instrument)
    else:
        require_page_role(request, caller, "scientist", "admin")
        check_job_canceller(caller, job)
    reason = form_text(form, "reason").strip() or f"cancelled by {caller.name} in the web UI"
    try:
        CancelRequest(reason=reason)
    except ValidationError as error:
        raise HTTPException(status_code=422, detail=f"reason: {error.errors()[0]['msg']}") from None
    cancel_run_version(
        state.database, instrument, run_number, run_version, actor=caller.actor, reason=reason
    )
    return RedirectResponse(
        f"/runs/{instrument}/{run_number}#version-{run_version}", status_code=303
    )
