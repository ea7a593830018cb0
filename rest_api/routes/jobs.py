"""Jobs: reduce uploaded files with a plugin or a pipeline, outside any instrument's run numbers.

A job is run number ``<job id>`` of the reserved pseudo-instrument ``JOB`` (see
:mod:`autoreduce.jobs`): it is recorded with its outbox message in one transaction and then goes
through the same queue, processors, states, limits, logs and cancellation as every run. Reading
a job and its outputs needs read access to the instrument ``JOB`` or to be its creator; creating
one needs a scientist or admin token; cancelling one needs its creator or an admin.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from autoreduce.db.models import Job, ReductionRun, RunStatus, utcnow
from autoreduce.jobs import JOB_INSTRUMENT, job_uploads
from autoreduce.pipelines import PipelineError, load_pipeline, pipeline_names
from autoreduce.plugin import Variable
from autoreduce.plugin_approvals import PluginGate
from autoreduce.plugin_manager import UnknownPlugin
from autoreduce.state_machine import held_message, one_line
from autoreduce.variables import VariableError, resolve_variables
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.cancellation import cancel_run_version
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.problems import problems
from rest_api.routes.runs import run_item
from rest_api.schemas import OutputItem, RunItem
from rest_api.submission import add_with_message, announce, audit_run, ensure_instrument

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

UPLOAD_ID = r"^[0-9a-f]{32}$"


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: str | None = Field(
        None, min_length=1, max_length=100, description="A plugin listed in `[jobs] plugins`."
    )
    pipeline: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Instead of `plugin`: a pipeline (`GET /api/v1/pipelines`) listed in "
        "`[jobs] pipelines`.",
    )
    inputs: list[Annotated[str, Field(pattern=UPLOAD_ID)]] = Field(
        min_length=1, description="Upload ids; the first is the reduction's data file."
    )
    variables: dict[str, Any] = Field(default_factory=dict)
    description: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _plugin_or_pipeline(self) -> JobRequest:
        if (self.plugin is None) == (self.pipeline is None):
            raise ValueError("give exactly one of plugin and pipeline")
        return self


class JobCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class JobItem(BaseModel):
    id: int
    plugin: str = Field(description="The plugin it runs; empty when it runs a pipeline.")
    pipeline: str = Field(description="The pipeline it runs; empty when it runs a plugin.")
    inputs: list[str]
    created_by: str
    created_at: datetime
    status: str = Field(description="The state of the job's latest run version.")
    message: str
    outputs: list[OutputItem]
    run: RunItem = Field(description="The job's run (instrument `JOB`, run number = job id).")


JobId = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,17}$", description="The job's id.")]


def _latest_run(session: Session, job_id: int) -> ReductionRun | None:
    return session.scalar(
        select(ReductionRun)
        .where(ReductionRun.instrument == JOB_INSTRUMENT, ReductionRun.run_number == job_id)
        .options(selectinload(ReductionRun.outputs))
        .order_by(ReductionRun.run_version.desc())
        .limit(1)
    )


def job_item(job: Job, run: ReductionRun) -> JobItem:
    item = run_item(run)
    return JobItem(
        id=job.id,
        plugin=job.plugin,
        pipeline=job.pipeline,
        inputs=list(job.inputs),
        created_by=job.created_by,
        created_at=job.created_at,
        status=run.status,
        message=run.message,
        outputs=item.outputs,
        run=item,
    )


def _allowed(kind: str, name: str, allowed: list[str]) -> None:
    if name not in allowed:
        raise HTTPException(
            status_code=422,
            detail=f"{kind} {name!r} may not run jobs (allowed: "
            f"{', '.join(allowed) or f'none; set [jobs] {kind}s'})",
        )


def _declared(state: ApiState, request: JobRequest) -> list[Variable]:
    """The variables the job's plugin, or its pipeline's steps, declare; 422/409 if neither can."""
    if request.pipeline is not None:
        _allowed("pipeline", request.pipeline, state.settings.jobs.pipelines)
        directory = state.settings.resolved_pipelines_dir
        if request.pipeline not in pipeline_names(directory):
            raise HTTPException(
                status_code=422,
                detail=f"pipeline {request.pipeline!r} is unknown: no such file in the "
                "pipelines directory (see GET /api/v1/pipelines)",
            )
        try:
            pipeline = load_pipeline(directory, request.pipeline, state.plugins().names())
        except PipelineError as error:
            raise HTTPException(
                status_code=409,
                detail=f"pipeline {request.pipeline!r} does not load: {one_line(str(error))}",
            ) from None
        return pipeline.variables()
    assert request.plugin is not None
    _allowed("plugin", request.plugin, state.settings.jobs.plugins)
    try:
        return state.plugins().variables(request.plugin, JOB_INSTRUMENT)
    except UnknownPlugin as error:
        raise HTTPException(status_code=409, detail=one_line(str(error))) from None


def _checked_variables(state: ApiState, request: JobRequest) -> dict[str, Any]:
    values = request.variables
    size = len(json.dumps(values, separators=(",", ":")).encode("utf-8"))
    if size > state.settings.max_variables_bytes:
        raise HTTPException(
            status_code=422,
            detail=f"variables: {size} bytes of JSON, more than the limit of "
            f"{state.settings.max_variables_bytes} (setting max_variables_bytes)",
        )
    declared = _declared(state, request)
    try:
        return resolve_variables(declared, values)
    except VariableError as error:
        raise HTTPException(status_code=422, detail=one_line(str(error))) from None


@router.post(
    "",
    status_code=201,
    response_model=JobItem,
    responses=problems(401, 403, 409, 413, 422),
)
def create_job(
    request: JobRequest,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> JobItem:
    """Reduce uploads with a plugin or a pipeline (scientist, admin): the job, Queued."""
    if len(request.inputs) > state.settings.jobs.max_inputs:
        raise HTTPException(
            status_code=422,
            detail=f"inputs: {len(request.inputs)} uploads, more than the limit of "
            f"{state.settings.jobs.max_inputs} (setting jobs.max_inputs)",
        )
    variables = _checked_variables(state, request)
    plugin, pipeline = request.plugin or "", request.pipeline or ""
    gate = PluginGate(state.plugins(), {JOB_INSTRUMENT: plugin})
    with state.database.session() as session:
        if held := gate.held_message(session, JOB_INSTRUMENT):
            raise HTTPException(status_code=409, detail=f"the job cannot run: {held}")
        found = job_uploads(session, request.inputs)
        missing = [upload for upload in request.inputs if upload not in found]
        if missing:
            raise HTTPException(
                status_code=422, detail=f"inputs: unknown upload(s) {', '.join(missing[:5])}"
            )
        removed = [upload for upload in request.inputs if found[upload].removed_at is not None]
        if removed:
            raise HTTPException(
                status_code=422,
                detail=f"inputs: upload(s) removed by retention {', '.join(removed[:5])}",
            )
        job = Job(
            plugin=plugin,
            pipeline=pipeline,
            inputs=list(request.inputs),
            created_by=caller.name,
            created_at=utcnow(),
        )
        session.add(job)
        session.flush()
        paused = ensure_instrument(session, JOB_INSTRUMENT)
        run = ReductionRun(
            instrument=JOB_INSTRUMENT,
            run_number=job.id,
            run_version=0,
            status=RunStatus.QUEUED.value,
            message=held_message(JOB_INSTRUMENT) if paused else "",
            data_path=found[request.inputs[0]].location,
            variables=variables,
            variable_sources={
                name: "job request" if name in request.variables else "plugin default"
                for name in variables
            },
            reason="job",
            description=request.description,
            submitted_by=caller.name,
            summary="",
            output_dir="",
            attempts=0,
            processor="",
            queued_at=utcnow(),
            outputs=[],
        )
        add_with_message(session, run)
        audit_run(
            session,
            caller.actor,
            "job.submit",
            run,
            plugin=job.plugin,
            pipeline=job.pipeline,
            inputs=job.inputs,
        )
        item = job_item(job, run)
    announce(state, run)
    return item


@router.get("/{job_id}", response_model=JobItem, responses=problems(401, 404))
def get_job(job_id: JobId, session: SessionDep, caller: ReaderDep) -> JobItem:
    """A job's state, message and outputs (download each at its `url`)."""
    job = session.get(Job, int(job_id))
    run = _latest_run(session, int(job_id)) if job is not None else None
    if job is None or run is None:
        raise HTTPException(status_code=404, detail=f"job {job_id} not found")
    if not caller.may_read_run(run):
        raise HTTPException(status_code=404, detail=f"job {job_id} not found")
    return job_item(job, run)


def check_job_canceller(caller: Caller, job: Job) -> None:
    """403 unless ``caller`` created ``job`` or is an admin (the API's and the web UI's rule)."""
    if caller.role != "admin" and job.created_by != caller.name:
        raise HTTPException(status_code=403, detail="only its creator or an admin may cancel a job")


@router.post(
    "/{job_id}/cancel",
    response_model=JobItem,
    responses={
        202: {"model": JobItem, "description": "Processing: its processor stops it soon."},
        **problems(401, 403, 404, 409),
    },
)
def cancel_job(
    job_id: JobId,
    request: JobCancel,
    response: Response,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> JobItem:
    """Cancel a job (its creator, admin): 200 Cancelled if Queued, 202 if it is being stopped."""
    with state.database.read_session() as session:
        job = session.get(Job, int(job_id))
        run = _latest_run(session, int(job_id)) if job is not None else None
        if job is None or run is None:
            raise HTTPException(status_code=404, detail=f"job {job_id} not found")
        check_job_canceller(caller, job)
        version = run.run_version
    cancellation = cancel_run_version(
        state.database,
        JOB_INSTRUMENT,
        int(job_id),
        version,
        actor=caller.actor,
        reason=request.reason or "job cancelled",
    )
    if not cancellation.done:
        response.status_code = 202
    with state.database.read_session() as session:
        job = session.get(Job, int(job_id))
        run = _latest_run(session, int(job_id))
        assert job is not None and run is not None
        return job_item(job, run)
