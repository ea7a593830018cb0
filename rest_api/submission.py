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

from autoreduce.archive import (
    AmbiguousDataFileError,
    DataFileError,
    checked_data_file,
    locate_data_file,
)
from autoreduce.audit import Actor, record_event
from autoreduce.db.models import Instrument, ReductionRun, RunStatus, utcnow
from autoreduce.failures import ErrorCategory, classify
from autoreduce.logs import run_fields
from autoreduce.outbox import outbox_message
from autoreduce.run_events import final_action, log_run_event, nanoseconds_between
from autoreduce.run_metadata import RunMetadata
from autoreduce.state_machine import held_message, one_line
from autoreduce.variables import VariableError
from rest_api.dependencies import ApiState
from rest_api.resolution import PluginUnavailable, active_rules, as_rule, resolve_for_run
from rest_api.schemas import RunSubmission

logger = logging.getLogger("autoreduce.api")

RECORD_ATTEMPTS = 5
MYSQL_DEADLOCK = 1213


def lost_race(error: Exception) -> bool:
    """True for the errors a concurrent writer causes: duplicate key, or InnoDB's deadlock."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "args", (None,))[:1]
    return isinstance(error, OperationalError) and code == (MYSQL_DEADLOCK,)


def read_metadata(state: ApiState, data_path: Path) -> RunMetadata:
    """The experiment reference and title from the data file; empty when unreadable.

    The read runs in the API's capped worker process (:mod:`autoreduce.metadata_reader`) and is
    abandoned after ``metadata_timeout_s``, so no data file can hold a request or harm the API.
    """
    try:
        metadata = state.metadata_reader.read(data_path, state.settings.metadata_timeout_s)
    except Exception as error:  # the reader never raises, but a run must never be lost
        logger.warning("cannot read metadata of %s: %s", data_path, one_line(str(error), 200))
        return RunMetadata()
    return RunMetadata(
        experiment_ref=_clean(metadata.experiment_ref, 64), title=_clean(metadata.title, 500)
    )


def _clean(text: object, limit: int) -> str:
    value = str(text or "").replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


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


def ensure_instrument(session: Session, name: str) -> bool:
    """Create the instrument's row on its first run; True if the instrument is paused."""
    row = session.get(Instrument, name)
    if row is None:
        session.add(Instrument(name=name, is_paused=False, created_at=utcnow()))
        session.flush()
        return False
    return row.is_paused


def hold_reason(state: ApiState, session: Session, instrument: str, paused: bool) -> str:
    """The ``message`` a new Queued run of ``instrument`` starts with: why it is held, or ""."""
    if paused:
        return held_message(instrument)
    return state.plugin_gate.held_message(session, instrument)


def add_with_message(session: Session, run: ReductionRun) -> None:
    """Insert ``run`` and, unless it is already final, its outbox message."""
    session.add(run)
    session.flush()
    if run.status != RunStatus.QUEUED:
        return
    session.add(outbox_message(run))


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


def audit_run(
    session: Session, actor: Actor, action: str, run: ReductionRun, **details: Any
) -> None:
    target = f"{run.instrument} {run.run_number} v{run.run_version}"
    record_event(session, actor, action, target, instrument=run.instrument, details=details)


def announce(state: ApiState, run: ReductionRun) -> None:
    """Log a recorded run (and its run event) and wake the outbox relay if it has a message."""
    logger.info(
        "recorded run %s %d v%d as %s (id %d)",
        run.instrument,
        run.run_number,
        run.run_version,
        run.status,
        run.id,
        extra=run_fields(run),
    )
    log_run_event(
        final_action(run.status) if run.status != RunStatus.QUEUED else "run.queued",
        run,
        reason=run.reason,
        submitted_by=run.submitted_by,
        detection_to_queued_ns=nanoseconds_between(run.detected_at, run.queued_at),
    )
    if run.status == RunStatus.QUEUED:
        state.relay.wake()


def _detected_fields(
    state: ApiState, submission: RunSubmission, data_path: Path, experiment_ref: str
) -> dict[str, Any]:
    """The columns of a detected run; Error with the reason if its variables cannot resolve.

    Its values come from today's rules and defaults (:mod:`autoreduce.variable_rules`).
    """
    fields: dict[str, Any] = {
        "instrument": submission.instrument,
        "run_number": submission.run_number,
        "run_version": 0,
        "status": RunStatus.QUEUED.value,
        "message": "",
        "data_path": str(data_path),
        "reason": "detected",
        "detected_at": submission.detected_at,
    }
    try:
        with state.database.read_session() as session:
            rules = [as_rule(row) for row in active_rules(session, submission.instrument)]
        resolution = resolve_for_run(
            state,
            submission.instrument,
            rules,
            run_number=submission.run_number,
            experiment_ref=experiment_ref,
        )
    except (PluginUnavailable, VariableError) as error:
        # configuration errors (plugin not installed, defaults it refuses) count as ``plugin``
        plugin = state.instrument_config(submission.instrument).plugin
        message = one_line(str(error))
        failure = classify(ErrorCategory.PLUGIN, message, plugin=plugin)
        fields.update(
            status=RunStatus.ERROR.value,
            message=message,
            variables={},
            finished_at=utcnow(),
            **failure.columns(),
        )
        return fields
    fields.update(variables=resolution.values, variable_sources=resolution.sources)
    return fields


def _data_file(state: ApiState, submission: RunSubmission) -> Path:
    """The run's data file: the one the client named (checked) or the one the template finds.

    Raises:
        HTTPException: 422 for a named path that is outside the archive or not a regular file;
            409 when the template finds no file yet, several, or one outside the archive.
    """
    if submission.data_path is not None:
        try:
            return checked_data_file(state.settings, submission.data_path)
        except DataFileError as error:
            raise HTTPException(status_code=422, detail=f"data_path: {error}") from None
    pattern = state.settings.data_pattern(submission.instrument, submission.run_number)
    try:
        found = locate_data_file(state.settings, submission.instrument, submission.run_number)
    except (AmbiguousDataFileError, DataFileError) as error:
        raise HTTPException(status_code=409, detail=one_line(str(error), 1000)) from None
    if found is None:
        raise HTTPException(
            status_code=409,
            detail=f"the data file of {submission.instrument} run {submission.run_number} "
            f"does not exist yet: looked for {pattern}",
        )
    return found


def _same_run(existing: ReductionRun, data_path: Path, submitted_by: str) -> ReductionRun:
    """``existing`` if it was recorded with ``data_path``; 409 naming both paths otherwise."""
    if existing.data_path == str(data_path):
        return existing
    logger.warning(
        "conflicting submission of %s run %d by %s: recorded with %s, now submitted with %s",
        existing.instrument,
        existing.run_number,
        submitted_by,
        existing.data_path,
        data_path,
    )
    raise HTTPException(
        status_code=409,
        detail=f"{existing.instrument} run {existing.run_number} is already recorded with "
        f"data file {existing.data_path}, not {data_path}; an operator must resolve this",
    )


def record_detected_run(
    state: ApiState, submission: RunSubmission, actor: Actor
) -> tuple[ReductionRun, bool]:
    """Record version 0 of a detected run; (the run, True if it was created now).

    A run already recorded with the same data file is answered as it is (idempotent); with
    another data file it is a 409 naming both, logged for an operator. A new run is recorded in
    the audit trail with it.
    """
    submitted_by = actor.name
    state.instrument_config(submission.instrument)
    existing = _first_version(state, submission.instrument, submission.run_number)
    try:
        data_path = _data_file(state, submission)
    except HTTPException:
        if existing is not None and submission.data_path is None:
            return existing, False  # recorded earlier; its file has moved or gone since
        raise
    if existing is not None:
        return _same_run(existing, data_path, submitted_by), False
    metadata = read_metadata(state, data_path)
    fields = _detected_fields(state, submission, data_path, metadata.experiment_ref)
    for _ in range(RECORD_ATTEMPTS):
        try:
            with state.database.session() as session:
                paused = ensure_instrument(session, submission.instrument)
                run = _new_run(
                    {
                        **fields,
                        "experiment_ref": metadata.experiment_ref,
                        "title": metadata.title,
                        "submitted_by": submitted_by,
                    }
                )
                if run.status == RunStatus.QUEUED:
                    run.message = hold_reason(state, session, run.instrument, paused)
                add_with_message(session, run)
                audit_run(session, actor, "run.submit", run, data_path=run.data_path)
        except (IntegrityError, OperationalError) as error:
            if not lost_race(error):
                raise
            # the same run (or its instrument row) was recorded concurrently
            existing = _first_version(state, submission.instrument, submission.run_number)
            if existing is not None:
                return _same_run(existing, data_path, submitted_by), False
            continue
        announce(state, run)
        return run, True
    raise HTTPException(status_code=409, detail="the run was being recorded concurrently; retry")
