"""One row per run (its latest version) for an instrument's run list, newest run first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from autoreduce.db.models import ReductionRun, RunOutput


@dataclass(frozen=True)
class RunRow:
    """A run as its instrument's list shows it: the latest version and how many there are."""

    latest: ReductionRun
    version_count: int

    @property
    def plot(self) -> RunOutput | None:
        """The latest version's first plot, for a thumbnail."""
        return next((output for output in self.latest.outputs if output.kind == "plot"), None)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish of the latest version (None until it finishes)."""
        run = self.latest
        if run.started_at is None or run.finished_at is None:
            return None
        return (run.finished_at - run.started_at).total_seconds()


@dataclass(frozen=True)
class RunRowPage:
    rows: list[RunRow]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        following = self.offset + len(self.rows)
        return following if following < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset else None


def instrument_runs(
    session: Session,
    instrument: str,
    *,
    status: str | None = None,
    experiment_ref: str | None = None,
    limit: int = 25,
    offset: int = 0,
) -> RunRowPage:
    """A page of ``instrument``'s runs, newest first, filtered on the latest version's state
    and on the experiment."""
    latest = (
        select(
            ReductionRun.run_number,
            func.max(ReductionRun.run_version).label("version"),
            func.count().label("versions"),
        )
        .where(ReductionRun.instrument == instrument)
        .group_by(ReductionRun.run_number)
        .subquery()
    )
    query = (
        select(ReductionRun, latest.c.versions)
        .join(
            latest,
            (ReductionRun.run_number == latest.c.run_number)
            & (ReductionRun.run_version == latest.c.version),
        )
        .where(ReductionRun.instrument == instrument)
    )
    if status:
        query = query.where(ReductionRun.status == status)
    if experiment_ref:
        query = query.where(ReductionRun.experiment_ref == experiment_ref)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.options(selectinload(ReductionRun.outputs))
        .order_by(ReductionRun.run_number.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return RunRowPage(
        rows=[RunRow(run, count) for run, count in rows], total=total, limit=limit, offset=offset
    )
