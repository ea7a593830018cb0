"""The alert rules: which conditions hold now, judged from the database, broker and disk.

Each rule returns the conditions it finds; a rule that cannot be judged (its database query or
broker failed) is left out of ``judged``, so its alerts are neither fired nor resolved on a guess.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autoreduce import pipeline_health as health
from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus
from autoreduce.messages import DEAD_LETTER_QUEUE
from autoreduce.operations import job_statuses
from autoreduce.settings import ALERT_RULES, Settings
from autoreduce.state_machine import one_line
from autoreduce.transport import Transport

logger = logging.getLogger("autoreduce.alerts")


@dataclass(frozen=True)
class Condition:
    """A rule's condition holding now, for one instrument or facility-wide (``instrument`` None)."""

    rule: str
    instrument: str | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.instrument}" if self.instrument else self.rule


@dataclass(frozen=True)
class Observed:
    """What the rules look at."""

    settings: Settings
    database: Database
    transport: Transport
    now: datetime


def _minutes(value: float) -> str:
    return f"{value:g} min"


def run_error(seen: Observed, session: Session) -> Iterable[Condition]:
    """Runs in Error finished within the error window, per instrument, grouped by cause."""
    window = seen.settings.alerts.error_window_min
    since = seen.now - timedelta(minutes=window)
    rows = session.execute(
        select(
            ReductionRun.instrument,
            ReductionRun.error_fingerprint,
            func.max(ReductionRun.error_signature),
            func.max(ReductionRun.message),
            func.count(),
        )
        .where(ReductionRun.status == RunStatus.ERROR, ReductionRun.finished_at >= since)
        .group_by(ReductionRun.instrument, ReductionRun.error_fingerprint)
    ).all()
    causes: dict[str, list[dict[str, Any]]] = {}
    for instrument, fingerprint, signature, message, count in rows:
        causes.setdefault(instrument, []).append(
            {"fingerprint": fingerprint, "cause": signature or message, "runs": int(count)}
        )
    for instrument, groups in sorted(causes.items()):
        groups.sort(key=lambda group: -group["runs"])
        total = sum(group["runs"] for group in groups)
        yield Condition(
            "run_error",
            instrument,
            f"{instrument}: {total} run(s) in Error in the last {_minutes(window)}, "
            f"{len(groups)} cause(s); most: {one_line(groups[0]['cause'], 200)}",
            {"runs": total, "causes": groups[:10]},
        )


def instrument_silent(seen: Observed, session: Session) -> Iterable[Condition]:
    """A configured, unpaused instrument with no run detected for longer than its quiet period."""
    instruments = health.instrument_rows(session)
    detected = health.last_detections(session)
    for name in sorted(seen.settings.instruments):
        quiet_min = seen.settings.alerts.quiet_period_min_of(name)
        paused, created = instruments.get(name, (False, None))
        if quiet_min <= 0 or paused:
            continue
        last = detected.get(name, created)
        if last is None:  # never recorded: nothing to measure silence from
            continue
        silent_s = (seen.now - last).total_seconds()
        if silent_s > quiet_min * 60:
            yield Condition(
                "instrument_silent",
                name,
                f"{name}: no run detected for {silent_s / 60:.0f} min "
                f"(quiet period {_minutes(quiet_min)}); is the instrument or the detector stuck?",
                {"last_detected_at": last.isoformat(), "quiet_period_min": quiet_min},
            )


def runs_stalled(seen: Observed, session: Session) -> Iterable[Condition]:
    """Runs waiting longer than the stall time on an unpaused instrument, and none finished."""
    stalled_min = seen.settings.alerts.stalled_min
    cutoff = seen.now - timedelta(minutes=stalled_min)
    waiting = dict(
        session.execute(
            select(ReductionRun.instrument, func.count())
            .where(
                ReductionRun.status.in_((RunStatus.QUEUED, RunStatus.PROCESSING)),
                ReductionRun.queued_at <= cutoff,
            )
            .group_by(ReductionRun.instrument)
        ).all()
    )
    finished = dict(
        session.execute(
            select(ReductionRun.instrument, func.count())
            .where(ReductionRun.finished_at >= cutoff)
            .group_by(ReductionRun.instrument)
        ).all()
    )
    paused = {name for name, (is_paused, _) in health.instrument_rows(session).items() if is_paused}
    for instrument, count in sorted(waiting.items()):
        if instrument in paused or finished.get(instrument):
            continue
        yield Condition(
            "runs_stalled",
            instrument,
            f"{instrument}: {count} run(s) waiting over {_minutes(stalled_min)} and none "
            "finished in that time: nothing is being reduced",
            {"waiting": int(count), "stalled_min": stalled_min},
        )


def latency_over_target(seen: Observed, session: Session) -> Iterable[Condition]:
    """An instrument's detection→final p95, over recently finished runs, above its target."""
    alerts = seen.settings.alerts
    since = seen.now - timedelta(minutes=alerts.latency_window_min)
    for name in sorted(seen.settings.instruments):
        durations = health.recent_detection_to_final_s(session, name, since)
        if len(durations) < alerts.latency_min_runs:
            continue
        p95 = health.p95(durations)
        target = alerts.latency_target_s_of(name)
        if p95 > target:
            yield Condition(
                "latency_over_target",
                name,
                f"{name}: detection→final p95 {p95:.0f} s over its target {target:g} s "
                f"({len(durations)} runs in the last {_minutes(alerts.latency_window_min)})",
                {"p95_s": round(p95, 3), "target_s": target, "runs": len(durations)},
            )


def no_processor(seen: Observed, session: Session) -> Iterable[Condition]:
    """No queue processor has a recent heartbeat."""
    interval = seen.settings.heartbeat_interval_s
    if health.processors_alive(session, seen.now, interval) == 0:
        yield Condition(
            "no_processor",
            None,
            "no queue processor is alive: no run will be reduced until one starts",
        )


def outbox_growing(seen: Observed, session: Session) -> Iterable[Condition]:
    """An outbox message unsent for longer than the limit: the broker is not taking messages."""
    limit_min = seen.settings.alerts.outbox_growing_min
    backlog, oldest_s = health.outbox_backlog(session, seen.now)
    if backlog and oldest_s > limit_min * 60:
        yield Condition(
            "outbox_growing",
            None,
            f"{backlog} outbox message(s) unsent, the oldest for {oldest_s / 60:.0f} min: "
            "is the broker reachable?",
            {"backlog": backlog, "oldest_age_s": round(oldest_s, 1)},
        )


def backup_failed(seen: Observed, session: Session) -> Iterable[Condition]:
    """The newest backup or its verification failed, or no good backup for too long.

    Judged once a backup has been recorded (a fresh instance has none to judge).
    """
    max_age_h = seen.settings.alerts.backup_max_age_h
    statuses = job_statuses(session)
    backup, check = statuses.get("backup"), statuses.get("verify")
    if backup is None:
        return
    problems = []
    details: dict[str, Any] = {"max_age_h": max_age_h}
    for name, status in (("backup", backup), ("verification", check)):
        if status is not None and status.failing:
            problems.append(f"the last {name} failed: {one_line(status.last_failure_reason, 300)}")
            details[f"{status.job}_failed_at"] = status.last_failure_at
    last_ok = backup.last_success_at
    age_h = None if last_ok is None else (seen.now - last_ok).total_seconds() / 3600
    if age_h is None or age_h > max_age_h:
        since = "ever" if age_h is None else f"for {age_h:.0f} h"
        problems.append(f"no successful backup {since} (limit {max_age_h:g} h)")
    if problems:
        details["last_success_at"] = last_ok
        yield Condition(
            "backup_failed",
            None,
            "database backup: " + "; ".join(problems),
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in details.items()},
        )


def dead_letters(seen: Observed) -> Iterable[Condition]:
    """The dead-letter queue holds messages."""
    depth = len(seen.transport.browse(DEAD_LETTER_QUEUE, 1000))
    if depth:
        yield Condition(
            "dead_letters",
            None,
            f"{depth}{'+' if depth >= 1000 else ''} message(s) in the dead-letter queue "
            "(`autoreduce dlq list`)",
            {"depth": depth},
        )


def disk_filling(seen: Observed) -> Iterable[Condition]:
    """The disk holding the outputs is fuller than the threshold."""
    threshold = seen.settings.alerts.disk_threshold_pct
    where = _existing(seen.settings.outputs_root)
    usage = shutil.disk_usage(where)
    used_pct = 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0
    if used_pct > threshold:
        yield Condition(
            "disk_filling",
            None,
            f"the outputs disk ({where}) is {used_pct:.1f}% full (threshold {threshold:g}%)",
            {"used_pct": round(used_pct, 2), "free_bytes": usage.free, "path": str(where)},
        )


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


DATABASE_RULES: dict[str, Callable[[Observed, Session], Iterable[Condition]]] = {
    "run_error": run_error,
    "instrument_silent": instrument_silent,
    "runs_stalled": runs_stalled,
    "latency_over_target": latency_over_target,
    "no_processor": no_processor,
    "outbox_growing": outbox_growing,
    "backup_failed": backup_failed,
}
OTHER_RULES: dict[str, Callable[[Observed], Iterable[Condition]]] = {
    "dead_letters": dead_letters,
    "disk_filling": disk_filling,
}
assert set(DATABASE_RULES) | set(OTHER_RULES) == set(ALERT_RULES)


def evaluate(seen: Observed) -> tuple[list[Condition], set[str]]:
    """The conditions holding now, and the rules judged (a failing rule is logged, not judged).

    A disabled rule counts as judged with nothing found, so its firing alerts resolve.
    """
    disabled = set(seen.settings.alerts.disabled_rules)
    conditions: list[Condition] = []
    judged: set[str] = set(disabled)
    for name in ALERT_RULES:
        if name in disabled:
            continue
        try:
            if name in DATABASE_RULES:
                with seen.database.read_session() as session:
                    found = list(DATABASE_RULES[name](seen, session))
            else:
                found = list(OTHER_RULES[name](seen))
        except Exception as error:  # one rule's failure never stops the others
            logger.warning("alert rule %s cannot be judged: %s", name, one_line(str(error), 300))
            continue
        conditions.extend(found)
        judged.add(name)
    return conditions, judged
