"""The queue processor: claim, isolate, record, acknowledge — one message at a time.

The message is acked only after the result is committed. A processor killed mid-run leaves its
message unacked; the broker delivers it again and the run is taken over (attempt + 1) until
``max_attempts``, then marked Error and dead-lettered.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from autoreduce.archive import DataFileError, checked_data_file
from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunStatus, utcnow
from autoreduce.failures import ErrorCategory, classify
from autoreduce.jobs import JobInputError, drop_inputs, is_job, job_output_dir, run_config
from autoreduce.jobs import stage_inputs as stage_job_inputs
from autoreduce.logs import run_fields
from autoreduce.messages import PENDING_QUEUE, InvalidMessage, parse_run_message
from autoreduce.outbox import outbox_message
from autoreduce.paths import UnsafePathError
from autoreduce.plugin import ReductionResult, RunInfo
from autoreduce.plugin_approvals import PluginGate
from autoreduce.plugin_manager import Plugins, installed_plugins
from autoreduce.provenance import ProcessorProvenance
from autoreduce.run_events import NS_PER_S, final_action, log_run_event, nanoseconds_between
from autoreduce.settings import InstrumentConfig, Settings
from autoreduce.storage import StoreError, open_store
from autoreduce.transport import Delivery, Transport, open_transport
from queue_processor.approval import hold_unapproved
from queue_processor.cancel import CancelRequest, cancel_request
from queue_processor.claim import Claim, Decision, claim_run
from queue_processor.executors import Executors
from queue_processor.heartbeat import Heartbeat
from queue_processor.isolation import LOG_NAME, Outcome, ReductionJob, ReductionLauncher
from queue_processor.log_shipper import LogLimits, LogShipper
from queue_processor.pipeline_runner import run_pipeline
from queue_processor.publish import publish_outputs
from queue_processor.record import (
    Also,
    hand_off,
    move_into_place,
    record_cancelled,
    record_outcome,
    record_without_reduction,
    refused_output,
    release_run,
    requeue_for_retry,
    work_dir_for,
)
from queue_processor.slurm import PENDING_MESSAGE, Submitted
from queue_processor.slurm_follower import SlurmFollower
from queue_processor.triage import outcome_failure, run_provenance

logger = logging.getLogger("autoreduce.process")
RECEIVE_WAIT_S = 1.0
ERROR_BACKOFF_S = 1.0


class Settle(enum.Enum):
    """What becomes of a run's message once the processor is done with it."""

    ACK = "ack"  # the run reached a final state
    DEAD_LETTER = "dead-letter"  # final, but out of attempts: the message goes to the DLQ
    RETRY = "retry"  # the reduction process crashed: the run waits for another attempt
    RELEASE = "release"  # the processor is stopping: the run goes back untouched

    def describe(self, status: RunStatus) -> str:
        return {
            Settle.RETRY: "crashed; queued for another attempt",
            Settle.RELEASE: "released on shutdown",
        }.get(self, str(status))


@dataclass
class InHand:
    """A run being finished: its delivery (None for a Slurm job the follower followed: its
    message was acked at the hand-off), its log shipper, and whether its record acked it."""

    delivery: Delivery | None = None
    shipper: LogShipper | None = None
    acked: bool = False


@dataclass
class Verdict:
    status: RunStatus
    settle: Settle
    reason: str = ""
    outcome: Outcome | None = None


def new_processor_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class QueueProcessor:
    """One consumer of the pending queue; run several for more throughput."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        transport: Transport | None = None,
        plugins: Plugins | None = None,
        processor_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.processor_id = processor_id or new_processor_id()
        self.database = database or Database(
            settings.resolved_database_url, max_outage_s=settings.database_outage_s
        )
        self.transport = transport or open_transport(settings, consumer=self.processor_id)
        self.plugins = plugins or installed_plugins()
        self.plugin_gate = PluginGate(
            self.plugins, {name: config.plugin for name, config in settings.instruments.items()}
        )
        self.heartbeat = Heartbeat(
            self.database, self.transport, self.processor_id, settings.heartbeat_interval_s
        )
        self.launcher = ReductionLauncher(self.plugins, fork_servers=True)
        # executor hook (slurm): local child or Slurm job, attempts and resources recorded
        self.executors = Executors(settings, self.database, self.launcher, self.processor_id)
        self.store = open_store(settings)  # None: outputs stay in the outputs directory
        self.provenance = ProcessorProvenance(self.processor_id)  # once: reads every package
        self._stop = threading.Event()
        self._stop_seen_at: float | None = None
        self._hand = InHand()  # the run in hand on the consuming thread
        # Slurm jobs handed off by this processor (and adopted from stopped ones) are followed
        # on a thread of their own: following holds no core and no message
        self.follower = SlurmFollower(self)

    def stop(self) -> None:
        """Ask the loop to finish: the run in hand gets ``shutdown_grace_s``, then is released."""
        self._stop.set()

    @property
    def follows_slurm(self) -> bool:
        """True if an instrument here, or ``[jobs]``, reduces on Slurm (then its processors
        follow Slurm jobs, and adopt those of processors that stopped)."""
        executors = [config.executor for config in self.settings.instruments.values()]
        return "slurm" in [*executors, self.settings.jobs.executor]

    def serve(self) -> None:
        """Consume until :meth:`stop` is called."""
        self.database.upgrade()
        if self.store is not None:
            try:
                self.store.ensure_bucket()
            except StoreError as error:  # then each publication fails and its run is retried
                logger.error("the object store is not ready: %s", error)
        for plugin in sorted(
            {config.plugin for config in self.settings.instruments.values() if config.plugin}
        ):
            try:  # its fork server imports it; the processor itself imports no plugin's stack
                self.launcher.start(plugin)
            except Exception:  # a broken plugin fails its own runs, not the processor
                logger.exception("getting plugin %s ready failed; its runs will say why", plugin)
        self.heartbeat.start()
        if self.follows_slurm:
            self.follower.start()
        logger.info("processor %s consuming %s", self.processor_id, PENDING_QUEUE)
        try:
            while not self._stop.is_set():
                if self.heartbeat.draining:
                    self._idle_while_drained()
                    continue
                if not self.process_next(RECEIVE_WAIT_S):
                    self.launcher.release_ready()  # idle: no ready child kept (docs/memory.md)
        finally:
            self.follower.stop()  # its jobs run on; another processor adopts them
            self.launcher.close()
            self.heartbeat.stop()
            self.transport.close()
            logger.info("processor %s stopped", self.processor_id)

    def process_next(self, wait_s: float) -> bool:
        """Receive and handle one message; False if none came within ``wait_s``."""
        try:
            delivery = self.transport.receive(PENDING_QUEUE, timeout_s=wait_s)
        except Exception as error:
            logger.error("receive failed: %s: %s", type(error).__name__, error)
            self._stop.wait(ERROR_BACKOFF_S)
            return False
        if delivery is None:
            return False
        try:
            self.handle(delivery)
        except Exception:
            # The run stays as the database has it; the message goes back to be retried.
            logger.exception("handling a delivery failed; it will be delivered again")
            try:
                self.transport.release(delivery, delay_s=ERROR_BACKOFF_S)
            except Exception as error:  # then the broker's own redelivery brings it back
                logger.warning("could not release the delivery: %s", error)
            self._stop.wait(ERROR_BACKOFF_S)
        return True

    def _idle_while_drained(self) -> None:
        """Drained: no run in hand, none taken; idle (heartbeat on) until resumed or stopped.

        The processor stays up rather than exiting, so a supervisor that restarts whatever
        exits (``autoreduce up``, systemd's ``Restart=always``) does not undo the drain.
        """
        logger.info("processor %s drained: idle until resumed or stopped", self.processor_id)
        try:
            self.heartbeat.mark_drained()
        except Exception as error:
            logger.warning("cannot record the drained state: %s: %s", type(error).__name__, error)
        while self.heartbeat.draining and not self._stop.is_set():
            self._stop.wait(min(RECEIVE_WAIT_S, self.settings.heartbeat_interval_s))
        if not self._stop.is_set():
            logger.info("processor %s resumed: taking runs again", self.processor_id)

    def handle(self, delivery: Delivery) -> None:
        try:
            message = parse_run_message(delivery.body)
        except InvalidMessage as error:
            logger.error("dead-lettering a message: %s", error.reason)
            self.transport.dead_letter(delivery, error.reason)
            return
        claim = claim_run(  # the drain request and the plugin's approval are read in it
            self.database,
            message,
            processor=self.processor_id,
            max_attempts=self.settings.max_attempts,
            gate=self.plugin_gate,
            check_drain=True,
        )
        if claim.decision is Decision.DRAINED:
            logger.info("drain requested: the delivery goes back to the queue untouched")
            self.heartbeat.note_drain_requested()
            try:
                self.transport.release(delivery)
            except Exception as error:  # then the broker's own redelivery brings it back
                logger.warning("could not release the delivery: %s", error)
            return
        if claim.decision is Decision.HOLD:
            if held := hold_unapproved(self.database, self.plugin_gate, message):
                logger.warning("run id %s %s; message back in the outbox", message.run_id, held)
                self.transport.ack(delivery)
                return
            claim = claim_run(  # approved or changed in between: decide again
                self.database,
                message,
                processor=self.processor_id,
                max_attempts=self.settings.max_attempts,
            )
        if claim.decision is Decision.GIVE_UP:
            log_run_event("run.error", message, message=claim.reason, error__category="crash")
        if claim.decision is Decision.DROP:
            logger.info("run id %s: %s; message acked", message.run_id, claim.reason)
            self.transport.ack(delivery)
        elif claim.decision in (Decision.MISSING, Decision.GIVE_UP):
            logger.error("run id %s: %s; message dead-lettered", message.run_id, claim.reason)
            self.transport.dead_letter(delivery, claim.reason)
        else:
            self._reduce(claim, delivery)

    def _reduce(self, claim: Claim, delivery: Delivery) -> None:
        run = claim.run
        assert run is not None
        started = utcnow()
        log_run_event(
            "run.started",
            run,
            attempt=claim.attempt,
            processor=self.processor_id,
            queue_wait_ns=nanoseconds_between(run.queued_at, started),
        )
        self.heartbeat.holding(run.id, delivery)
        self._hand = hand = InHand(delivery)
        try:
            verdict = self._reduce_held(run, claim.attempt)
            if verdict.settle is Settle.RELEASE:
                release_run(
                    self.database,
                    run_id=run.id,
                    attempt=claim.attempt,
                    also=self._also(hand, ack=False),
                )
        finally:
            self.heartbeat.holding(None)
            self._hand = InHand()
        if verdict.settle is Settle.RELEASE:
            self.transport.release(delivery)
        elif verdict.settle is Settle.RETRY:
            self.transport.release(delivery, delay_s=self.settings.retry_delay_s)
        elif verdict.settle is Settle.DEAD_LETTER:
            self.transport.dead_letter(delivery, verdict.reason)
        elif not hand.acked:  # on the SQL queue the record's transaction acked it
            self.transport.ack(delivery)
        self.announce(run, claim.attempt, verdict)

    def announce(self, run: ReductionRun, attempt: int, verdict: Verdict) -> None:
        """Log how the attempt ended, write its run event and tell the plugin a final state."""
        if verdict.status is RunStatus.PROCESSING:  # handed to the Slurm follower
            logger.info("%s: %s (attempt %s)", _label(run), verdict.reason, attempt)
            return
        logger.info(
            "%s: %s%s (attempt %s, %.2f s)",
            _label(run),
            verdict.settle.describe(verdict.status),
            f" — {verdict.reason}" if verdict.reason else "",
            attempt,
            verdict.outcome.wall_s if verdict.outcome else 0.0,
            extra=run_fields(run),
        )
        self._log_event(run, attempt, verdict)
        if verdict.status.is_final:
            self._notify(run, verdict.status, verdict.outcome)

    def _log_event(self, run: ReductionRun, attempt: int, verdict: Verdict) -> None:
        """The run event of how this attempt ended (final, or back in the queue)."""
        reduction_ns = (
            int(verdict.outcome.wall_s * NS_PER_S) if verdict.outcome is not None else None
        )
        if not verdict.status.is_final:
            log_run_event("run.requeued", run, attempt=attempt, reason=verdict.reason or "released")
            return
        outcome = verdict.outcome
        category = (outcome.category or "plugin") if outcome and not outcome.ok else None
        log_run_event(
            final_action(verdict.status.value),
            run,
            duration_ns=reduction_ns,
            attempt=attempt,
            processor=self.processor_id,
            reason=verdict.reason or None,
            reduction_ns=reduction_ns,
            detection_to_final_ns=nanoseconds_between(run.detected_at or run.queued_at, utcnow()),
            error__category=category,
        )

    def _reduce_held(self, run: ReductionRun, attempt: int) -> Verdict:
        """Reduce a run this processor holds; how it ended and what to do with its message."""
        config = self._config_of(run)
        if config is None:
            reason = (
                f"instrument {run.instrument} is not configured on processor {self.processor_id}"
            )
            return self._finish_early(
                run, attempt, RunStatus.ERROR, reason, ErrorCategory.INFRASTRUCTURE
            )
        handed_off = False
        try:
            verdict = self._reduce_configured(run, attempt, config)
            handed_off = verdict.status is RunStatus.PROCESSING  # the follower drops them
            return verdict
        finally:
            if is_job(run) and not handed_off:
                drop_inputs(self.settings, run)

    def _config_of(self, run: ReductionRun) -> InstrumentConfig | None:
        """The instrument's configuration; a job's plugin and limits (autoreduce.jobs)."""
        return run_config(self.settings, self.database, run)

    def _reduce_configured(
        self, run: ReductionRun, attempt: int, config: InstrumentConfig
    ) -> Verdict:
        plugin = config.plugin
        info = _run_info(run)
        try:
            skip_reason = self.plugins.skip_reason(info, plugin=config.plugin)
        except Exception as error:
            skip_reason = None
            logger.exception("a skip_run hook raised %s; the run goes on", error)
        if skip_reason:
            return self._finish_early(run, attempt, RunStatus.SKIPPED, skip_reason, plugin=plugin)
        try:  # checked again here: the archive may have changed since the run was recorded
            if is_job(run):  # a job's uploads, copied here from the store
                staged = stage_job_inputs(self.settings, self.store, self.database, run)
                info = dataclasses.replace(info, data_path=staged)
            else:
                checked_data_file(self.settings, run.data_path)
        except (DataFileError, JobInputError) as error:
            return self._finish_early(
                run, attempt, RunStatus.ERROR, str(error), ErrorCategory.DATA, plugin
            )
        outputs_root = self.settings.outputs_root
        try:  # values from the data file: nothing is created or removed until they are checked
            output_dir = self.output_dir(run)
        except UnsafePathError as error:
            return self._finish_early(
                run, attempt, RunStatus.ERROR, str(error), ErrorCategory.DATA, plugin
            )
        try:  # the outputs storage itself: a directory that is not what it should be
            work_dir = work_dir_for(output_dir, outputs_root)
        except UnsafePathError as error:
            return self._finish_early(
                run, attempt, RunStatus.ERROR, str(error), ErrorCategory.INFRASTRUCTURE, plugin
            )
        job = ReductionJob(
            plugin=plugin,
            run=info,
            variables=dict(run.variables or {}),
            work_dir=work_dir,
            timeout_s=config.timeout_s,
            memory_mb=self.executors.memory_mb(run, config),  # executor hook (slurm)
            run_id=run.id,
        )
        shipper = LogShipper(
            self.database,
            run_id=run.id,
            attempt=attempt,
            log_path=job.work_dir / LOG_NAME,
            limits=LogLimits.from_settings(self.settings),
        )
        shipper.start()
        self._hand.shipper = shipper  # its last lines go into the final state's transaction
        outcome: Outcome | Submitted
        try:
            if config.pipeline:  # PIPELINE SEAM: its steps run as a DAG (pipeline_runner.py)
                outcome = run_pipeline(
                    self.database, self.plugins, self.settings, run, job,
                    stop_reason=lambda: self._stop_reason(run.id), name=config.pipeline,
                )  # fmt: skip
            else:  # executor hook (slurm): local or Slurm, with the attempt's resources
                outcome = self.executors.run(
                    run, attempt, job, config, stop_reason=lambda: self._stop_reason(run.id)
                )
        finally:
            shipper.finish()
        if isinstance(outcome, Submitted):  # its verdict is the follower's to read
            return self._hand_off(run, attempt, job, outcome)
        return self.conclude(run, attempt, job, output_dir, outcome, plugin, self._hand)

    def output_dir(self, run: ReductionRun) -> Path:
        """The run's output directory (values from the data file checked: UnsafePathError)."""
        if is_job(run):
            return job_output_dir(self.settings, run)
        return self.settings.output_dir(
            run.instrument, run.run_number, run.run_version, run.experiment_ref
        )

    def _hand_off(
        self, run: ReductionRun, attempt: int, job: ReductionJob, submitted: Submitted
    ) -> Verdict:
        """Commit that the follower follows the job (acking the message with it), and go on."""
        shutil.rmtree(job.work_dir, ignore_errors=True)  # the job writes in its own directory
        reason = f"followed in Slurm as job {submitted.job_id}"
        if not hand_off(
            self.database,
            run_id=run.id,
            attempt=attempt,
            message=PENDING_MESSAGE.format(submitted.job_id),
            also=self._also(self._hand, ack=True),
        ):
            reason = "another processor took the run over; its job is theirs"
        self.follower.wake()
        return Verdict(RunStatus.PROCESSING, Settle.ACK, reason)

    def conclude(
        self,
        run: ReductionRun,
        attempt: int,
        job: ReductionJob,
        output_dir: Path,
        outcome: Outcome,
        plugin: str,
        hand: InHand,
    ) -> Verdict:
        """Put the attempt's outputs in place and record how it ended (or retry it)."""
        outputs_root = self.settings.outputs_root
        if (request := cancel_request(self.database, run.id)) is not None:
            shutil.rmtree(job.work_dir, ignore_errors=True)  # partial outputs never move in
            return self._cancelled(run, attempt, request, outcome, hand)
        if self._stop.is_set() and outcome.reason.startswith("abandoned"):
            shutil.rmtree(job.work_dir, ignore_errors=True)
            return Verdict(RunStatus.QUEUED, Settle.RELEASE, outcome.reason, outcome)
        try:  # the plugin ran in between: checked again before anything is moved
            move_into_place(job.work_dir, output_dir, outputs_root)  # a crash's log is worth it
        except UnsafePathError as error:
            logger.error("%s: outputs left in %s: %s", _label(run), job.work_dir, error)
            # the plugin ran in between and a directory is no longer itself: the plugin's doing
            return self._finish_early(
                run, attempt, RunStatus.ERROR, str(error), ErrorCategory.PLUGIN, plugin, hand
            )
        if outcome.ok and (refused := refused_output(output_dir, outcome)):
            outcome.ok, outcome.reason, outcome.files, outcome.plots = False, refused, [], []
            outcome.category = ErrorCategory.PLUGIN.value
        return self._record(run, attempt, output_dir, outcome, plugin, hand)

    def _record(
        self,
        run: ReductionRun,
        attempt: int,
        output_dir: Path,
        outcome: Outcome,
        plugin: str,
        hand: InHand,
    ) -> Verdict:
        settle = Settle.ACK
        # executor hook (slurm): retried with more memory, or later after a full disk
        retry = self.executors.retry(
            run, attempt, outcome, plugin, also=self._also(hand, ack=False, requeued=run)
        )
        if retry is not None:
            return Verdict(RunStatus.QUEUED, Settle.RETRY, retry, outcome)
        stored_at = None
        if self.store is not None and not outcome.retryable:  # storage = "s3://…"
            stored_at = publish_outputs(self.store, run, attempt, output_dir, outcome)
            if stored_at is None:  # not published: nothing of it may be recorded or served
                shutil.rmtree(output_dir, ignore_errors=True)
        failure = None if outcome.ok else outcome_failure(outcome, plugin)
        if outcome.retryable:
            assert failure is not None
            if attempt < self.settings.max_attempts:
                requeue_for_retry(
                    self.database,
                    run_id=run.id,
                    attempt=attempt,
                    reason=outcome.reason,
                    failure=failure,
                    also=self._also(hand, ack=False, requeued=run),
                )
                return Verdict(RunStatus.QUEUED, Settle.RETRY, outcome.reason, outcome)
            outcome.reason = f"gave up after {attempt} attempts: {outcome.reason}"
            settle = Settle.DEAD_LETTER
        provenance = run_provenance(self.database, run, self.provenance, plugin, outcome.data_file)
        if not record_outcome(
            self.database,
            run_id=run.id,
            attempt=attempt,
            output_dir=output_dir,
            outcome=outcome,
            failure=failure,
            provenance=provenance,
            stored_at=stored_at,
            also=self._also(hand, ack=settle is Settle.ACK),
        ):
            logger.warning(
                "%s: another processor took the run over; result discarded",
                _label(run),
                extra=run_fields(run),
            )
        if self.store is not None:  # the store has them (or the run failed): no local copy
            shutil.rmtree(output_dir, ignore_errors=True)
        status = RunStatus.COMPLETED if outcome.ok else RunStatus.ERROR
        return Verdict(status, settle, outcome.reason, outcome)

    def _cancelled(
        self,
        run: ReductionRun,
        attempt: int,
        request: CancelRequest,
        outcome: Outcome,
        hand: InHand,
    ) -> Verdict:
        if not record_cancelled(
            self.database,
            run_id=run.id,
            attempt=attempt,
            message=request.message,
            also=self._also(hand, ack=True),
        ):
            logger.warning("%s: another processor took the run over; not cancelled", _label(run))
        return Verdict(RunStatus.CANCELLED, Settle.ACK, request.message, outcome)

    def _finish_early(
        self,
        run: ReductionRun,
        attempt: int,
        status: RunStatus,
        reason: str,
        category: ErrorCategory | None = None,
        plugin: str = "",
        hand: InHand | None = None,
    ) -> Verdict:
        """Record a run that is not reduced: Skipped, or Error in ``category``."""
        failure = classify(category, reason, plugin=plugin) if category is not None else None
        provenance = run_provenance(self.database, run, self.provenance, plugin) if plugin else None
        record_without_reduction(
            self.database,
            run_id=run.id,
            attempt=attempt,
            status=status,
            reason=reason,
            failure=failure,
            provenance=provenance,
            also=self._also(hand or self._hand, ack=True),
        )
        return Verdict(status, Settle.ACK, reason)

    def _also(self, hand: InHand, *, ack: bool, requeued: ReductionRun | None = None) -> Also:
        """What the run's record transaction does besides: ship the log's last lines (if the
        attempt still held the run); with ``ack`` on the SQL queue, ack the message; and for a
        run ``requeued`` whose message was acked at its hand-off, queue a new one (outbox)."""

        def also(session: Session, moved: bool) -> None:
            if moved and hand.shipper is not None:
                hand.shipper.write_rest(session)
            if ack and hand.delivery is not None:
                acked = self.transport.ack_within(session, hand.delivery, self.database.url)
                hand.acked = acked is not None
            if requeued is not None and moved and hand.delivery is None:
                session.add(outbox_message(requeued))

        return also

    def _stop_reason(self, run_id: int) -> str:
        """Why the reduction of run ``run_id`` must stop now, or "" (asked every 50 ms)."""
        if self.heartbeat.cancel_requested(run_id):
            return "cancelled on request"
        if self._grace_over():
            return "abandoned: the processor is shutting down"
        return ""

    def _grace_over(self) -> bool:
        if not self._stop.is_set():
            return False
        now = time.monotonic()
        if self._stop_seen_at is None:
            self._stop_seen_at = now
            logger.info(
                "stopping: the run in hand has %.0f s to finish", self.settings.shutdown_grace_s
            )
        return now - self._stop_seen_at >= self.settings.shutdown_grace_s

    def _notify(self, run: ReductionRun, status: RunStatus, outcome: Outcome | None) -> None:
        result = None
        if outcome and outcome.ok:
            result = ReductionResult(
                files=[Path(name) for name in outcome.files],
                plots=[Path(name) for name in outcome.plots],
                summary=outcome.summary,
            )
        config = self._config_of(run)  # a job's plugin too
        try:
            self.plugins.run_finished(
                _run_info(run), str(status), result, plugin=config.plugin if config else None
            )
        except Exception:
            logger.exception("a run_finished hook raised; ignored")


def _run_info(run: ReductionRun) -> RunInfo:
    return RunInfo(
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        experiment_ref=run.experiment_ref,
        data_path=Path(run.data_path),
        title=run.title,
    )


def _label(run: ReductionRun) -> str:
    return f"{run.instrument} {run.run_number} v{run.run_version}"
