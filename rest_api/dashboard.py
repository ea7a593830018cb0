"""What the overview page shows at a glance: runs today and this week, latency, queue, errors.

Read-only queries over the runs, the outbox and the processors' heartbeats, grouped in the
database (a few queries per page, not one per instrument). Times are UTC: "today" starts at
00:00 UTC, "this week" on Monday 00:00 UTC.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autoreduce.db.models import OutboxMessage, ReductionRun, RunStatus, utcnow

MEDIAN_SAMPLE_LIMIT = 10_000
"""At most this many of today's Completed versions per instrument feed its median latency."""


@dataclass
class InstrumentGlance:
    """One instrument's card: its latest run, today's and this week's runs by state."""

    name: str
    latest_run_number: int | None = None
    latest_status: str = ""
    latest_version: int = 0
    today: dict[str, int] = field(default_factory=dict)
    week: dict[str, int] = field(default_factory=dict)
    median_latency_s: float | None = None  # detection → Completed, today's Completed versions
    queued: int = 0


@dataclass
class QueueDepth:
    """Versions waiting: Queued (held ones included) and, of those, not yet sent to the broker."""

    queued: int
    unsent: int


def day_and_week_start(now: datetime) -> tuple[datetime, datetime]:
    """The start of ``now``'s UTC day and of its ISO week (Monday)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day - timedelta(days=day.weekday())


def _counts_since(session: Session, names: list[str], since: datetime) -> dict[str, dict[str, int]]:
    # only the time condition in SQL: it alone picks the queued_at index (a day's or a week's
    # runs), where a condition on the instrument too would read each instrument's whole history
    # (counted here: grouping in SQL lets SQLite prefer an index in group order, all history)
    counts: dict[str, dict[str, int]] = {name: {} for name in names}
    for (instrument, status), count in Counter(
        session.execute(
            select(ReductionRun.instrument, ReductionRun.status).where(
                ReductionRun.queued_at >= since
            )
        ).tuples()
    ).items():
        if instrument in counts:
            counts[instrument][status] = count
    return {name: _in_state_order(by_state) for name, by_state in counts.items()}


def _in_state_order(counts: dict[str, int]) -> dict[str, int]:
    return {state.value: counts[state.value] for state in RunStatus if counts.get(state.value)}


def latest_of_each(session: Session, names: list[str], column: Any) -> dict[str, Any]:
    """``column`` of each instrument's highest run number's latest version, in one statement:
    a scalar subquery per instrument, each one lookup at the end of ``uq_run_version`` (not a
    grouped scan of every run, nor a round trip per instrument)."""
    if not names:
        return {}
    latest = [
        select(column)
        .where(ReductionRun.instrument == name)
        .order_by(ReductionRun.run_number.desc(), ReductionRun.run_version.desc())
        .limit(1)
        .scalar_subquery()
        .label(f"latest_{index}")
        for index, name in enumerate(names)
    ]
    row = session.execute(select(*latest)).one()
    return {name: value for name, value in zip(names, row, strict=True) if value is not None}


def _latest_runs(session: Session, names: list[str]) -> dict[str, ReductionRun]:
    """Each instrument's highest run number's latest version."""
    runs = runs_by_id(session, list(latest_of_each(session, names, ReductionRun.id).values()))
    return {run.instrument: run for run in runs.values()}


def _median_latencies(session: Session, names: list[str], since: datetime) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for instrument, detected, finished in session.execute(
        select(ReductionRun.instrument, ReductionRun.detected_at, ReductionRun.finished_at)
        .where(
            ReductionRun.instrument.in_(names),
            ReductionRun.status == RunStatus.COMPLETED.value,
            ReductionRun.finished_at >= since,
            ReductionRun.detected_at.is_not(None),
        )
        .order_by(ReductionRun.finished_at.desc())
        .limit(MEDIAN_SAMPLE_LIMIT * max(1, len(names)))
    ):
        if finished is not None and detected is not None:
            samples.setdefault(instrument, []).append((finished - detected).total_seconds())
    return {name: statistics.median(values) for name, values in samples.items()}


def instrument_glances(
    session: Session, names: list[str], now: datetime | None = None
) -> list[InstrumentGlance]:
    """The overview card of each of ``names``, in that order."""
    day, week = day_and_week_start(now or utcnow())
    today, this_week = _counts_since(session, names, day), _counts_since(session, names, week)
    latest = _latest_runs(session, names)
    medians = _median_latencies(session, names, day)
    queued: dict[str, int] = {
        instrument: count
        for instrument, count in session.execute(
            select(ReductionRun.instrument, func.count())
            .where(
                ReductionRun.instrument.in_(names),
                ReductionRun.status == RunStatus.QUEUED.value,
            )
            .group_by(ReductionRun.instrument)
        )
    }
    glances = []
    for name in names:
        glance = InstrumentGlance(
            name=name,
            today=today[name],
            week=this_week[name],
            median_latency_s=medians.get(name),
            queued=queued.get(name, 0),
        )
        if (run := latest.get(name)) is not None:
            glance.latest_run_number = run.run_number
            glance.latest_version = run.run_version
            glance.latest_status = run.status
        glances.append(glance)
    return glances


def queue_depth(session: Session, names: list[str]) -> QueueDepth:
    """Queued versions of ``names`` and the outbox messages the relay has not sent yet."""
    queued = session.scalar(
        select(func.count()).where(
            ReductionRun.instrument.in_(names), ReductionRun.status == RunStatus.QUEUED.value
        )
    )
    unsent = session.scalar(
        select(func.count()).where(
            OutboxMessage.instrument.in_(names), OutboxMessage.sent_at.is_(None)
        )
    )
    return QueueDepth(queued=queued or 0, unsent=unsent or 0)


def last_errors(session: Session, names: list[str], limit: int = 5) -> list[ReductionRun]:
    """The ``limit`` most recent Error versions of ``names``, newest first."""
    return list(
        session.scalars(
            select(ReductionRun)
            .where(ReductionRun.instrument.in_(names), ReductionRun.status == RunStatus.ERROR.value)
            # the order of ix_runs_status_finished (its key, then the id): read backwards, it
            # stops after ``limit`` rows instead of sorting every Error version
            .order_by(
                ReductionRun.finished_at.desc(),
                ReductionRun.error_fingerprint.desc(),
                ReductionRun.id.desc(),
            )
            .limit(limit)
        )
    )


def runs_by_id(session: Session, ids: list[int]) -> dict[int, ReductionRun]:
    """The run versions with these ids (e.g. what processors are reducing)."""
    if not ids:
        return {}
    return {
        run.id: run for run in session.scalars(select(ReductionRun).where(ReductionRun.id.in_(ids)))
    }
