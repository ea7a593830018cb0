"""How the pipeline is doing, read from the database: what ``/metrics`` shows and alerts judge.

Every figure is one cheap grouped query, so a scrape or an alert evaluation costs a handful of
index or table scans and never depends on which process finished a run: the processors record
``queued_at``, ``started_at`` and ``finished_at`` on the run's row, and the durations are
computed from those columns here (in SQL, per dialect, by :class:`seconds_between`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from autoreduce.db.models import (
    Instrument,
    OutboxMessage,
    ProcessorHeartbeat,
    ReductionRun,
    RunStatus,
)

DURATION_BUCKETS_S: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400,
)  # fmt: skip
"""Upper bounds (seconds) of the duration histograms' buckets."""

FINAL_STATES = tuple(state.value for state in RunStatus if state.is_final)

PROCESSOR_SILENT_HEARTBEATS = 3
"""A processor whose heartbeat is older than this many periods is not alive (as the API says)."""


class seconds_between(FunctionElement[float]):
    """``seconds_between(start, end)``: ``end - start`` in seconds, as a float, in SQL."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (
        f"((julianday({compiler.process(end, **kw)}) - "
        f"julianday({compiler.process(start, **kw)})) * 86400.0)"
    )


@compiles(seconds_between, "mysql")
@compiles(seconds_between, "mariadb")
def _seconds_mysql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (
        f"(TIMESTAMPDIFF(MICROSECOND, {compiler.process(start, **kw)}, "
        f"{compiler.process(end, **kw)}) / 1000000.0)"
    )


@compiles(seconds_between)
def _seconds_other(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@dataclass(frozen=True)
class DurationHistogram:
    """One instrument's durations: cumulative counts per bucket bound, count and sum (seconds)."""

    instrument: str
    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_s: float


DURATIONS: dict[str, tuple[str, str, bool]] = {
    # name: (start column, end column, final runs only)
    "queue_wait": ("queued_at", "started_at", False),
    "reduction": ("started_at", "finished_at", True),
    "detection_to_final": ("detected_at", "finished_at", True),
}
"""The histograms: queue wait (queued → started), reduction (started → finished) and
detection → final (the instrument's run detected → its version reached a final state)."""


def runs_by_state(session: Session) -> list[tuple[str, str, int]]:
    """``(instrument, state, run versions)`` for every pair that has any."""
    rows = session.execute(
        select(ReductionRun.instrument, ReductionRun.status, func.count()).group_by(
            ReductionRun.instrument, ReductionRun.status
        )
    ).all()
    return [(instrument, status, int(n)) for instrument, status, n in rows]


def duration_histograms(
    session: Session, kind: str, bounds: Sequence[float] = DURATION_BUCKETS_S
) -> list[DurationHistogram]:
    """The ``kind`` durations (a key of :data:`DURATIONS`) of every run, per instrument."""
    start_name, end_name, final_only = DURATIONS[kind]
    start = getattr(ReductionRun, start_name)
    end = getattr(ReductionRun, end_name)
    seconds = seconds_between(start, end)
    columns: list[ColumnElement[Any]] = [
        func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds
    ]
    query = (
        select(ReductionRun.instrument, func.count(), func.sum(seconds), *columns)
        .where(start.is_not(None), end.is_not(None))
        .group_by(ReductionRun.instrument)
    )
    if final_only:
        query = query.where(ReductionRun.status.in_(FINAL_STATES))
    histograms = []
    for instrument, count, total, *cumulative in session.execute(query).all():
        histograms.append(
            DurationHistogram(
                instrument=instrument,
                buckets=tuple(
                    (float(b), int(n or 0)) for b, n in zip(bounds, cumulative, strict=True)
                ),
                count=int(count),
                sum_s=float(total or 0.0),
            )
        )
    return histograms


def recent_detection_to_final_s(session: Session, instrument: str, since: datetime) -> list[float]:
    """Detection → final durations (seconds) of ``instrument``'s runs finished since ``since``."""
    seconds = seconds_between(ReductionRun.detected_at, ReductionRun.finished_at)
    rows = session.scalars(
        select(seconds).where(
            ReductionRun.instrument == instrument,
            ReductionRun.status.in_(FINAL_STATES),
            ReductionRun.detected_at.is_not(None),
            ReductionRun.finished_at >= since,
        )
    ).all()
    return [float(value) for value in rows if value is not None]


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (nearest rank) of ``values``; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def queued_runs(session: Session) -> int:
    """Run versions waiting to be reduced (Queued, held ones included): the queue's depth."""
    count = session.scalar(
        select(func.count())
        .select_from(ReductionRun)
        .where(ReductionRun.status == RunStatus.QUEUED)
    )
    return int(count or 0)


def outbox_backlog(session: Session, now: datetime) -> tuple[int, float]:
    """Unsent outbox messages and the age (seconds) of the oldest of them (0 when none)."""
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.sent_at.is_(None)
        )
    ).one()
    age = 0.0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())
    return int(count or 0), age


def processors_alive(session: Session, now: datetime, heartbeat_interval_s: float) -> int:
    """Processors that have not stopped and whose heartbeat is recent."""
    horizon = now - timedelta(seconds=PROCESSOR_SILENT_HEARTBEATS * heartbeat_interval_s)
    count = session.scalar(
        select(func.count())
        .select_from(ProcessorHeartbeat)
        .where(ProcessorHeartbeat.stopped_at.is_(None), ProcessorHeartbeat.last_seen_at >= horizon)
    )
    return int(count or 0)


def last_detections(session: Session) -> dict[str, datetime]:
    """Each instrument's newest ``detected_at``: when the detector last saw a run of it."""
    rows = session.execute(
        select(ReductionRun.instrument, func.max(ReductionRun.detected_at)).group_by(
            ReductionRun.instrument
        )
    ).all()
    return {instrument: _aware(moment) for instrument, moment in rows if moment is not None}


def instrument_rows(session: Session) -> dict[str, tuple[bool, datetime]]:
    """Every recorded instrument: ``(is_paused, created_at)``."""
    rows = session.execute(
        select(Instrument.name, Instrument.is_paused, Instrument.created_at)
    ).all()
    return {name: (bool(paused), _aware(created)) for name, paused, created in rows}


def _aware(moment: Any) -> datetime:
    """A UTC datetime from a column (aggregates skip the column type on some dialects)."""
    from datetime import UTC

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
