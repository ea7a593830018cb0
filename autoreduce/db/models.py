"""The database schema: instruments, run versions, outputs, log lines, outbox, queue, tokens,
heartbeats, local user accounts.

Every timestamp is stored as naive UTC with microseconds and read back as an aware UTC datetime.
The schema is created by the Alembic migrations in ``autoreduce/db/migrations``, never by
``create_all``: a test that needs tables runs the migrations like a deployment would.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as naive UTC (microsecond precision on MySQL too)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class RunStatus(enum.StrEnum):
    """The states of one run version (DESIGN §4): Queued → Processing → a final state."""

    QUEUED = "Queued"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"  # stopped on request; its message says who cancelled it and why

    @property
    def is_final(self) -> bool:
        return self in (
            RunStatus.COMPLETED,
            RunStatus.ERROR,
            RunStatus.SKIPPED,
            RunStatus.CANCELLED,
        )


class Base(DeclarativeBase):
    pass


class Instrument(Base):
    __tablename__ = "instruments"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class ReductionRun(Base):
    """One version of one run: version 0 is the detected run, each re-run adds one."""

    __tablename__ = "reduction_runs"
    __table_args__ = (
        UniqueConstraint("instrument", "run_number", "run_version", name="uq_run_version"),
        # run lists, newest first (by id) under each filter (migration 0021)
        Index("ix_runs_instrument_id", "instrument", "id"),
        Index("ix_runs_status_id", "status", "id"),
        Index("ix_runs_instrument_status_id", "instrument", "status", "id"),
        Index("ix_runs_experiment_queued", "experiment_ref", "queued_at"),  # experiments, search
        Index("ix_runs_queued_at", "queued_at"),  # search's date: term, since / until
        Index("ix_runs_status_finished", "status", "finished_at", "error_fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instrument: Mapped[str] = mapped_column(
        String(32), ForeignKey("instruments.name"), nullable=False
    )
    run_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    run_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RunStatus.QUEUED)
    message: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    experiment_ref: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    title: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    data_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    reason: Mapped[str] = mapped_column(String(32), nullable=False, default="detected")
    description: Mapped[str] = mapped_column(
        String(500), nullable=False, default="", server_default=""
    )  # why this version was made, in its submitter's words (a re-run's ``reason``)
    submitted_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    summary: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    output_dir: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processor: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    detected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A request to cancel this version: set while it is Processing, its processor stops it.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_requested_by: Mapped[str] = mapped_column(
        String(100), nullable=False, default="", server_default=""
    )
    cancel_reason: Mapped[str] = mapped_column(
        String(500), nullable=False, default="", server_default=""
    )
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # autoreduce.provenance
    error_category: Mapped[str] = mapped_column(
        String(16), nullable=False, default="", server_default=""
    )  # an autoreduce.failures.ErrorCategory for a run in Error, else empty
    error_fingerprint: Mapped[str] = mapped_column(
        String(12), nullable=False, default="", server_default=""
    )  # the failure's cause hashed: identical failures share it
    error_signature: Mapped[str] = mapped_column(
        String(300), nullable=False, default="", server_default=""
    )  # the failure's cause as a short text to show
    variable_sources: Mapped[dict[str, str] | None] = mapped_column(
        JSON
    )  # where each of ``variables`` came from (:mod:`autoreduce.variable_rules`); NULL before 0008
    derived_from_version: Mapped[int | None] = mapped_column(
        Integer
    )  # the version a re-run was made from; NULL for a detected run
    memory_mb: Mapped[int | None] = mapped_column(
        Integer
    )  # memory of this version's next attempt when a retry raised it (0019); NULL: the instrument's
    from_step: Mapped[str] = mapped_column(
        String(48), nullable=False, default="", server_default=""
    )  # a pipeline re-run starts at this step, reusing the others' outputs of its base version

    outputs: Mapped[list[RunOutput]] = relationship(
        back_populates="run", order_by="RunOutput.id", cascade="all, delete-orphan"
    )


class RunStep(Base):
    """One step of a pipeline run version: its state, timings, resources and log."""

    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_run_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("reduction_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step: Mapped[str] = mapped_column(String(48), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # file order
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=RunStatus.QUEUED)
    message: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    plugin: Mapped[str] = mapped_column(String(100), nullable=False, default="")  # or "command"
    rely: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    cpus: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    timeout_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    executor: Mapped[str] = mapped_column(String(16), nullable=False, default="local")
    peak_rss_mb: Mapped[float | None] = mapped_column(Float)
    wall_s: Mapped[float | None] = mapped_column(Float)
    log_path: Mapped[str] = mapped_column(String(300), nullable=False, default="")  # relative
    reused_from_version: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RunCount(Base):
    """How many versions ``instrument`` has in ``status``: kept by database triggers on
    ``reduction_runs`` (migration 0021) in the transaction that changes them; never written here."""

    __tablename__ = "run_counts"

    instrument: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RunOutput(Base):
    """A file a reduction produced: reduced data, a plot or the reduction's log."""

    __tablename__ = "run_outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("reduction_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # data | plot | log
    name: Mapped[str] = mapped_column(String(255), nullable=False)  # relative to output_dir
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

    run: Mapped[ReductionRun] = relationship(back_populates="outputs")


class Upload(Base):
    """A file put in the store by ``POST /api/v1/uploads``, to be reduced by a job."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex
    filename: Mapped[str] = mapped_column(String(255), nullable=False)  # as sent (display only)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    location: Mapped[str] = mapped_column(String(1024), nullable=False)  # s3:// URL or file path
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    # when retention removed its file or object (autoreduce.retention); the row stays as a record
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Job(Base):
    """A reduction of uploads: run ``id`` of the ``JOB`` pseudo-instrument (autoreduce.jobs)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin: Mapped[str] = mapped_column(String(100), nullable=False)  # '' if it names a pipeline
    pipeline: Mapped[str] = mapped_column(
        String(100), nullable=False, default="", server_default=""
    )  # '' if it names a plugin
    inputs: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)  # upload ids
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class RunLogLine(Base):
    """One line of a reduction's log, shipped by its processor while the run goes on.

    ``seq`` counts from 1 per run version, across its attempts, so a follower that reconnects
    resumes after the last line it saw. A version keeps at most ``max_log_lines`` lines and
    ``max_log_bytes`` of text; past that one marker line says the full log is in reduction.log.
    """

    __tablename__ = "run_log_lines"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_log_line"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("reduction_runs.id", ondelete="CASCADE"), nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    logged_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)


class VariableRule(Base):
    """Values for new runs of one instrument: for every run of an experiment, or from a run on.

    Exactly one of ``experiment_ref`` and ``from_run`` is set. A deleted rule keeps its row
    (``deleted_at``, ``deleted_by``), so the sources recorded on runs ("rule #4") stay readable.
    """

    __tablename__ = "variable_rules"
    __table_args__ = (Index("ix_variable_rules_instrument", "instrument", "deleted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    experiment_ref: Mapped[str | None] = mapped_column(String(64))
    from_run: Mapped[int | None] = mapped_column(BigInteger)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    deleted_by: Mapped[str | None] = mapped_column(String(100))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RerunBatch(Base):
    """One batch re-run: who asked, when, why, from which base, changing what."""

    __tablename__ = "rerun_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    submitted_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    base: Mapped[str] = mapped_column(String(32), nullable=False)  # latest | current | version N
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    supersede: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    runs: Mapped[list[RerunBatchRun]] = relationship(
        back_populates="batch", order_by="RerunBatchRun.id", cascade="all, delete-orphan"
    )


class RerunBatchRun(Base):
    """One run of a batch: the version the batch made, or why it refused the run."""

    __tablename__ = "rerun_batch_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("rerun_batches.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("reduction_runs.id", ondelete="CASCADE"))
    refused: Mapped[str] = mapped_column(String(500), nullable=False, default="")

    batch: Mapped[RerunBatch] = relationship(back_populates="runs")
    run: Mapped[ReductionRun | None] = relationship()


class OutboxMessage(Base):
    """A message recorded with its run in one transaction; the relay publishes it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    queue: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(LongText, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # set when a processor handed the message back because its own installed version of the
    # plugin is not approved: the relay sends it again once that version is approved
    held_plugin: Mapped[str | None] = mapped_column(String(100))
    held_distribution: Mapped[str | None] = mapped_column(String(200))
    held_version: Mapped[str | None] = mapped_column(String(64))


class PluginApproval(Base):
    """An admin's verdict on one plugin at one version of its distribution.

    A plugin installed at a version with no row here is pending; the history of verdicts is
    in the audit trail.
    """

    __tablename__ = "plugin_approvals"
    __table_args__ = (
        UniqueConstraint("plugin", "distribution", "version", name="uq_plugin_approvals_release"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin: Mapped[str] = mapped_column(String(100), nullable=False)
    distribution: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # approved | revoked
    decided_by: Mapped[str] = mapped_column(String(100), nullable=False)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class QueueMessage(Base):
    """The embedded broker: one row a message until it is acknowledged."""

    __tablename__ = "queue_messages"
    __table_args__ = (Index("ix_queue_claim", "queue", "visible_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(LongText, nullable=False)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    visible_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    deliveries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str] = mapped_column(String(200), nullable=False, default="")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    instruments: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OAuthClient(Base):
    """A machine client (OAuth2 client credentials); only the SHA-256 of its secret is stored."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        UniqueConstraint("client_id", name="uq_oauth_clients_client_id"),
        UniqueConstraint("name", name="uq_oauth_clients_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    instruments: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ProcessorHeartbeat(Base):
    """A queue processor's last sign of life and what it is doing."""

    __tablename__ = "processor_heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    current_run_id: Mapped[int | None] = mapped_column(Integer)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # ``autoreduce processors drain ID``: finish the run in hand, then take no new ones (idle)
    drain_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    drain_requested_by: Mapped[str] = mapped_column(
        String(100), nullable=False, default="", server_default=""
    )
    drained_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime
    )  # when the processor, drained, went idle with no run in hand


class AuditEvent(Base):
    """One write: who (token or client name, role, address), what, when (DESIGN: audit trail)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_action_at", "action", "at"),
        Index("ix_audit_instrument_at", "instrument", "at"),
        Index("ix_audit_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    address: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    instrument: Mapped[str | None] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class HiddenFailure(Base):
    """A run version in Error that an admin marked as dealt with: the failed-runs page hides it.

    Keyed by the version's row, so a later version that fails again is shown again.
    """

    __tablename__ = "hidden_failures"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("reduction_runs.id", ondelete="CASCADE"), primary_key=True
    )
    hidden_by: Mapped[str] = mapped_column(String(100), nullable=False)
    hidden_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    note: Mapped[str] = mapped_column(String(500), nullable=False, default="")


class Alert(Base):
    """One alert: fired when its rule's condition began, resolved when it ended.

    ``active_key`` holds ``key`` while the alert fires and is NULL once resolved; being unique, it
    keeps one firing alert per condition even with two evaluators (NULLs never collide).
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_key_fired", "key", "fired_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), nullable=False)  # rule[:instrument]
    active_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    rule: Mapped[str] = mapped_column(String(32), nullable=False)
    instrument: Mapped[str | None] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(1000), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    deliveries: Mapped[list[AlertDelivery]] = relationship(
        back_populates="alert", order_by="AlertDelivery.id", cascade="all, delete-orphan"
    )


class AlertDelivery(Base):
    """One message of an alert (``firing`` or ``resolved``) to one receiver, until it is sent."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "event", "receiver", name="uq_alert_delivery"),
        Index("ix_alert_deliveries_pending", "sent_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(16), nullable=False)  # firing | resolved
    receiver: Mapped[str] = mapped_column(String(64), nullable=False)  # webhook:N | email
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    alert: Mapped[Alert] = relationship(back_populates="deliveries")


class UserAccount(Base):
    """A local account for the web UI: only its argon2 password hash is stored."""

    __tablename__ = "user_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    instruments: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    password_changed_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, nullable=False
    )
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MaintenanceRun(Base):
    """One run of an operations job: a backup, a backup's verification, a retention clean-up.

    ``outcome`` is ``ok`` or ``failed`` (``reason`` says why); the alert rule ``backup_failed``
    and ``/metrics`` read the newest rows of each job.
    """

    __tablename__ = "maintenance_runs"
    __table_args__ = (Index("ix_maintenance_job_finished", "job", "finished_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(16), nullable=False)  # backup | verify | cleanup
    outcome: Mapped[str] = mapped_column(String(8), nullable=False)  # ok | failed
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    reason: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    host: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class RetentionCleanup(Base):
    """A run version whose log and intermediate outputs the retention clean-up removed.

    The run's row and its reduced data and plots stay; the API and UI read this to say "log
    removed by retention" instead of "not found".
    """

    __tablename__ = "retention_cleanups"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("reduction_runs.id", ondelete="CASCADE"), primary_key=True
    )
    cleaned_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    files: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bytes_freed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    log_lines: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RunAttempt(Base):
    """One attempt at reducing a run version: where it ran, with what resources, how it ended.

    A Slurm attempt records its job before anything waits on it; an attempt that took a run over
    from a processor that died before the hand-off follows the same job (the same
    ``slurm_job_id`` on two rows). Once ``handed_off_at`` is set the message is acked and the
    follower of ``processor`` follows the job; a live processor adopts it (``processor`` changes,
    the attempt stays) when that one stops.
    """

    __tablename__ = "run_attempts"
    __table_args__ = (UniqueConstraint("run_id", "attempt", name="uq_run_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("reduction_runs.id", ondelete="CASCADE"), nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    processor: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    executor: Mapped[str] = mapped_column(String(8), nullable=False, default="local")
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    cpus: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    timeout_s: Mapped[float] = mapped_column(Float, nullable=False)
    slurm_job_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    slurm_job_id: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    slurm_state: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    job_dir: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    reason: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    handed_off_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
