"""Publish a finished run's outputs to the object store (``storage = "s3://…"``).

Called once the outputs are in place in the processor's local output directory and checked,
before the run is recorded: the recorded ``output_dir`` becomes the attempt's base URL in the
store, and the local copy is removed once the run is recorded. A failed publication changes the
outcome into a retryable infrastructure failure: the run is retried (a new attempt, new keys)
and, out of attempts, ends in Error with the reason; nothing half-published is ever recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autoreduce.db.models import ReductionRun
from autoreduce.failures import ErrorCategory
from autoreduce.storage import ObjectStore, StoreError
from queue_processor.isolation import LOG_NAME, Outcome

logger = logging.getLogger("autoreduce.process")


def published_names(output_dir: Path, outcome: Outcome) -> list[str]:
    """The files to publish: the outcome's files and plots, and the log if it is a file."""
    names = [*outcome.files, *outcome.plots]
    log = output_dir / LOG_NAME
    if log.is_file() and not log.is_symlink():
        names.append(LOG_NAME)
    return list(dict.fromkeys(names))


def publish_outputs(
    store: ObjectStore, run: ReductionRun, attempt: int, output_dir: Path, outcome: Outcome
) -> str | None:
    """Upload the run's outputs; the base URL to record, or None (``outcome`` made a failure)."""
    try:
        prefix = store.run_prefix(run.instrument, run.run_number, run.run_version)
        return store.publish(prefix, attempt, output_dir, published_names(output_dir, outcome))
    except (StoreError, ValueError) as error:
        logger.error("run id %s: publishing outputs failed: %s", run.id, error)
        outcome.ok, outcome.retryable = False, True
        outcome.reason = f"publishing the outputs to the object store failed: {error}"
        outcome.category = ErrorCategory.INFRASTRUCTURE.value
        outcome.files, outcome.plots = [], []
        return None
