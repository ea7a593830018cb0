"""Recording runs: a run version and its outbox message are written in one transaction.

A detected run is never lost: when its plugin is unknown or its variables are invalid it is still
recorded, in ``Error`` with the reason and without a message to the broker. Two identical
submissions racing each other end with one row; the loser answers with the winner's run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from autoreduce.db.models import Instrument, OutboxMessage, ReductionRun, RunStatus, utcnow
from autoreduce.messages import PENDING_QUEUE, RunMessage
from autoreduce.nexus import RunMetadata, read_run_metadata
from autoreduce.plugin import Variable
from autoreduce.plugin_manager import UnknownPlugin
from autoreduce.state_machine import one_line
from autoreduce.variables import VariableError, resolve_variables
from rest_api.dependencies import ApiState
from rest_api.schemas import RunSubmission

logger = logging.getLogger("autoreduce.api")

RECORD_ATTEMPTS = 5
MYSQL_DEADLOCK = 1213


def _lost_race(error: Exception) -> bool:
    """True for the errors a concurrent writer causes: duplicate key, or InnoDB's deadlock."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "args", (None,))[:1]
    return isinstance(error, OperationalError) and code == (MYSQL_DEADLOCK,)


class PluginUnavailable(RuntimeError):
    """The instrument's plugin cannot declare its variables; the message is one line."""


def read_metadata(data_path: str) -> RunMetadata:
    """The experiment reference and title from the data file; empty when unreadable."""
    try:
        metadata = read_run_metadata(Path(data_path))
    except Exception as error:  # the reader never raises, but a run must never be lost
        logger.warning("cannot read metadata of %s: %s", data_path, one_line(str(error), 200))
        return RunMetadata()
    return RunMetadata(
        experiment_ref=_clean(metadata.experiment_ref, 64), title=_clean(metadata.title, 500)
    )


def _clean(text: object, limit: int) -> str:
    value = str(text or "").replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


def declared_variables(state: ApiState, instrument: str) -> list[Variable]:
    """The variables the instrument's plugin declares; :class:`PluginUnavailable` otherwise."""
    plugin_name = state.instrument_config(instrument).plugin
    try:
        return state.plugins().variables(plugin_name, instrument)
    except UnknownPlugin as error:
        raise PluginUnavailable(one_line(str(error))) from None
    except Exception as error:  # a plugin that fails to load or to answer
        logger.exception("plugin %r failed to declare its variables", plugin_name)
        raise PluginUnavailable(
            one_line(f"plugin {plugin_name!r} failed to declare its variables: {error}")
        ) from None


def resolved_variables(state: ApiState, instrument: str, values: dict[str, Any]) -> dict[str, Any]:
    """Plugin defaults, then instrument defaults, then ``values`` (validated)."""
    config = state.instrument_config(instrument)
    return resolve_variables(declared_variables(state, instrument), values, config.variables)


def find_versions(session: Session, instrument: str, run_number: int) -> list[ReductionRun]:
    """Every version of a run, ascending, outputs loaded."""
    query = (
        select(ReductionRun)
        .where(ReductionRun.instrument == instrument, ReductionRun.run_number == run_number)
        .options(selectinload(ReductionRun.outputs))
        .order_by(ReductionRun.run_version)
    )
    return list(session.scalars(query).all())


def _first_version(state: ApiState, instrument: str, run_number: int) -> ReductionRun | None:
    query = (
        select(ReductionRun)
        .where(
            ReductionRun.instrument == instrument,
            ReductionRun.run_number == run_number,
            ReductionRun.run_version == 0,
        )
        .options(selectinload(ReductionRun.outputs))
    )
    with state.database.read_session() as session:
        return session.scalar(query)


def _ensure_instrument(session: Session, name: str) -> None:
    if session.get(Instrument, name) is None:
        session.add(Instrument(name=name, is_paused=False, created_at=utcnow()))
        session.flush()


def _add_with_message(session: Session, run: ReductionRun) -> None:
    """Insert ``run`` and, unless it is already final, its outbox message."""
    session.add(run)
    session.flush()
    if run.status != RunStatus.QUEUED:
        return
    message = RunMessage(
        schema=1,
        run_id=run.id,
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        experiment_ref=run.experiment_ref,
        data_path=run.data_path,
        variables=run.variables,
        reason=run.reason,  # type: ignore[arg-type]
        submitted_at=run.queued_at,
        submitted_by=run.submitted_by,
    )
    session.add(
        OutboxMessage(instrument=run.instrument, queue=PENDING_QUEUE, body=message.to_json())
    )


def _new_run(fields: dict[str, Any]) -> ReductionRun:
    return ReductionRun(
        summary="",
        output_dir="",
        attempts=0,
        processor="",
        queued_at=utcnow(),
        outputs=[],
        **fields,
    )


def _announce(state: ApiState, run: ReductionRun) -> None:
    logger.info(
        "recorded run %s %d v%d as %s (id %d)",
        run.instrument,
        run.run_number,
        run.run_version,
        run.status,
        run.id,
    )
    if run.status == RunStatus.QUEUED:
        state.relay.wake()


def _detected_fields(state: ApiState, submission: RunSubmission) -> dict[str, Any]:
    """The columns of a detected run; Error with the reason if its variables cannot resolve."""
    fields: dict[str, Any] = {
        "instrument": submission.instrument,
        "run_number": submission.run_number,
        "run_version": 0,
        "status": RunStatus.QUEUED.value,
        "message": "",
        "data_path": submission.data_path,
        "reason": "detected",
        "detected_at": submission.detected_at,
    }
    try:
        fields["variables"] = resolved_variables(state, submission.instrument, submission.variables)
    except (PluginUnavailable, VariableError) as error:
        fields.update(
            status=RunStatus.ERROR.value,
            message=one_line(str(error)),
            variables=dict(submission.variables),
        )
    return fields


def record_detected_run(
    state: ApiState, submission: RunSubmission, submitted_by: str
) -> tuple[ReductionRun, bool]:
    """Record version 0 of a detected run; (the run, True if it was created now)."""
    state.instrument_config(submission.instrument)
    existing = _first_version(state, submission.instrument, submission.run_number)
    if existing is not None:
        return existing, False
    fields = _detected_fields(state, submission)
    metadata = read_metadata(submission.data_path)
    for _ in range(RECORD_ATTEMPTS):
        try:
            with state.database.session() as session:
                _ensure_instrument(session, submission.instrument)
                run = _new_run(
                    {
                        **fields,
                        "experiment_ref": metadata.experiment_ref,
                        "title": metadata.title,
                        "submitted_by": submitted_by,
                    }
                )
                _add_with_message(session, run)
        except (IntegrityError, OperationalError) as error:
            if not _lost_race(error):
                raise
            # the same run (or its instrument row) was recorded concurrently
            existing = _first_version(state, submission.instrument, submission.run_number)
            if existing is not None:
                return existing, False
            continue
        _announce(state, run)
        return run, True
    raise HTTPException(status_code=409, detail="the run was being recorded concurrently; retry")


def record_rerun(
    state: ApiState, instrument: str, run_number: int, values: dict[str, Any], submitted_by: str
) -> ReductionRun:
    """Record a new version of an existing run with ``values`` on top of the defaults."""
    state.instrument_config(instrument)
    if _first_version(state, instrument, run_number) is None:
        raise HTTPException(status_code=404, detail=f"run {instrument} {run_number} not found")
    try:
        variables = resolved_variables(state, instrument, values)
    except PluginUnavailable as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    except VariableError as error:
        raise HTTPException(status_code=422, detail=one_line(str(error))) from None
    for _ in range(RECORD_ATTEMPTS):
        try:
            with state.database.session() as session:
                versions = find_versions(session, instrument, run_number)
                first = versions[0]
                run = _new_run(
                    {
                        "instrument": instrument,
                        "run_number": run_number,
                        "run_version": versions[-1].run_version + 1,
                        "status": RunStatus.QUEUED.value,
                        "message": "",
                        "experiment_ref": first.experiment_ref,
                        "title": first.title,
                        "data_path": first.data_path,
                        "variables": variables,
                        "reason": "rerun",
                        "submitted_by": submitted_by,
                        "detected_at": first.detected_at,
                    }
                )
                _add_with_message(session, run)
        except (IntegrityError, OperationalError) as error:
            if not _lost_race(error):
                raise
            continue  # another re-run took this version number; take the next
        _announce(state, run)
        return run
    raise HTTPException(status_code=409, detail="too many concurrent re-runs of this run; retry")
