"""Outcomes of the operations jobs (backup, verify, cleanup), where alerts and metrics see them.

Each run of ``autoreduce db backup``, ``db restore --verify`` and ``cleanup`` adds one row to
``maintenance_runs``. The alert rule ``backup_failed`` and ``/metrics`` read the newest rows of
each job: a failed backup or verification alerts, and so does no good backup for too long (which
also covers a backup that could not even record its failure because the database was down).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import MaintenanceRun, utcnow
from autoreduce.pipeline_health import _aware
from autoreduce.state_machine import one_line

logger = logging.getLogger("autoreduce.operations")

JOBS = ("backup", "verify", "cleanup")
OK = "ok"
FAILED = "failed"


def record_outcome(
    database_url: str,
    job: str,
    started_at: datetime,
    ok: bool,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> bool:
    """Add one outcome row; False (and a warning) when it cannot be recorded."""
    database = Database(database_url)
    try:
        with database.session() as session:
            session.add(
                MaintenanceRun(
                    job=job,
                    outcome=OK if ok else FAILED,
                    started_at=started_at,
                    finished_at=utcnow(),
                    reason=one_line(reason, 1000),
                    host=socket.gethostname()[:200],
                    details=details or {},
                )
            )
    except Exception as error:  # the database is down or not migrated: the staleness alert
        logger.warning("cannot record the %s outcome: %s", job, one_line(str(error), 300))
        return False
    finally:
        database.dispose()
    return True


@dataclass(frozen=True)
class JobStatus:
    """The newest success and failure of one job."""

    job: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure_reason: str

    @property
    def failing(self) -> bool:
        """The newest outcome is a failure."""
        if self.last_failure_at is None:
            return False
        return self.last_success_at is None or self.last_failure_at > self.last_success_at


def job_statuses(session: Session) -> dict[str, JobStatus]:
    """Each job that has run: its newest success and failure (with the failure's reason)."""
    newest = session.execute(
        select(
            MaintenanceRun.job, MaintenanceRun.outcome, func.max(MaintenanceRun.finished_at)
        ).group_by(MaintenanceRun.job, MaintenanceRun.outcome)
    ).all()
    success: dict[str, datetime] = {}
    failure: dict[str, datetime] = {}
    for job, outcome, moment in newest:
        (success if outcome == OK else failure)[job] = _aware(moment)
    statuses = {}
    for job in sorted(set(success) | set(failure)):
        reason = ""
        if job in failure:
            reason = (
                session.scalar(
                    select(MaintenanceRun.reason)
                    .where(MaintenanceRun.job == job, MaintenanceRun.outcome == FAILED)
                    .order_by(MaintenanceRun.finished_at.desc(), MaintenanceRun.id.desc())
                    .limit(1)
                )
                or ""
            )
        statuses[job] = JobStatus(job, success.get(job), failure.get(job), reason)
    return statuses
