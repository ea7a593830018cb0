"""One row per run (its latest version) for an instrument's run list, newest run first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, selectinload

from autoreduce.db.models import ReductionRun, RunOutput

TOTAL_LIMIT = 1_000
"""Runs are counted up to this many; past it the page says "More than 1,000" (each counted run
costs a lookup for a later version, so the page keeps this bound lower than the API's)."""


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
    total_exact: bool = True  # False: more than ``total`` (counting stops at TOTAL_LIMIT)
    more: bool | None = None  # whether runs follow this page (None: judge by the total)

    @property
    def next_offset(self) -> int | None:
        following = self.offset + len(self.rows)
        more = following < self.total if self.more is None else self.more
        return following if more else None

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
    and on the experiment.

    A run's latest version is the one with no later version (a lookup in ``uq_run_version``),
    so the page walks that index backwards from the highest run number and stops after the
    page; nothing groups the instrument's runs. The total is counted up to ``TOTAL_LIMIT``.
    """
    newer = aliased(ReductionRun)
    latest = ~(
        select(newer.id)
        .where(
            newer.instrument == ReductionRun.instrument,
            newer.run_number == ReductionRun.run_number,
            newer.run_version > ReductionRun.run_version,
        )
        .exists()
    )
    query = select(ReductionRun).where(ReductionRun.instrument == instrument, latest)
    if status:
        query = query.where(ReductionRun.status == status)
    if experiment_ref:
        query = query.where(ReductionRun.experiment_ref == experiment_ref)
    counted = session.scalar(
        select(func.count()).select_from(
            query.with_only_columns(ReductionRun.id).limit(TOTAL_LIMIT + 1).subquery()
        )
    )
    total = min(counted or 0, TOTAL_LIMIT)
    runs = session.scalars(
        query.options(selectinload(ReductionRun.outputs))
        .order_by(ReductionRun.run_number.desc())
        .limit(limit + 1)
        .offset(offset)
    ).all()
    versions = dict(
        session.execute(  # a run's versions: counted for the page's runs only
            select(ReductionRun.run_number, func.count())
            .where(
                ReductionRun.instrument == instrument,
                ReductionRun.run_number.in_([run.run_number for run in runs[:limit]]),
            )
            .group_by(ReductionRun.run_number)
        ).all()
    )
    return RunRowPage(
        rows=[RunRow(run, versions.get(run.run_number, 1)) for run in runs[:limit]],
        total=total,
        limit=limit,
        offset=offset,
        total_exact=(counted or 0) <= TOTAL_LIMIT,
        more=len(runs) > limit,
    )
