"""Put a reduction's outputs in place and record its final state.

Outputs are written to a temporary sibling of the run's output directory and renamed into place
when the child is done, so a reader never sees half a run. The record is one transaction with one
commit, in Core statements: the final state (fenced by the attempt that produced it), the output
rows and whatever the caller adds with ``also`` (the log's last lines and, on the SQL queue, the
message's ack), so the result, its log and its ack commit together or not at all.

Nothing is created, moved or removed until the directories involved are checked (again, since
the plugin ran in between) to be real directories below the outputs root
(:class:`~autoreduce.paths.UnsafePathError` otherwise), and only regular files inside the output
directory are recorded as outputs. What a plugin itself writes outside its output directory
cannot be prevented here (that needs a sandbox); it is only never recorded or served.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunAttempt, RunOutput, RunStatus, utcnow
from autoreduce.failures import NO_FAILURE_COLUMNS, Failure
from autoreduce.paths import UnsafePathError, confine, relative_name
from autoreduce.run_attempts import finished
from autoreduce.state_machine import transition
from queue_processor.child import refused_output_reason
from queue_processor.isolation import LOG_NAME, Outcome

logger = logging.getLogger("autoreduce.process")


def _check_below(outputs_root: Path, directory: Path, what: str) -> None:
    """Raise unless ``directory`` is itself (no symlink) strictly below ``outputs_root``."""
    resolved = confine(outputs_root, directory, what=what)
    if resolved != directory:
        raise UnsafePathError(f"{what} {str(directory)!r} now resolves to {str(resolved)!r}")
    if resolved == confine(outputs_root, outputs_root):
        raise UnsafePathError(f"{what} {str(directory)!r} is the outputs root itself")


def work_dir_for(output_dir: Path, outputs_root: Path) -> Path:
    """A fresh temporary directory beside ``output_dir`` for one attempt.

    What earlier attempts of the same run left behind (their processor died) is removed.
    ``output_dir`` is resolved (see :meth:`Settings.output_dir`) and is checked again first.

    Raises:
        UnsafePathError: ``output_dir`` is not strictly below ``outputs_root``.
    """
    _check_below(outputs_root, output_dir, "output directory")
    if output_dir.parent.is_dir():
        for stale in output_dir.parent.glob(f".{output_dir.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    return output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}"


def move_into_place(work_dir: Path, output_dir: Path, outputs_root: Path) -> None:
    """Replace ``output_dir`` (a stale earlier attempt, if any) with ``work_dir``.

    Raises:
        UnsafePathError: either directory no longer resolves to itself strictly below
            ``outputs_root`` (the plugin swapped one for a symlink); nothing is moved.
    """
    _check_below(outputs_root, output_dir, "output directory")
    _check_below(outputs_root, work_dir, "work directory")
    if output_dir.exists():
        stale = output_dir.parent / f".{output_dir.name}.stale-{uuid.uuid4().hex[:8]}"
        os.replace(output_dir, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(work_dir, output_dir)


def _is_output_file(output_dir: Path, name: str) -> bool:
    """``name`` is a regular file inside ``output_dir``, named as itself (no symlink on the way)."""
    try:
        return relative_name(output_dir, name) == name and (output_dir / name).is_file()
    except UnsafePathError:
        return False


def refused_output(output_dir: Path, outcome: Outcome) -> str | None:
    """Why one of the outcome's files or plots may not be recorded, or None if all may be.

    Each must be a relative name of a regular file inside ``output_dir``, reached without a
    symlink. The child checked this already; it is checked again because the plugin ran in the
    child and could have changed the verdict or the files since.
    """
    for kind, names in (("file", outcome.files), ("plot", outcome.plots)):
        for name in names:
            if not _is_output_file(output_dir, name):
                return refused_output_reason(kind, name)
    return None


def _output_rows(run_id: int, output_dir: Path, outcome: Outcome) -> list[dict[str, object]]:
    """The outcome's files and plots (checked by :func:`refused_output`) and the run's log.

    The log is recorded only if it is a regular file inside ``output_dir``: a plugin can replace
    it with a symlink to anything, which is not served.
    """
    entries = [("data", name) for name in outcome.files] + [("plot", n) for n in outcome.plots]
    if _is_output_file(output_dir, LOG_NAME):
        entries.append(("log", LOG_NAME))
    elif os.path.lexists(output_dir / LOG_NAME):
        logger.warning("%s is not a regular file in %s; not recorded", LOG_NAME, output_dir)
    rows = []
    for kind, name in entries:
        path = output_dir / name
        size = path.stat().st_size if path.is_file() else 0
        rows.append({"run_id": run_id, "kind": kind, "name": name, "size_bytes": size})
    return rows


Also = Callable[[Session, bool], None]
"""More work for the record's transaction, told whether the run moved (the attempt held it)."""


def _finish_held(
    database: Database,
    run_id: int,
    attempt: int,
    new: RunStatus,
    outputs: list[dict[str, object]] | None = None,
    also: Also | None = None,
    **values: object,
) -> bool:
    """One transaction, retried through a database outage: move the held run, add outputs."""

    def write() -> bool:
        with database.session() as session:
            moved = transition(
                session, run_id, RunStatus.PROCESSING, new, expected_attempts=attempt, **values
            )
            if moved and outputs:
                session.execute(insert(RunOutput), outputs)
            if also is not None:
                also(session, moved)
            return moved

    return database.when_reachable(write)


def record_outcome(
    database: Database,
    *,
    run_id: int,
    attempt: int,
    output_dir: Path,
    outcome: Outcome,
    failure: Failure | None = None,
    provenance: dict[str, Any] | None = None,
    stored_at: str | None = None,
    also: Also | None = None,
) -> bool:
    """Record Completed or Error for the attempt that holds the run; False if it lost the run.

    An Error carries ``failure`` (its category and fingerprint); a Completed run has an earlier
    attempt's crash cleared, message and failure alike. ``stored_at`` (the object store's base
    URL of the published outputs) is recorded as the output directory when given.
    """
    values: dict[str, object] = {
        "finished_at": utcnow(),
        "output_dir": stored_at or str(output_dir),
        "summary": outcome.summary[:1000],
        "provenance": provenance,
    }
    values["message"] = "" if outcome.ok else outcome.reason  # clears an earlier crash
    values.update(NO_FAILURE_COLUMNS if outcome.ok or failure is None else failure.columns())
    status = RunStatus.COMPLETED if outcome.ok else RunStatus.ERROR
    outputs = _output_rows(run_id, output_dir, outcome)
    return _finish_held(database, run_id, attempt, status, outputs, also, **values)


def record_without_reduction(
    database: Database,
    *,
    run_id: int,
    attempt: int,
    status: RunStatus,
    reason: str,
    failure: Failure | None = None,
    provenance: dict[str, Any] | None = None,
    also: Also | None = None,
) -> bool:
    """Finish a held run that is not reduced (Skipped, or Error with ``failure`` before the
    child started)."""
    columns = failure.columns() if failure is not None else NO_FAILURE_COLUMNS
    return _finish_held(
        database,
        run_id,
        attempt,
        status,
        also=also,
        message=reason,
        finished_at=utcnow(),
        provenance=provenance,
        **columns,
    )


def record_cancelled(
    database: Database, *, run_id: int, attempt: int, message: str, also: Also | None = None
) -> bool:
    """Finish a held run whose reduction was stopped on request; nothing is recorded as output."""
    return _finish_held(
        database,
        run_id,
        attempt,
        RunStatus.CANCELLED,
        also=also,
        message=message,
        finished_at=utcnow(),
    )


def requeue_for_retry(
    database: Database,
    *,
    run_id: int,
    attempt: int,
    reason: str,
    failure: Failure,
    also: Also | None = None,
) -> bool:
    """Put a held run back in the queue after a failed attempt; the attempt counts.

    The attempt's ``failure`` stays on the run, so that giving up on it later (here or in
    :func:`~queue_processor.claim.claim_run`) records the cause of the last crash. The
    attempt's row, where it has one, is marked ``retried`` in the same transaction.
    """

    def retried(session: Session, moved: bool) -> None:
        if moved:
            session.execute(
                update(RunAttempt)
                .where(RunAttempt.run_id == run_id, RunAttempt.attempt == attempt)
                .values(**finished("retried", reason))
            )
        if also is not None:
            also(session, moved)

    return _finish_held(
        database,
        run_id,
        attempt,
        RunStatus.QUEUED,
        also=retried,
        message=reason,
        processor="",
        started_at=None,
        **failure.columns(),
    )


def show_on_held(session: Session, run_id: int, attempt: int, message: str) -> bool:
    """Set the run's message if ``attempt`` still holds it (Processing); whether it did."""
    held = session.execute(
        update(ReductionRun)
        .where(
            ReductionRun.id == run_id,
            ReductionRun.status == RunStatus.PROCESSING.value,
            ReductionRun.attempts == attempt,
        )
        .values(message=message)
    ).rowcount  # type: ignore[attr-defined]
    return bool(held)


def hand_off(
    database: Database, *, run_id: int, attempt: int, message: str, also: Also | None = None
) -> bool:
    """Hand the held run's Slurm job to this processor's follower: one transaction that shows
    ``message`` on the run, marks the attempt handed off and (``also``, on the SQL queue) acks
    the message; False if the attempt no longer holds the run."""

    def write() -> bool:
        with database.session() as session:
            moved = show_on_held(session, run_id, attempt, message) and (
                session.execute(
                    update(RunAttempt)
                    .where(
                        RunAttempt.run_id == run_id,
                        RunAttempt.attempt == attempt,
                        RunAttempt.finished_at.is_(None),
                    )
                    .values(handed_off_at=utcnow())
                ).rowcount  # type: ignore[attr-defined]
                == 1
            )
            if also is not None:
                also(session, moved)
            return moved

    return database.when_reachable(write)


def earlier_provenance(database: Database, run: ReductionRun) -> tuple[int, dict[str, Any]] | None:
    """(version, provenance) of the newest earlier version of ``run`` that recorded a plugin.

    That version is the re-run's base for telling whether the plugin changed: the versions of
    a run share their data file and differ in variables and code.
    """
    query = (
        select(ReductionRun.run_version, ReductionRun.provenance)
        .where(
            ReductionRun.instrument == run.instrument,
            ReductionRun.run_number == run.run_number,
            ReductionRun.run_version < run.run_version,
        )
        .order_by(ReductionRun.run_version.desc())
    )

    def read() -> tuple[int, dict[str, Any]] | None:
        with database.read_session() as session:
            for version, provenance in session.execute(query):
                if isinstance(provenance, dict) and provenance.get("plugin_version"):
                    return int(version), provenance
        return None

    return database.when_reachable(read)


def release_run(database: Database, *, run_id: int, attempt: int, also: Also | None = None) -> bool:
    """Give a held run back to the queue; a release is not a failed attempt."""
    return _finish_held(
        database,
        run_id,
        attempt,
        RunStatus.QUEUED,
        also=also,
        attempts=attempt - 1,
        processor="",
        started_at=None,
    )
