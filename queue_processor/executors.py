"""Where a reduction runs (a local child or a Slurm job), its attempt recorded, and the retry
with more resources.

The worker calls three hooks: :meth:`Executors.memory_mb` (the attempt's memory: the
instrument's, or what an earlier retry raised it to), :meth:`Executors.run` (the reduction, on
the instrument's executor, its resources and end recorded in ``run_attempts``) and
:meth:`Executors.retry` (requeue with more memory, or after a full disk).

Retry with more resources: a reduction killed for memory — its local limit (``MemoryError`` or the
processor's RSS watch), the kernel's OOM killer (a child dead of ``SIGKILL`` without a verdict) or
Slurm's ``OUT_OF_MEMORY`` — is retried with its memory doubled, up to the instrument's
``max_memory_mb`` (unset: not retried). "No space left on device" is retried after
``retry_delay_s``. Both count as attempts (``max_attempts`` bounds them).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun
from autoreduce.failures import ErrorCategory
from autoreduce.jobs import run_config
from autoreduce.run_attempts import (
    Resources,
    finish_attempt,
    raise_memory,
    start_attempt,
)
from autoreduce.settings import InstrumentConfig, Settings
from queue_processor.isolation import Outcome, ReductionJob, ReductionLauncher
from queue_processor.record import Also, requeue_for_retry
from queue_processor.slurm import SlurmExecutor, Submitted
from queue_processor.triage import outcome_failure

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
KILLED = "died from signal SIGKILL"


@dataclass(frozen=True)
class Retry:
    reason: str
    memory_mb: int | None = None  # the next attempt's memory, when raised


def plan_retry(
    outcome: Outcome, *, memory_mb: int, config: InstrumentConfig, attempt: int, max_attempts: int
) -> Retry | None:
    """How to retry a failed attempt with more resources (or later), or None."""
    if outcome.ok or attempt >= max_attempts:
        return None
    killed_for_memory = outcome.category == ErrorCategory.MEMORY.value or KILLED in outcome.reason
    if killed_for_memory and config.max_memory_mb and memory_mb < config.max_memory_mb:
        more = min(memory_mb * 2, config.max_memory_mb)
        return Retry(f"{outcome.reason}; retrying with {more} MB", more)
    if NO_SPACE in outcome.reason or NO_SPACE in outcome.exception_message:
        return Retry(f"{outcome.reason}; retrying later")
    return None


class Executors:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        launcher: ReductionLauncher,
        processor_id: str,
    ) -> None:
        self.settings = settings
        self.database = database
        self.launcher = launcher
        self.processor_id = processor_id
        self.slurm = SlurmExecutor(settings, database, processor_id)

    def memory_mb(self, run: ReductionRun, config: InstrumentConfig) -> int:
        return run.memory_mb or config.memory_mb

    def run(
        self,
        run: ReductionRun,
        attempt: int,
        job: ReductionJob,
        config: InstrumentConfig,
        stop_reason: Callable[[], str],
    ) -> Outcome | Submitted:
        """The local reduction's outcome, or the Slurm job submitted for the follower."""
        resources = Resources(
            config.executor,
            job.memory_mb,
            config.cpus if config.executor == "slurm" else 1,
            job.timeout_s,
        )
        # A local attempt is recorded only where a retry may change its resources: elsewhere the
        # run row says all there is, and the hot path keeps one commit to claim and one to record.
        recorded = config.executor == "slurm" or bool(config.max_memory_mb)
        if recorded:
            start_attempt(
                self.database,
                run_id=run.id,
                attempt=attempt,
                processor=self.processor_id,
                resources=resources,
            )
        if config.executor == "slurm":  # the follower reads its verdict (slurm_follower.py)
            submitted = self.slurm.submit(job, config, run_id=run.id, attempt=attempt)
            if isinstance(submitted, Submitted):
                return submitted
            outcome = submitted
        else:
            outcome = self.launcher.run(job, stop_reason=stop_reason)
        if recorded:
            self.finish(run.id, attempt, outcome)
        return outcome

    def finish(self, run_id: int, attempt: int, outcome: Outcome) -> None:
        """Record how the attempt ended (a retry marks it again, as retried)."""
        finish_attempt(
            self.database,
            run_id=run_id,
            attempt=attempt,
            outcome="completed" if outcome.ok else (outcome.category or "stopped"),
            reason=outcome.reason,
        )

    def retry(
        self,
        run: ReductionRun,
        attempt: int,
        outcome: Outcome,
        plugin: str,
        also: Also | None = None,
    ) -> str | None:
        """Requeue the run for a retry with more resources; its reason, or None (no retry).

        ``also`` joins the requeue's transaction (the worker ships the attempt's last log lines)."""
        config = run_config(self.settings, self.database, run)  # an instrument's, or a job's
        if config is None:
            return None
        plan = plan_retry(
            outcome,
            memory_mb=self.memory_mb(run, config),
            config=config,
            attempt=attempt,
            max_attempts=self.settings.max_attempts,
        )
        if plan is None:
            return None
        if plan.memory_mb is not None:
            raise_memory(self.database, run_id=run.id, memory_mb=plan.memory_mb)
        failure = outcome_failure(outcome, plugin)
        if not requeue_for_retry(  # marks the attempt retried
            self.database,
            run_id=run.id,
            attempt=attempt,
            reason=plan.reason,
            failure=failure,
            also=also,
        ):
            return None
        return plan.reason
