"""Each attempt at a run version: executor, resources, Slurm job, how it ended (run_attempts).

A Slurm attempt is recorded in two commits before anything waits on its job: its job name and
directory before ``sbatch``, its job id right after. A processor that takes the run over reads the
last attempt and follows that job (found by id, or by name when the submitter died between
``sbatch`` and the second commit) instead of submitting another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunAttempt, RunStatus, utcnow


@dataclass(frozen=True)
class Resources:
    executor: str
    memory_mb: int
    cpus: int
    timeout_s: float


def start_attempt(
    database: Database, *, run_id: int, attempt: int, processor: str, resources: Resources
) -> None:
    """Record that ``attempt`` of run ``run_id`` starts with ``resources``."""
    database.when_reachable(_start, database, run_id, attempt, processor, resources)


def _start(
    database: Database, run_id: int, attempt: int, processor: str, resources: Resources
) -> None:
    with database.session() as session:
        existing = session.scalar(
            select(RunAttempt).where(RunAttempt.run_id == run_id, RunAttempt.attempt == attempt)
        )
        if existing is not None:  # the same attempt again (a released run): start it afresh
            session.delete(existing)
            session.flush()
        session.add(
            RunAttempt(
                run_id=run_id,
                attempt=attempt,
                processor=processor,
                executor=resources.executor,
                memory_mb=resources.memory_mb,
                cpus=resources.cpus,
                timeout_s=resources.timeout_s,
                started_at=utcnow(),
            )
        )


def update_attempt(database: Database, *, run_id: int, attempt: int, **values: Any) -> None:
    """Set ``values`` on the attempt's row (retried through a database outage)."""

    def write() -> None:
        with database.session() as session:
            session.execute(
                update(RunAttempt)
                .where(RunAttempt.run_id == run_id, RunAttempt.attempt == attempt)
                .values(**values)
            )

    database.when_reachable(write)


def finish_attempt(
    database: Database, *, run_id: int, attempt: int, outcome: str, reason: str, **values: Any
) -> None:
    update_attempt(database, run_id=run_id, attempt=attempt, **finished(outcome, reason), **values)


def finished(outcome: str, reason: str) -> dict[str, Any]:
    """The columns of an attempt that ended with ``outcome`` for ``reason``."""
    return {"outcome": outcome[:16], "reason": reason[:1000], "finished_at": utcnow()}


def handed_off_attempts(*columns: Any) -> Select[Any]:
    """``columns`` of the runs in Processing joined to their current attempt, when that attempt
    handed its Slurm job to a follower (driven by the runs in Processing: few, indexed)."""
    return (
        select(*columns)
        .select_from(ReductionRun)
        .join(
            RunAttempt,
            (RunAttempt.run_id == ReductionRun.id) & (RunAttempt.attempt == ReductionRun.attempts),
        )
        .where(
            ReductionRun.status == RunStatus.PROCESSING.value,
            RunAttempt.handed_off_at.is_not(None),
        )
    )


def unfinished_slurm_attempt(database: Database, run_id: int, before: int) -> RunAttempt | None:
    """The latest earlier attempt of run ``run_id`` whose Slurm job nobody saw end."""
    with database.read_session() as session:
        row = session.scalar(
            select(RunAttempt)
            .where(
                RunAttempt.run_id == run_id,
                RunAttempt.attempt < before,
                RunAttempt.executor == "slurm",
            )
            .order_by(RunAttempt.attempt.desc())
            .limit(1)
        )
        if row is None or row.finished_at is not None or not row.slurm_job_name:
            return None
        session.expunge(row)
        return row


def attempts_of(database: Database, run_id: int) -> list[dict[str, Any]]:
    """Every attempt of run ``run_id``, first first, as the API shows them."""
    with database.read_session() as session:
        rows = session.scalars(
            select(RunAttempt).where(RunAttempt.run_id == run_id).order_by(RunAttempt.attempt)
        )
        return [attempt_item(row) for row in rows]


def attempts_by_run(session: Session, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The attempts of each of ``run_ids``, first first (one query)."""
    found: dict[int, list[dict[str, Any]]] = {}
    rows = session.scalars(
        select(RunAttempt)
        .where(RunAttempt.run_id.in_(run_ids))
        .order_by(RunAttempt.run_id, RunAttempt.attempt)
    )
    for row in rows:
        found.setdefault(row.run_id, []).append(attempt_item(row))
    return found


def attempt_item(row: RunAttempt) -> dict[str, Any]:
    return {
        "attempt": row.attempt,
        "processor": row.processor,
        "executor": row.executor,
        "memory_mb": row.memory_mb,
        "cpus": row.cpus,
        "timeout_s": row.timeout_s,
        "slurm_job_id": row.slurm_job_id or None,
        "slurm_state": row.slurm_state or None,
        "outcome": row.outcome or None,
        "reason": row.reason,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def raise_memory(database: Database, *, run_id: int, memory_mb: int) -> None:
    """The run version's next attempt gets ``memory_mb``."""

    def write() -> None:
        with database.session() as session:
            session.execute(
                update(ReductionRun).where(ReductionRun.id == run_id).values(memory_mb=memory_mb)
            )

    database.when_reachable(write)
