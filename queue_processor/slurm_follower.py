"""The Slurm follower: one thread per processor follows every Slurm job handed to it.

A processor submits a run's job (:mod:`queue_processor.slurm`), commits its id, then hands the
job off: one transaction sets the attempt's ``handed_off_at`` (and, on the SQL queue, acks the
message; on a broker the ack follows the commit). The processor then takes its next message; the
job is this thread's. So one processor follows any number of jobs, holding neither a core nor a
message for them.

Every ``slurm_poll_s`` the follower:

1. **adopts orphans**: handed-off jobs whose processor stopped (its heartbeat row says so) or
   fell silent (no beat for :data:`~autoreduce.processors.SILENT_AFTER_BEATS` intervals). The
   attempt's ``processor`` (and the run's) changes in one conditional UPDATE, so two live
   processors never both adopt a job; the attempt and its job stay the same. A job whose
   follower died while recording its end (the attempt marked finished, the run still
   Processing) is adopted after :data:`FINISH_LEASE_S` and finished again;
2. reads its jobs and their runs (one query) and their states (one ``squeue``);
3. for a job still in Slurm: shows ``pending in Slurm as job N`` / ``running …`` on the run,
   ships the job's log as it grows (the job directory's ``reduction.log``), and ``scancel``s it
   once cancelling the run was asked;
4. for a job that ended: marks the attempt finished (conditional on this processor still
   following it, so an adopter and a slow follower never both move outputs), reads its verdict,
   collects its outputs and records the run exactly as the processor records a local reduction
   (:meth:`QueueProcessor.conclude`): Completed, Error, Cancelled, or a retry with more memory —
   whose message, the first having been acked at the hand-off, is queued again through the
   outbox in the same transaction.

A message delivered again after the hand-off (a broker's redelivery when the processor died
between the commit and its ack, a stuck-run sweep) is dropped by the claim: the job is followed.
Stopping the processor stops this thread; the jobs run on and a live processor adopts them at
once (a stopped heartbeat) or after the silence (a killed one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import or_, update

from autoreduce.db.models import ProcessorHeartbeat, ReductionRun, RunAttempt, RunStatus, utcnow
from autoreduce.failures import ErrorCategory
from autoreduce.jobs import drop_inputs, is_job
from autoreduce.paths import UnsafePathError
from autoreduce.processors import SILENT_AFTER_BEATS
from autoreduce.run_attempts import handed_off_attempts, update_attempt
from queue_processor.isolation import LOG_NAME, ReductionJob
from queue_processor.log_shipper import LogLimits, LogShipper
from queue_processor.record import work_dir_for
from queue_processor.slurm import OUT_DIR, JobState, SlurmError, cancel, job_state, job_states

if TYPE_CHECKING:
    from queue_processor.worker import QueueProcessor

logger = logging.getLogger("autoreduce.process")
FINISH_LEASE_S = 300.0  # a follower that began recording a job's end and is silent this long died


@dataclass(frozen=True)
class Job:
    """A followed attempt: its run, its Slurm job and what its run row says now."""

    run_id: int
    attempt: int
    job_id: str
    job_dir: Path
    memory_mb: int
    timeout_s: float
    cancel_asked: bool

    @property
    def key(self) -> tuple[int, int]:
        return (self.run_id, self.attempt)


@dataclass
class Following:
    """What the follower keeps in memory of one job: its log shipper, what it showed."""

    shipper: LogShipper
    shown: str = ""
    cancelled: bool = False


class SlurmFollower:
    def __init__(self, processor: QueueProcessor) -> None:
        self.processor = processor
        self.database = processor.database
        self.settings = processor.settings
        self.processor_id = processor.processor_id
        self._following: dict[tuple[int, int], Following] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="slurm-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Read the jobs now (a job was just handed off)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop following (the jobs run on: another processor adopts them)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        for following in self._following.values():
            following.shipper.stop()  # what was written so far is shipped
        self._following.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.follow_once()
            except Exception:  # a database or Slurm outage: the next pass tries again
                logger.exception("following Slurm jobs failed; trying again")
            self._wake.wait(self.settings.slurm_poll_s)
            self._wake.clear()

    def follow_once(self) -> int:
        """One pass: adopt orphans, read every followed job, finish those that ended.

        Returns how many jobs this processor follows after the pass."""
        self.adopt_orphans()
        jobs = self._jobs()
        listed = {job.key for job in jobs}
        for key in [key for key in self._following if key not in listed]:
            self._following.pop(key).shipper.finish()  # adopted by another: its lines are theirs
        try:
            states = job_states([job.job_id for job in jobs])
        except SlurmError as error:  # the controller restarting: the jobs are read next time
            logger.warning("cannot read the Slurm jobs' states: %s", error)
            return len(jobs)
        for job in jobs:
            if self._stop.is_set():
                break
            following = self._following.get(job.key) or self._start_following(job)
            state = states[job.job_id]
            if state.active:
                self._watch(job, state, following)
            else:
                self._finish(job, state, following)
        return len(self._following)

    def adopt_orphans(self) -> int:
        """Take over the handed-off jobs of stopped or silent processors; how many."""
        horizon = utcnow() - timedelta(
            seconds=SILENT_AFTER_BEATS * self.settings.heartbeat_interval_s
        )
        heartbeat = ProcessorHeartbeat.__table__.c
        lease = utcnow() - timedelta(seconds=FINISH_LEASE_S)
        with self.database.read_session() as session:
            orphans = session.execute(
                handed_off_attempts(RunAttempt.run_id, RunAttempt.attempt, RunAttempt.processor)
                .outerjoin(ProcessorHeartbeat, ProcessorHeartbeat.id == RunAttempt.processor)
                .where(
                    RunAttempt.processor != self.processor_id,
                    or_(RunAttempt.finished_at.is_(None), RunAttempt.finished_at < lease),
                    or_(
                        heartbeat.id.is_(None),
                        heartbeat.stopped_at.is_not(None),
                        heartbeat.last_seen_at < horizon,
                    ),
                )
            ).all()
        adopted = 0
        for run_id, attempt, old in orphans:
            with self.database.session() as session:
                moved = session.execute(
                    update(RunAttempt)
                    .where(
                        RunAttempt.run_id == run_id,
                        RunAttempt.attempt == attempt,
                        RunAttempt.processor == old,
                    )
                    .values(processor=self.processor_id, finished_at=None)
                ).rowcount  # type: ignore[attr-defined]
                if moved:
                    session.execute(
                        update(ReductionRun)
                        .where(ReductionRun.id == run_id, ReductionRun.attempts == attempt)
                        .values(processor=self.processor_id)
                    )
            if moved:
                adopted += 1
                logger.info(
                    "run id %s: following its Slurm job (attempt %s) after processor %s stopped",
                    run_id,
                    attempt,
                    old,
                )
        return adopted

    def _jobs(self) -> list[Job]:
        """The jobs this processor follows: of runs Processing on a handed-off attempt."""
        with self.database.read_session() as session:
            rows = session.execute(
                handed_off_attempts(
                    RunAttempt.run_id,
                    RunAttempt.attempt,
                    RunAttempt.slurm_job_id,
                    RunAttempt.job_dir,
                    RunAttempt.memory_mb,
                    RunAttempt.timeout_s,
                    ReductionRun.cancel_requested_at,
                )
                .where(RunAttempt.processor == self.processor_id, RunAttempt.finished_at.is_(None))
                .order_by(RunAttempt.run_id)
            ).all()
        return [
            Job(
                run_id=row.run_id,
                attempt=row.attempt,
                job_id=row.slurm_job_id,
                job_dir=Path(row.job_dir),
                memory_mb=row.memory_mb,
                timeout_s=row.timeout_s,
                cancel_asked=row.cancel_requested_at is not None,
            )
            for row in rows
        ]

    def _start_following(self, job: Job) -> Following:
        shipper = LogShipper(
            self.database,
            run_id=job.run_id,
            attempt=job.attempt,
            log_path=job.job_dir / OUT_DIR / LOG_NAME,
            limits=LogLimits.from_settings(self.settings),
            resume=True,  # adopted: what the earlier follower shipped is not shipped again
        )
        shipper.start()
        following = Following(shipper)
        self._following[job.key] = following
        return following

    def _watch(self, job: Job, state: JobState, following: Following) -> None:
        """A job still in Slurm: say where it is, and cancel it once that was asked."""
        if job.cancel_asked and not following.cancelled:
            logger.info("run id %s: cancelling its Slurm job %s", job.run_id, job.job_id)
            cancel(job.job_id)
            following.cancelled = True
        shown = "PENDING" if state.state in ("PENDING", "CONFIGURING", "REQUEUED") else "RUNNING"
        if shown != following.shown:
            following.shown = shown
            self.processor.executors.slurm.show(job.run_id, job.attempt, job.job_id, shown)

    def _finish(self, job: Job, state: JobState, following: Following) -> None:
        """The job ended: its verdict recorded as the run's, as for a local reduction."""

        self._following.pop(job.key, None)
        following.shipper.finish()  # the rest of its log goes into the record's transaction
        if not self._take_finish(job):
            return  # adopted by another processor meanwhile: theirs to finish
        try:
            self._record_end(job, state, following)
        except Exception:
            update_attempt(  # not finished after all: the next pass tries again
                self.database, run_id=job.run_id, attempt=job.attempt, finished_at=None
            )
            raise

    def _take_finish(self, job: Job) -> bool:
        """Mark the attempt finished if this processor still follows it (one conditional UPDATE)."""
        with self.database.session() as session:
            return bool(
                session.execute(
                    update(RunAttempt)
                    .where(
                        RunAttempt.run_id == job.run_id,
                        RunAttempt.attempt == job.attempt,
                        RunAttempt.processor == self.processor_id,
                        RunAttempt.finished_at.is_(None),
                    )
                    .values(finished_at=utcnow())
                ).rowcount  # type: ignore[attr-defined]
            )

    def _record_end(self, job: Job, state: JobState, following: Following) -> None:
        from queue_processor.worker import InHand, _run_info  # the worker imports this module

        processor = self.processor
        with self.database.read_session() as session:
            run = session.get(ReductionRun, job.run_id)
            if run is None:
                return
            session.expunge(run)
        hand = InHand(shipper=following.shipper)
        config = processor._config_of(run)
        if config is None:
            reason = f"instrument {run.instrument} is not configured on {self.processor_id}"
            processor._finish_early(
                run, job.attempt, RunStatus.ERROR, reason, ErrorCategory.INFRASTRUCTURE, hand=hand
            )
            return
        try:
            output_dir = processor.output_dir(run)
            work_dir = work_dir_for(output_dir, self.settings.outputs_root)
        except UnsafePathError as error:
            processor._finish_early(
                run, job.attempt, RunStatus.ERROR, str(error), ErrorCategory.DATA, hand=hand
            )
            return
        reduction = ReductionJob(
            plugin=config.plugin,
            run=_run_info(run),
            variables=dict(run.variables or {}),
            work_dir=work_dir,
            timeout_s=job.timeout_s,
            memory_mb=job.memory_mb,
            run_id=run.id,
        )
        slurm = processor.executors.slurm
        if state.state not in ("COMPLETED", "OUT_OF_MEMORY", "TIMEOUT", "CANCELLED"):
            with contextlib.suppress(SlurmError):  # scontrol knows the exit code squeue hides
                state = job_state(job.job_id)
        outcome = slurm.verdict(job.job_id, job.job_dir, reduction, state)
        slurm.collect(job.job_dir, work_dir)
        update_attempt(self.database, run_id=run.id, attempt=job.attempt, slurm_state=state.state)
        processor.executors.finish(run.id, job.attempt, outcome)
        verdict = processor.conclude(
            run, job.attempt, reduction, output_dir, outcome, config.plugin, hand
        )
        processor.announce(run, job.attempt, verdict)
        if is_job(run):  # its uploads, staged for the job
            drop_inputs(self.settings, run)

    @property
    def following(self) -> int:
        return len(self._following)
