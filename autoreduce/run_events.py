"""Run events: each state transition also written as one ECS event record, for dashboards.

A record from logger ``autoreduce.events`` with ``event.kind: event``, ``event.category:
process``, ``event.action`` one of :data:`ACTIONS`, ``event.outcome``, the run's identity
(``autoreduce.*``, see :func:`autoreduce.logs.run_fields`) and, where they make sense, durations
in nanoseconds (ECS ``event.duration`` is in ns):

- ``run.queued``: nothing extra (``autoreduce.reason``: detected, rerun…);
- ``run.started``: ``autoreduce.queue_wait_ns`` (queued → started), ``autoreduce.attempt``;
- ``run.completed|error|skipped|cancelled``: ``event.duration`` and
  ``autoreduce.reduction_ns`` (the reduction's wall time, when it ran),
  ``autoreduce.detection_to_final_ns`` (detected, or else queued → final),
  ``autoreduce.error.category`` / ``autoreduce.error.fingerprint`` for an Error.

Kibana charts runs per instrument, failure rates and durations from these, without the database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from autoreduce.logs import RunIdentity, run_fields

logger = logging.getLogger("autoreduce.events")

ACTIONS = (
    "run.queued",
    "run.started",
    "run.requeued",
    "run.completed",
    "run.error",
    "run.skipped",
    "run.cancelled",
)
_OUTCOMES = {"run.completed": "success", "run.error": "failure"}
NS_PER_S = 1_000_000_000


def nanoseconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """``end - start`` in whole nanoseconds; None if either is unknown."""
    if start is None or end is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return int((end - start).total_seconds() * NS_PER_S)


def final_action(status: str) -> str:
    """The event action of a run that ended in ``status`` (``Completed`` → ``run.completed``)."""
    return f"run.{str(status).lower()}"


def log_run_event(
    action: str,
    run: RunIdentity,
    *,
    run_id: int | None = None,
    duration_ns: int | None = None,
    message: str = "",
    **fields: Any,
) -> None:
    """Write one run event; each of ``fields`` as ``autoreduce.<name>``, ``__`` meaning a dot.

    Durations are integers in nanoseconds; a ``None`` field is left out.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown run event {action!r}; one of {', '.join(ACTIONS)}")
    extra: dict[str, object] = {
        "event.kind": "event",
        "event.category": "process",
        "event.type": "end" if action not in ("run.queued", "run.started") else "start",
        "event.action": action,
        **run_fields(run, run_id),
    }
    if action in _OUTCOMES:
        extra["event.outcome"] = _OUTCOMES[action]
    if duration_ns is not None:
        extra["event.duration"] = max(0, int(duration_ns))
    for key, value in fields.items():
        if value is not None:
            extra[f"autoreduce.{key.replace('__', '.')}"] = value
    text = message or f"{run.instrument} {run.run_number} v{run.run_version}: {action}"
    logger.info(text, extra=extra)
