"""The JSON bodies the API accepts and answers (pydantic models; they make the OpenAPI page)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

MAX_RUN_NUMBER = 2**63 - 1
MAX_RUN_VERSION = 2**31 - 1
MAX_VARIABLES_DEPTH = 32
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def utc_timestamp(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive means UTC) within 1970 to 9999, or ValueError."""
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range (1970 to 9999)") from None
    if not EARLIEST <= aware <= LATEST:
        raise ValueError("timestamp out of range (1970 to 9999)")
    return aware


def check_text(value: str) -> str:
    """Refuse text the database cannot store: lone surrogates and NUL characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text holds characters that are not valid Unicode") from None
    if "\x00" in value:
        raise ValueError("text holds a NUL character")
    return value


def check_json_values(root: dict[str, Any]) -> dict[str, Any]:
    """Refuse JSON the database and the broker cannot carry faithfully (iterative, no recursion)."""
    pending: list[tuple[Any, int]] = [(root, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_VARIABLES_DEPTH:
            raise ValueError(f"variables nested deeper than {MAX_VARIABLES_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("variables hold a number that is not finite (NaN or Infinity)")
        if isinstance(value, str):
            check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return root


Text = Annotated[str, AfterValidator(check_text)]
"""Text the database can store (valid Unicode, no NUL): use it for every text field of a body."""

JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_values)]
"""A JSON object the database and the broker carry faithfully (finite numbers, bounded depth)."""


class RunSubmission(BaseModel):
    """A detected run, as the detector posts it.

    The API finds the data file itself from the instrument's ``data`` template, as the detector
    does. A client may name ``data_path``; it is accepted only if it resolves, symlinks followed,
    to a regular file under the archive root. A detected run's variables come from the
    instrument's rules and defaults, never from the submission.
    """

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(min_length=1, max_length=32, examples=["GEM"])
    run_number: int = Field(ge=0, le=MAX_RUN_NUMBER, examples=[123])
    data_path: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Optional: the data file, under the archive root.",
        examples=["/archive/NDXGEM/Instrument/data/cycle_26_1/GEM00000123.nxs"],
    )
    detected_at: datetime | None = None

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, value: str) -> str:
        return check_text(value)

    @field_validator("data_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not check_text(value).startswith("/"):
            raise ValueError("data_path must be an absolute path")
        return value

    @field_validator("detected_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc_timestamp(value)


BASE_PATTERN = r"^(latest|current|version (0|[1-9][0-9]{0,8}))$"
BASE_DESCRIPTION = (
    "What the new version starts from: `latest` (the latest version's own values), "
    "`version N` (that version's values) or `current` (today's rules and defaults)."
)


class RerunRequest(BaseModel):
    """A re-run: its base, the variables it changes over that base, and why."""

    model_config = ConfigDict(extra="forbid")

    variables: JsonObject = Field(
        default_factory=dict,
        description="Values to change over the base. At most `max_variables_bytes` as JSON.",
    )
    base: str = Field("latest", pattern=BASE_PATTERN, description=BASE_DESCRIPTION)
    dry_run: StrictBool = Field(
        False, description="Answer the version it would make (200), without queuing anything."
    )
    reason: Text = Field(
        "",
        max_length=500,
        description="Why this version is made; stored as the version's `description`.",
    )
    from_step: str = Field(
        default="",
        max_length=48,
        description="Pipelines: start at this step, reusing the outputs of the base's completed "
        "steps that neither are it nor rely on it. Empty: every step runs.",
    )


class CancelRequest(BaseModel):
    """Why a run version is cancelled; recorded with who asked and when."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=500,
        description="Why the version is cancelled, in the words of whoever asks.",
        examples=["wrong sample position"],
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not check_text(value).strip():
            raise ValueError("reason must say why (it is blank)")
        return value


class InstrumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: StrictBool


class OutputItem(BaseModel):
    id: int
    kind: str
    name: str
    size_bytes: int
    url: str


class DataFileProvenance(BaseModel):
    """The data file as the reduction child read it."""

    path: str
    size_bytes: int
    modified_at: str = Field(description="Its modification time, ISO 8601 UTC.")
    sha256: str = Field(description="The SHA-256 of its bytes, hex.")


class Provenance(BaseModel):
    """What reduced this version: plugin, environment, processor, and which data."""

    plugin: str
    plugin_distribution: str = Field(description="The package providing the plugin.")
    plugin_version: str = Field(description="That package's installed version.")
    environment_fingerprint: str = Field(
        description="SHA-256 of the sorted `name==version` of the processor's installed packages."
    )
    environment_packages: int = Field(description="How many packages the fingerprint covers.")
    processor: str
    host: str
    data_file: DataFileProvenance | None = Field(
        None, description="Absent when the run failed before its reduction started."
    )
    plugin_change: str | None = Field(
        None,
        description="Set when the plugin or its version differs from the newest earlier "
        "version's, e.g. `plugin noop 1.2 → 1.3 since v0`.",
    )


class AttemptItem(BaseModel):
    """One attempt at a run version: where it ran, with what resources, how it ended."""

    attempt: int
    processor: str
    executor: str = Field(description="`local` or `slurm`.")
    memory_mb: int
    cpus: int
    timeout_s: float
    slurm_job_id: str | None = Field(None, description="The Slurm job; null for a local attempt.")
    slurm_state: str | None = Field(
        None, description="The job's last state seen: `PENDING`, `RUNNING`, `OUT_OF_MEMORY`, …"
    )
    outcome: str | None = Field(
        None,
        description="`completed`, an error category, `retried`, `taken over`; null while it runs.",
    )
    reason: str
    started_at: datetime
    finished_at: datetime | None


class StepItem(BaseModel):
    """One step of a pipeline run version."""

    step: str
    state: str = Field(description="Queued, Processing, Completed, Error, Skipped or Cancelled.")
    message: str = Field(description="Why it failed or was skipped, or its summary.")
    plugin: str = Field(description="Its plugin, or `command`.")
    rely: list[str]
    cpus: int
    memory_mb: int
    timeout_s: float
    executor: str
    peak_rss_mb: float | None
    wall_s: float | None
    log: str = Field(description="Its log, relative to the version's output directory.")
    reused_from_version: int | None = Field(
        description="A from_step re-run: the version whose outputs it reused (it did not run)."
    )
    started_at: datetime | None
    finished_at: datetime | None


class RunItem(BaseModel):
    """One version of one run."""

    id: int
    instrument: str
    run_number: int
    run_version: int
    status: str
    message: str
    experiment_ref: str
    title: str
    data_path: str
    variables: dict[str, Any]
    variable_sources: dict[str, str] = Field(
        description="Where each value came from: `re-run change`, `experiment E rule #N`, "
        "`from run R rule #N`, `instrument default`, `plugin default`, or `version N` "
        "(carried from a version that recorded no source); empty for runs older than sources."
    )
    derived_from_version: int | None = Field(
        description="The version a re-run was made from; null for a detected run."
    )
    reason: str = Field(description="`detected` or `rerun`.")
    description: str = Field(description="Why this version was made, in its submitter's words.")
    submitted_by: str
    summary: str
    attempts: int
    processor: str
    detected_at: datetime | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_wait_s: float | None = Field(None, description="Seconds from queued to started.")
    reduction_s: float | None = Field(None, description="Seconds from started to finished.")
    cancel_requested_at: datetime | None = Field(
        None, description="When cancelling this version was asked for; null if never."
    )
    cancel_requested_by: str = Field("", description="Who asked to cancel this version.")
    cancel_reason: str = Field("", description="Why cancelling this version was asked for.")
    outputs: list[OutputItem]
    attempt_history: list[AttemptItem] | None = Field(
        None,
        description="Each attempt, its executor and resources (`GET /runs/{instrument}/{number}`"
        " only; null in lists).",
    )
    provenance: Provenance | None = Field(
        None, description="Recorded by the processor; null until a processor finished it."
    )
    error_category: str = Field(
        "",
        description="For a run in Error: `plugin`, `data`, `timeout`, `memory`, `crash` or "
        "`infrastructure`; empty otherwise (and for errors recorded before categories existed).",
    )
    error_fingerprint: str = Field(
        "", description="For a run in Error: its cause hashed; identical failures share it."
    )
    error_signature: str = Field("", description="For a run in Error: its cause, short.")
    from_step: str = Field("", description="Pipelines: the step this re-run started at.")
    steps: list[StepItem] = Field(
        default_factory=list,
        description="Pipelines: each step of this version (in the run detail; empty in lists).",
    )


class RunPage(BaseModel):
    items: list[RunItem]
    total: int = Field(
        description="How many versions match: exact up to 10,000; when `total_exact` is false "
        "at least `total` match: counting stopped at 10,000, or, for plain words, "
        "at the matches among the newest versions read for the page."
    )
    total_exact: bool = Field(
        True, description="False when `total` is a lower bound (at least that many match)."
    )
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="The offset of the next page; null on the last one. A page may hold fewer "
        "than `limit` items when they would pass `max_page_bytes`."
    )
    next_after: int | None = Field(
        None,
        description="The last item's id when more follow: pass it as `after` for the next page "
        "by key (cheap however deep); null on the last page.",
    )


class RunVersions(BaseModel):
    instrument: str
    run_number: int
    versions: list[RunItem]


class VariableDeclaration(BaseModel):
    name: str
    type: str
    default: Any = Field(description="The value a new run gets unless a re-run changes it.")
    default_source: str = Field(
        description="Where `default` comes from: `instrument` (its TOML table) or `plugin`."
    )
    plugin_default: Any = Field(description="The plugin's own declared default.")
    help: str
    advanced: bool
    choices: list[Any] | None
    minimum: float | None
    maximum: float | None


class InstrumentItem(BaseModel):
    name: str
    plugin: str = Field(description="Its plugin; empty when it runs a pipeline.")
    pipeline: str = Field("", description="The pipeline it runs (`GET /api/v1/pipelines`).")
    paused: bool
    run_counts: dict[str, int] = Field(description="Run versions per status.")
    latest_run_number: int | None
    variables: list[VariableDeclaration]
    error: str | None = Field(None, description="Why the plugin's variables are unavailable.")


class ProcessorItem(BaseModel):
    id: str
    host: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    current_run_id: int | None
    alive: bool
    slurm_jobs: int = Field(0, description="Slurm jobs its follower follows (handed off to it).")


class Health(BaseModel):
    status: str
    database: str
    broker: str


class AuditItem(BaseModel):
    """One write: who, from where, what and when."""

    id: int
    at: datetime
    actor: str = Field(description="The token's or client's name (`cli:<user>` from a terminal).")
    role: str
    address: str = Field(description="The client's address (the host, for the command line).")
    action: str = Field(description="E.g. `run.submit`, `run.rerun`, `instrument.pause`.")
    instrument: str | None
    target: str = Field(description="What was changed, e.g. `GEM 44733 v1`.")
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_before_id: int | None = Field(
        description="Pass as `before_id` for the next (older) page; null on the last one."
    )


class ExperimentItem(BaseModel):
    """One experiment (proposal, RB number): what its runs the caller may read add up to."""

    ref: str = Field(description="The experiment reference read from the data files.")
    run_count: int = Field(description="Runs (each counted once, whatever its versions).")
    version_count: int = Field(description="Run versions, re-runs included.")
    instruments: list[str] = Field(description="The instruments its runs were taken on.")
    first_run_at: datetime = Field(description="When its first version was queued.")
    last_run_at: datetime = Field(description="When its latest version was queued.")
    status_counts: dict[str, int] = Field(description="Run versions per status.")


class ExperimentPage(BaseModel):
    items: list[ExperimentItem]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")


class ExperimentRuns(ExperimentItem):
    """An experiment and one page of its run versions, newest queued first."""

    runs: RunPage


class FailureExample(BaseModel):
    """One run version in a failure group."""

    instrument: str
    run_number: int
    run_version: int
    finished_at: datetime | None
    message: str
    url: str = Field(description="The run's versions in the API.")


class FailureGroup(BaseModel):
    """Recent runs in Error that share one cause (fingerprint)."""

    fingerprint: str = Field(description="Empty for errors recorded before fingerprints existed.")
    category: str
    signature: str
    count: int = Field(description="Run versions in Error with this fingerprint since `since`.")
    instruments: list[str]
    first_seen: datetime | None
    last_seen: datetime | None
    examples: list[FailureExample] = Field(description="Up to 5, newest first.")


class FailurePage(BaseModel):
    items: list[FailureGroup] = Field(description="Newest group (by last seen) first.")
    total: int = Field(description="How many groups there are.")
    since: datetime
    limit: int
    offset: int
    next_offset: int | None
