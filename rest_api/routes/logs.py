"""Run logs: one version's reduction log as text, or followed live as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from autoreduce.db.models import ReductionRun, RunLogLine, RunStatus
from rest_api.auth import ReaderDep
from rest_api.dependencies import ApiState, SessionDep, StateDep
from rest_api.log_stream import EventStream, log_events
from rest_api.problems import problems
from rest_api.routes.outputs import output_path, retention_removal, stored_response
from rest_api.routes.runs import InstrumentName, RunNumber

router = APIRouter(prefix="/api/v1/runs", tags=["logs"])

MAX_RUN_VERSION = 1_000_000
RunVersion = Annotated[int, Path(ge=0, le=MAX_RUN_VERSION, description="The run's version.")]
TEXT = "text/plain; charset=utf-8"

LOG_ANSWERS = {
    200: {
        "description": "The log as text, or (``follow=true``) its lines as Server-Sent Events.",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
    **problems(401, 404, 410),
}


def _run_version(
    session: Session, instrument: str, run_number: int, run_version: int
) -> ReductionRun | None:
    return session.scalars(
        select(ReductionRun)
        .options(selectinload(ReductionRun.outputs))
        .where(
            ReductionRun.instrument == instrument,
            ReductionRun.run_number == run_number,
            ReductionRun.run_version == run_version,
        )
    ).one_or_none()


def _shipped_text(session: Session, run_id: int) -> str:
    lines = session.scalars(
        select(RunLogLine.text).where(RunLogLine.run_id == run_id).order_by(RunLogLine.seq)
    ).all()
    return "".join(f"{line}\n" for line in lines)


def _log_file(session: Session, run: ReductionRun, state: ApiState) -> Response | None:
    """The recorded ``reduction.log`` of a final run, if this host (or the store) has it."""
    if not RunStatus(run.status).is_final:
        return None
    for output in run.outputs:
        if output.kind == "log" and run.output_dir.startswith("s3://"):
            label = f"the log of {run.instrument} {run.run_number}"
            return stored_response(
                state.store,
                run.output_dir,
                output.name,
                TEXT,
                label,
                removed=lambda: retention_removal(session, run.id),
            )
        if output.kind == "log" and (path := output_path(run.output_dir, output.name)):
            return FileResponse(path, media_type=TEXT, content_disposition_type="inline")
    return None


@router.get(
    "/{instrument}/{run_number}/versions/{run_version}/log",
    response_class=PlainTextResponse,
    responses=LOG_ANSWERS,
)
def get_run_log(
    instrument: InstrumentName,
    run_number: RunNumber,
    run_version: RunVersion,
    session: SessionDep,
    state: StateDep,
    caller: ReaderDep,
    follow: Annotated[
        bool,
        Query(description="Stream the lines as Server-Sent Events until the run is final."),
    ] = False,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=2**31 - 1,
            description="With `follow`: resume after this line (the last event's `id`).",
        ),
    ] = None,
) -> Response:
    """The reduction log of one run version.

    A final run answers its recorded ``reduction.log``; a run still Queued or Processing
    answers the lines its processor has shipped so far (on any host). With ``follow=true`` the
    lines come as Server-Sent Events — ``id`` the line's number, ``data`` its text — while the
    run goes on, then an ``end`` event whose data is the final ``status`` and ``message``;
    ``Last-Event-ID`` resumes after a line. 503 when too many streams are open.
    """
    label = f"run {instrument!r} {run_number} v{run_version}"
    run = _run_version(session, instrument, run_number, run_version)
    if run is None or not caller.may_read_run(run):  # another's run: as if it did not exist
        raise HTTPException(status_code=404, detail=f"{label} not found")
    if follow:
        slots = state.log_followers
        if not slots.take():
            raise HTTPException(
                status_code=503,
                detail=f"{slots.limit} log streams are open, the most this instance allows "
                "(setting max_log_followers); try again later",
                headers={"Retry-After": "5"},
            )
        events = log_events(
            state.database,
            run.id,
            after_seq=last_event_id or 0,
            poll_interval_s=state.settings.log_poll_interval_s,
            max_duration_s=state.settings.log_follow_max_s,
        )
        return EventStream(events, on_close=slots.give_back)
    log_file = _log_file(session, run, state)
    if log_file is not None:
        return log_file
    text = _shipped_text(session, run.id)
    if not text and RunStatus(run.status).is_final:
        if (removed := retention_removal(session, run.id)) is not None:
            raise HTTPException(status_code=410, detail=f"{label}: {removed}")
        raise HTTPException(status_code=404, detail=f"{label} has no log ({run.status})")
    return PlainTextResponse(text, media_type=TEXT)
