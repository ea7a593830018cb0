"""One settings object for every service.

Environment variables prefixed ``AUTOREDUCE_`` override a TOML file whose path is in
``AUTOREDUCE_CONFIG`` (default ``./autoreduce.toml`` when it exists; a file named there that does
not exist is an error, never a silent fall-back). Nested values use a double underscore:
``AUTOREDUCE_ARCHIVE__ROOT=/archive``. Unknown keys are refused and every template's placeholders
are checked when the settings are built (:mod:`autoreduce.config_check` says it per line).
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from autoreduce.paths import UnsafePathError, confine, safe_component

INSTRUMENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
CONFIG_ENV = "AUTOREDUCE_CONFIG"
MIN_SIGNING_KEY_CHARS = 32  # HS256 wants a key of at least 256 bits
DEFAULT_CONFIG = Path("autoreduce.toml")

# The placeholders each instrument template may use, and values to try a template with (so a
# format spec such as ``{run_number:08d}`` is checked too, not only the names).
TEMPLATE_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "lastruns": ("root", "instrument"),
    "data": ("root", "instrument", "run_number"),
    "output": ("outputs", "root", "instrument", "experiment_ref", "run_number", "run_version"),
}
_SAMPLE_VALUES: dict[str, object] = {
    "outputs": Path("/outputs"),
    "root": Path("/archive"),
    "instrument": "WISH",
    "experiment_ref": "1920123",
    "run_number": 44733,
    "run_version": 0,
}


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_path() -> Path | None:
    """The TOML file to read: ``$AUTOREDUCE_CONFIG`` (which must exist), else ``./autoreduce.toml``
    when there is one, else None."""
    named = os.environ.get(CONFIG_ENV, "")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                [
                    f"config file {path} not found ({CONFIG_ENV} names it); create it, or unset "
                    f"{CONFIG_ENV} to use ./{DEFAULT_CONFIG} when there is one"
                ]
            )
        return path
    return DEFAULT_CONFIG.absolute() if DEFAULT_CONFIG.is_file() else None


def did_you_mean(name: str, known: list[str] | tuple[str, ...], quote: str = "{}") -> str:
    """ " (did you mean X?)" for the known name closest to ``name``, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {quote.format(close[0])}?)" if close else ""


def check_template(kind: str, template: str) -> str:
    """``template`` if it uses only the placeholders a ``kind`` template may, and fills in."""
    allowed = TEMPLATE_PLACEHOLDERS[kind]
    names = ", ".join(f"{{{name}}}" for name in allowed)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{kind} template {template!r} is malformed: {error}") from None
    for field in (field for _, field, _, _ in parsed if field is not None):
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name not in allowed:
            raise ValueError(
                f"{kind} template {template!r} has unknown placeholder {{{field}}}"
                f"{did_you_mean(name, allowed, '{{{}}}')}; allowed: {names}"
            )
    try:
        template.format(**{name: _SAMPLE_VALUES[name] for name in allowed})
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"{kind} template {template!r} cannot be filled in: {error}") from None
    return template


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Path("/archive")


class Execution(BaseModel):
    """Where reductions run and with what (an instrument's settings, and ``[jobs]``)."""

    model_config = ConfigDict(extra="forbid")

    executor: Literal["local", "slurm"] = Field(
        "local", description="`local`: a child of the processor; `slurm`: an `sbatch` job."
    )
    max_memory_mb: int | None = Field(
        None,
        gt=0,
        description="A reduction killed for memory is retried with its memory doubled, up to "
        "this; unset: not retried for memory.",
    )
    partition: str = Field(
        "", pattern=r"^[A-Za-z0-9_.-]*$", description="Slurm: the partition (empty: default)."
    )
    cpus: int = Field(1, ge=1, le=1024, description="Slurm: CPUs of the job (`--cpus-per-task`).")
    sbatch_options: list[str] = Field(
        default_factory=list,
        description="Slurm: further `sbatch` options, each one `--name=value` argument.",
    )

    @field_validator("sbatch_options")
    @classmethod
    def _sbatch_options(cls, value: list[str]) -> list[str]:
        from autoreduce.slurm_options import check_sbatch_options

        return check_sbatch_options(value)


class InstrumentConfig(Execution):
    """How one instrument's runs are found and reduced (``[instruments.NAME]`` in the TOML)."""

    plugin: str = Field("", description="Entry-point name of the reduction plugin.")
    pipeline: str = Field(
        "", description="Name of a pipeline file in `pipelines_dir`, instead of `plugin`."
    )
    lastruns: str
    data: str
    output: str = "{outputs}/{instrument}/{experiment_ref}/{run_number}/v{run_version}"
    timeout_s: float = Field(3600.0, gt=0, description="Wall-clock limit of one reduction.")
    memory_mb: int = Field(8192, gt=0, description="Memory a reduction may add, in MiB.")
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Instrument-wide defaults overriding the plugin's."
    )

    @field_validator("lastruns", "data", "output")
    @classmethod
    def _known_placeholders(cls, value: str, info: ValidationInfo) -> str:
        return check_template(str(info.field_name), value)

    @model_validator(mode="after")
    def _plugin_or_pipeline(self) -> InstrumentConfig:
        if bool(self.plugin) == bool(self.pipeline):
            raise ValueError("give exactly one of plugin and pipeline")
        return self


STORAGE_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[A-Za-z0-9._/-]*)?$")


class JobSettings(Execution):
    """Reductions of uploads (``POST /api/v1/jobs``): runs of the ``JOB`` pseudo-instrument,
    local or on Slurm like an instrument's (``executor``, ``partition``, ``cpus``…)."""

    plugins: list[str] = Field(
        default_factory=list,
        description="The plugins a job may name (each still needs an admin's approval); empty: "
        "jobs are refused.",
    )
    pipelines: list[str] = Field(
        default_factory=list,
        description="The pipelines (files in `pipelines_dir`) a job may name instead of a plugin; "
        "empty: none.",
    )
    timeout_s: float = Field(3600.0, gt=0, description="Wall-clock limit of one job.")
    memory_mb: int = Field(8192, gt=0, description="Memory a job's reduction may add, in MiB.")
    max_inputs: int = Field(20, ge=1, le=1000, description="Most uploads one job may name.")


LDAP_URL = re.compile(r"^ldaps?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?/?$", re.I)
LDAP_ROLES = ("admin", "scientist")
"""The roles an LDAP group may grant, strongest first (a member of both is an admin)."""


class LdapSettings(BaseModel):
    """Signing in against an LDAP directory (``[ldap]`` in the TOML); ``url`` empty: LDAP off.

    The user's DN comes from ``user_dn_template``, or else from a search under
    ``user_search_base`` with ``user_filter`` (bound as ``bind_dn`` when one is set). Their groups
    come from their ``memberOf`` attribute, or, when ``group_search_base`` is set, from a search
    for groups whose ``member`` holds their DN; ``role_groups`` and ``instrument_groups`` map
    group DNs to a role and to instruments.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="",
        description="`ldap://host[:port]` or `ldaps://host[:port]`; several separated by spaces "
        "are tried in turn; empty: LDAP sign-in is off.",
    )
    start_tls: bool = Field(
        default=False, description="Upgrade an `ldap://` connection with StartTLS."
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) the server's certificate is checked against; "
        "default: the system's.",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Connecting, in seconds."
    )
    receive_timeout_s: int = Field(
        default=10,
        ge=1,
        le=120,
        description="Waiting for one answer of the server, in whole seconds (ldap3 sets it on "
        "the socket as an integer).",
    )
    user_dn_template: str = Field(
        default="",
        description="The user's DN with `{username}`, e.g. `uid={username},ou=people,dc=x,dc=org`; "
        "empty: search for it instead.",
    )
    user_search_base: str = Field(default="", description="Where to search for the user's entry.")
    user_filter: str = Field(
        default="(uid={username})", description="The search filter; `{username}` is escaped."
    )
    bind_dn: str = Field(
        default="",
        description="Service account the user search binds as; empty: an anonymous search.",
    )
    bind_password: SecretStr = Field(
        default=SecretStr(""),
        description="The service account's password (a secret: never logged).",
    )
    group_search_base: str = Field(
        default="",
        description="Where to search for groups whose `member` holds the user's DN; empty: "
        "read the user's `memberOf` attribute (memberof overlay, Active Directory).",
    )
    group_member_attribute: str = Field(
        default="member", description="The group attribute holding member DNs (group search only)."
    )
    username_attribute: str = Field(
        default="uid",
        description="The attribute holding the username as the directory spells it "
        "(`sAMAccountName` on Active Directory).",
    )
    display_name_attribute: str = Field(
        default="displayName", description="The attribute shown as the user's name (else `cn`)."
    )
    role_groups: dict[str, str] = Field(
        default_factory=dict,
        description="Role (`admin`, `scientist`) → group DN; a user in none is not signed in.",
    )
    instrument_groups: dict[str, str] = Field(
        default_factory=dict, description="Instrument → group DN whose members may act on it."
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url.strip())

    @field_validator("url")
    @classmethod
    def _ldap_urls(cls, value: str) -> str:
        for url in value.split():
            if not LDAP_URL.match(url):
                raise ValueError(
                    f"LDAP URL {url!r} must be ldap://host[:port] or ldaps://host[:port]"
                )
        return value

    @field_validator("user_dn_template", "user_filter")
    @classmethod
    def _username_placeholder(cls, value: str, info: ValidationInfo) -> str:
        if value and "{username}" not in value:
            raise ValueError(f"{info.field_name} {value!r} must contain {{username}}")
        return value

    @field_validator("role_groups")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for role in value:
            if role not in LDAP_ROLES:
                raise ValueError(
                    f"role {role!r} cannot come from LDAP; roles: {', '.join(LDAP_ROLES)}"
                )
        return value

    @field_validator("instrument_groups")
    @classmethod
    def _instrument_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not INSTRUMENT_NAME.match(name):
                raise ValueError(
                    f"instrument name {name!r} must be upper case letters, digits or _ "
                    "(at most 32 characters)"
                )
        return value

    @model_validator(mode="after")
    def _complete(self) -> LdapSettings:
        if not self.enabled:
            return self
        if not self.user_dn_template and not self.user_search_base:
            raise ValueError("ldap needs user_dn_template or user_search_base to find a user")
        if not self.role_groups:
            raise ValueError("ldap needs role_groups: without them nobody may sign in")
        if self.start_tls and any(u.lower().startswith("ldaps:") for u in self.url.split()):
            raise ValueError("start_tls is for ldap:// URLs; an ldaps:// URL is TLS already")
        return self


ALERT_RULES = (
    "run_error",
    "instrument_silent",
    "runs_stalled",
    "latency_over_target",
    "no_processor",
    "dead_letters",
    "outbox_growing",
    "disk_filling",
    "backup_failed",
)
"""The alert rules :mod:`autoreduce.alerts` judges (README "Operating it" says what each means)."""


class WebhookReceiver(BaseModel):
    """One webhook that alerts are POSTed to (``[[alerts.webhooks]]`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(
        description="Where to POST (a secret: Slack and Teams URLs carry their token; never "
        "logged)."
    )
    shape: Literal["json", "slack", "teams"] = Field(
        default="json",
        description="`json` (the alert as generic JSON), `slack` (Slack and Mattermost "
        "incoming webhooks) or `teams` (a Microsoft Teams MessageCard).",
    )
    instruments: list[str] = Field(
        default_factory=list,
        description="Send only these instruments' alerts (and the facility-wide ones); empty: all.",
    )


class EmailSettings(BaseModel):
    """Alerts by email through SMTP (``[alerts.email]``); no ``smtp_host``: no email."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str = Field(
        default="", description="The SMTP server; empty: alerts are not emailed."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="The SMTP server's port.")
    security: Literal["none", "starttls", "ssl"] = Field(
        default="none", description="`starttls` upgrades the connection, `ssl` connects with TLS."
    )
    username: str = Field(default="", description="SMTP login; empty: no login.")
    password: SecretStr = Field(default=SecretStr(""), description="SMTP password (never logged).")
    sender: str = Field(default="autoreduce@localhost", description="The From address.")
    recipients: list[str] = Field(default_factory=list, description="Who receives every alert.")
    timeout_s: float = Field(
        default=10.0, gt=0, description="Connecting and each SMTP command, seconds."
    )


class InstrumentAlertSettings(BaseModel):
    """One instrument's alert settings (``[alerts.instruments.NAME]``); unset: the global one."""

    model_config = ConfigDict(extra="forbid")

    quiet_period_min: float | None = Field(
        default=None, ge=0, description="Silent longer than this (minutes) is an alert; 0: never."
    )
    latency_target_s: float | None = Field(
        default=None, gt=0, description="Its detection→final p95 target, in seconds."
    )
    email_recipients: list[str] = Field(
        default_factory=list, description="Who also receives this instrument's alerts."
    )


class AlertSettings(BaseModel):
    """The alert rules' thresholds and where alerts go (``[alerts]`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(
        default=60.0, gt=0, description="`autoreduce alerts run` evaluates this often."
    )
    disabled_rules: list[str] = Field(
        default_factory=list, description="Rules not evaluated (names in README)."
    )
    error_window_min: float = Field(
        default=15.0,
        gt=0,
        description="run_error: fires while an instrument has runs in Error finished this "
        "recently (minutes), so at most one message per instrument per window.",
    )
    quiet_period_min: float = Field(
        default=360.0,
        ge=0,
        description="instrument_silent: no run detected for this long (minutes) while not "
        "paused; 0: never.",
    )
    stalled_min: float = Field(
        default=30.0,
        gt=0,
        description="runs_stalled: runs waiting longer than this (minutes) and none finished "
        "in that time.",
    )
    latency_target_s: float = Field(
        default=1800.0,
        gt=0,
        description="latency_over_target: detection→final p95 target, seconds.",
    )
    latency_window_min: float = Field(
        default=60.0,
        gt=0,
        description="latency_over_target: the p95 is over runs finished this recently.",
    )
    latency_min_runs: int = Field(
        default=5, ge=1, description="latency_over_target: fewer runs in the window: no verdict."
    )
    outbox_growing_min: float = Field(
        default=10.0,
        gt=0,
        description="outbox_growing: an unsent outbox message older than this (min).",
    )
    disk_threshold_pct: float = Field(
        default=90.0,
        gt=0,
        le=100,
        description="disk_filling: the outputs' disk fuller than this (%).",
    )
    backup_max_age_h: float = Field(
        default=26.0,
        gt=0,
        description="backup_failed: no verified backup for this long (hours), or the newest "
        "backup or verification failed. Judged once a backup has been recorded.",
    )
    delivery_attempts: int = Field(
        default=3,
        ge=1,
        description="Tries of one message in one evaluation (backoff between them).",
    )
    retry_max_backoff_s: float = Field(
        default=300.0,
        gt=0,
        description="A message still undelivered is tried again after at most this.",
    )
    webhooks: list[WebhookReceiver] = Field(default_factory=list, description="Webhooks.")
    email: EmailSettings = Field(default_factory=EmailSettings, description="Email via SMTP.")
    instruments: dict[str, InstrumentAlertSettings] = Field(
        default_factory=dict, description="Per-instrument overrides."
    )

    @field_validator("disabled_rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in ALERT_RULES:
                raise ValueError(
                    f"unknown alert rule {name!r}{did_you_mean(name, ALERT_RULES)}; "
                    f"rules: {', '.join(ALERT_RULES)}"
                )
        return value

    def quiet_period_min_of(self, instrument: str) -> float:
        own = self.instruments.get(instrument)
        if own is not None and own.quiet_period_min is not None:
            return own.quiet_period_min
        return self.quiet_period_min

    def latency_target_s_of(self, instrument: str) -> float:
        own = self.instruments.get(instrument)
        if own is not None and own.latency_target_s is not None:
            return own.latency_target_s
        return self.latency_target_s


class ShippingSettings(BaseModel):
    """`autoreduce ship-logs`: which JSON-lines files go to which Elasticsearch (8.x)."""

    model_config = ConfigDict(extra="forbid")

    elasticsearch_url: SecretStr = Field(
        default=SecretStr(""),
        description="Elasticsearch 8.x URL, e.g. `https://shipper:pw@es1:9200`; a comma-separated "
        "list for several nodes. Empty: ship-logs refuses to start.",
    )
    index: str = Field(
        default="autoreduce-logs",
        description="The data stream records are created in (the index template matches "
        "`autoreduce-logs*`).",
    )
    paths: list[str] = Field(
        default_factory=lambda: ["{logs_dir}/*.jsonl*", "{outputs}/**/reduction.jsonl"],
        description="Glob patterns of the JSON-lines files to tail; `{logs_dir}`, `{outputs}` and "
        "`{data_dir}` are filled in. Rotated files (`api.jsonl.1`) are followed by identity.",
    )
    state_dir: Path | None = Field(
        default=None, description="Offsets and dead letters; default data_dir/ship-logs."
    )
    batch_records: int = Field(
        default=500, ge=1, le=10_000, description="Records per bulk request."
    )
    poll_s: float = Field(
        default=0.5, gt=0, description="How often files are read for new lines (s)."
    )
    scan_s: float = Field(
        default=5.0, gt=0, description="How often the patterns are globbed again (s)."
    )
    max_backoff_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait between retries while Elasticsearch is down (s).",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="One bulk request, at most (s)."
    )


DURATION = re.compile(r"^\s*([0-9]+)\s*([hdw])\s*$")
DURATION_UNITS_H = {"h": 1, "d": 24, "w": 24 * 7}


def duration_hours(value: str) -> int:
    """``90d``, ``36h`` or ``2w`` as whole hours (at least 1); ValueError otherwise."""
    match = DURATION.match(value)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"duration {value!r} must be a positive whole number of hours, days or weeks, "
            "e.g. 90d, 36h, 2w"
        )
    return int(match.group(1)) * DURATION_UNITS_H[match.group(2)]


class BackupSettings(BaseModel):
    """``autoreduce db backup`` and ``db restore`` (``[backup]`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(
        default=None, description="Where dumps and their manifests go; default data_dir/backups."
    )
    keep_days: int = Field(
        default=14, ge=1, description="Dumps older than this many days are removed by a backup."
    )
    dump_command: str = Field(
        default="mysqldump",
        description="MariaDB/MySQL: the dump client (`mysqldump` or `mariadb-dump`).",
    )
    client_command: str = Field(
        default="mysql",
        description="MariaDB/MySQL: the client a restore feeds the dump to (`mysql`, `mariadb`).",
    )
    timeout_s: float = Field(
        default=6 * 3600.0, gt=0, description="A dump or a restore is stopped after this long."
    )


class RetentionSettings(BaseModel):
    """``autoreduce cleanup`` (``[retention]`` in the TOML)."""

    model_config = ConfigDict(extra="forbid")

    older_than: str = Field(
        default="90d",
        description="Run versions finished longer ago than this (`90d`, `36h`, `2w`) lose their "
        "logs and intermediate outputs.",
    )

    @field_validator("older_than")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_hours(value)
        return value


class UploadSettings(BaseModel):
    """How long uploads are kept (``[uploads]`` in the TOML; see ``autoreduce cleanup``)."""

    model_config = ConfigDict(extra="forbid")

    keep_days: float = Field(
        30.0,
        gt=0,
        description="`autoreduce cleanup` removes an upload no job names once it is this many "
        "days old (an upload a job names goes when all its jobs' runs are past retention).",
    )


class Settings(BaseSettings):
    """Every setting, its environment variable (``AUTOREDUCE_<NAME>``) and its default."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOREDUCE_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "autoreduce-data",
        description="Embedded database, service logs and (unless `outputs` is set) outputs.",
    )
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    broker_url: str = Field("sql://", description="`sql://` (queue table) or `stomp://...`.")
    outputs: Path | None = Field(None, description="Outputs root; default data_dir/outputs.")
    api_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where the detector posts runs, and the API the client commands talk to.",
    )
    api_token: str = Field(
        "",
        description="Bearer token the detector sends (detector role); the `autoreduce` client "
        "commands send it too when set (else the user's `autoreduce login`).",
    )
    api_client_id: str = Field(
        "",
        description="Client commands: an OAuth2 client id; with `api_client_secret` the client "
        "fetches access tokens from `POST /api/v1/oauth/token` (client credentials grant).",
    )
    api_client_secret: str = Field(
        "", description="Client commands: the OAuth2 client's secret (never printed or logged)."
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts at one run (processor deaths, crashes) before it is Error."
    )
    retry_delay_s: float = Field(
        5.0, ge=0, description="A run whose reduction process crashed is retried after this long."
    )
    slurm_poll_s: float = Field(
        1.0, gt=0, le=60, description="Slurm: how often a followed job's state is read."
    )
    slurm_overhead_mb: int = Field(
        512,
        ge=0,
        description="Slurm: memory added to an instrument's `memory_mb` for the job's "
        "interpreter (`--mem`).",
    )
    visibility_timeout_s: float = Field(
        60.0, gt=0, description="SQL queue: a claimed message returns after this long unrenewed."
    )
    poll_interval_s: float = Field(0.1, gt=0, description="SQL queue: idle wait between claims.")
    stomp_heartbeat_ms: int = Field(
        10_000,
        ge=0,
        description="STOMP: heart-beat period offered to the broker, in ms (0: none); "
        "the URL's `?heartbeat_ms=` wins.",
    )
    stomp_receipt_timeout_s: float = Field(
        10.0, gt=0, description="STOMP: how long a send, ack or subscribe waits for its receipt."
    )
    stomp_reconnect_timeout_s: float = Field(
        30.0,
        gt=0,
        description="STOMP: how long a verb keeps reconnecting (backoff up to 5 s), then fails.",
    )
    heartbeat_interval_s: float = Field(5.0, gt=0, description="Processor heartbeat period.")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM a processor waits this long for the run in hand."
    )
    database_outage_s: float = Field(
        300.0, gt=0, description="A processor retries recording a finished run this long."
    )
    max_log_lines: int = Field(
        5000,
        ge=2,
        description="Processor: a run version ships at most this many log lines to the database "
        "(the last one a marker saying the full log is in reduction.log).",
    )
    max_log_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Processor: a run version ships at most this many bytes of log text.",
    )
    log_ship_interval_s: float = Field(
        0.5, gt=0, le=60, description="Processor: log lines are written at least this often."
    )
    log_ship_batch_lines: int = Field(
        100, ge=1, description="Processor: log lines are written as soon as this many wait."
    )
    log_poll_interval_s: float = Field(
        0.25, gt=0, le=5, description="API: a log follower looks for new lines this often."
    )
    max_log_followers: int = Field(
        50, ge=0, description="API: at most this many log streams at once (more: 503; 0: none)."
    )
    log_follow_max_s: float = Field(
        3600.0,
        gt=0,
        description="API: one log stream lasts at most this long; the client resumes it with "
        "Last-Event-ID.",
    )
    public_read: bool = Field(
        False,
        description="Let anyone read runs, outputs and instruments without a token (the demo "
        "does); writes always need one.",
    )
    max_request_bytes: int = Field(
        1024 * 1024, gt=0, description="API: a request body over this many bytes is refused 413."
    )
    max_variables_bytes: int = Field(
        64 * 1024, gt=0, description="API: a re-run's variables, as JSON, at most this many bytes."
    )
    max_page_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        description="API: one page of runs stops before this many bytes of items.",
    )
    max_batch_runs_admin: int = Field(
        500, ge=1, description="API: the most runs an admin re-runs in one batch."
    )
    max_batch_runs_scientist: int = Field(
        50, ge=1, description="API: the most runs a scientist re-runs in one batch."
    )
    metadata_timeout_s: float = Field(
        5.0, gt=0, description="API: reading a data file's title and experiment, at most this long."
    )
    processor_history_s: float = Field(
        86_400.0,
        ge=0,
        description="API: stopped or silent processors stay listed this long (seconds).",
    )
    session_secret: SecretStr = Field(
        SecretStr(""),
        description="Key that signs the web UI's session cookies; empty: a random key kept in "
        "data_dir/session.key.",
    )
    session_max_age_s: float = Field(
        12 * 3600.0, gt=0, description="How long a web UI sign-in lasts, in seconds."
    )
    oauth_signing_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API: secrets (at least 32 characters each) that sign and verify OAuth2 "
        "access tokens; the first signs, every one verifies, so a rotation lists the new key "
        "first and keeps the old one until its tokens have expired. Empty: a key generated "
        "once and kept in data_dir/oauth-signing-key (mode 0600).",
    )
    oauth_audience: str = Field(
        "autoreduce",
        min_length=1,
        description="API: the `aud` of the access tokens this instance issues and accepts.",
    )
    oauth_issuer: str = Field(
        "autoreduce",
        min_length=1,
        description="API: the `iss` of the access tokens this instance issues and accepts.",
    )
    oauth_token_ttl_s: int = Field(
        3600, ge=1, le=86_400, description="API: an access token is valid this many seconds."
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Alert rules and their receivers."
    )
    signin_max_failures: int = Field(
        5,
        ge=1,
        description="Web UI: failed sign-ins allowed per username and address within "
        "`signin_failure_window_s`; more are refused (429) until the window passes.",
    )
    signin_failure_window_s: float = Field(
        300.0, gt=0, description="Web UI: the window failed sign-ins are counted in, in seconds."
    )
    storage: str = Field(
        "file",
        description="Where outputs, logs and uploads live: `file` (outputs under `outputs`, "
        "uploads under data_dir/uploads) or `s3://bucket/prefix` (an S3-compatible store at "
        "`s3_endpoint`; outputs are published there when a run ends).",
    )
    s3_endpoint: str = Field(
        "", description="S3: the store's URL (e.g. http://127.0.0.1:18333); empty: AWS's."
    )
    s3_region: str = Field("us-east-1", description="S3: the region signed into requests.")
    s3_access_key: SecretStr = Field(SecretStr(""), description="S3: the access key id.")
    s3_secret_key: SecretStr = Field(
        SecretStr(""), description="S3: the secret key (never logged or shown)."
    )
    max_upload_bytes: int = Field(
        1024**3, gt=0, description="API: an upload larger than this many bytes is refused 413."
    )
    pipelines_dir: Path | None = Field(
        None,
        description="Where pipeline files (`<name>.yaml`) live; default data_dir/pipelines.",
    )
    pipeline_parallel_steps: int = Field(
        4, ge=1, le=64, description="Processor: steps of one pipeline run running at once, at most."
    )
    jobs: JobSettings = Field(
        default_factory=lambda: JobSettings.model_validate({}),
        description="Reductions of uploaded files (jobs).",
    )
    uploads: UploadSettings = Field(
        default_factory=lambda: UploadSettings.model_validate({}),
        description="How long uploads are kept.",
    )
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    ldap: LdapSettings = Field(
        default_factory=LdapSettings, description="Signing in against an LDAP directory."
    )
    shipping: ShippingSettings = Field(
        default_factory=ShippingSettings, description="Shipping logs to Elasticsearch."
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings, description="Database backups and their verification."
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="The retention clean-up of run logs."
    )
    instruments: dict[str, InstrumentConfig] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @field_validator("instruments")
    @classmethod
    def _instrument_names(cls, value: dict[str, InstrumentConfig]) -> dict[str, InstrumentConfig]:
        for name in value:
            if name == "JOB":
                raise ValueError("instrument name 'JOB' is reserved for jobs (uploads reduced)")
            if not INSTRUMENT_NAME.match(name):
                raise ValueError(
                    f"instrument name {name!r} must be upper case letters, digits or _ "
                    "(at most 32 characters)"
                )
        return value

    @field_validator("oauth_signing_keys")
    @classmethod
    def _long_signing_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(value, start=1):
            if len(key.get_secret_value()) < MIN_SIGNING_KEY_CHARS:
                raise ValueError(
                    f"signing key {position} is shorter than {MIN_SIGNING_KEY_CHARS} characters "
                    "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return value

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        match = STORAGE_URL.match(value)
        prefix = (match.group(2) or "").strip("/") if match else ""
        parts = prefix.split("/") if prefix else []
        unsafe = any(not part or part.startswith(".") for part in parts)
        if value != "file" and (not match or unsafe):
            raise ValueError(
                "storage must be 'file' or 's3://bucket/prefix' (a bucket name "
                "of 3-63 lower-case letters, digits, '.' or '-'; no credentials in the URL)"
            )
        return value

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'autoreduce.db'}"

    @property
    def outputs_root(self) -> Path:
        return (self.outputs or self.data_dir / "outputs").expanduser().resolve()

    @property
    def resolved_pipelines_dir(self) -> Path:
        return (self.pipelines_dir or self.data_dir / "pipelines").expanduser().resolve()

    @property
    def backup_dir(self) -> Path:
        return (self.backup.dir or self.data_dir / "backups").expanduser().resolve()

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def lastruns_path(self, instrument: str) -> Path:
        template = self.instruments[instrument].lastruns
        return Path(template.format(root=self.archive.root, instrument=instrument))

    def data_pattern(self, instrument: str, run_number: int) -> str:
        """The data template with the run filled in; it may still hold glob wildcards."""
        return self.instruments[instrument].data.format(
            root=self.archive.root, instrument=instrument, run_number=run_number
        )

    def output_dir(
        self, instrument: str, run_number: int, run_version: int, experiment_ref: str
    ) -> Path:
        """The run's output directory from the instrument's ``output`` template, resolved.

        The template is the operator's and trusted; the values filled into it are not. Each is
        checked to be one safe path component (an empty ``experiment_ref`` is ``unknown``), and
        the filled-in path, symlinks followed, must lie strictly below :attr:`outputs_root`, so
        that the work directory beside it lies below the root too.

        Raises:
            UnsafePathError: a value cannot be used in a path, or the directory lies outside the
                outputs root (or is the root itself); the message says which.
        """
        root = self.outputs_root
        path = self.instruments[instrument].output.format(
            outputs=root,
            root=self.archive.root,
            instrument=safe_component(instrument, what="instrument"),
            experiment_ref=safe_component(experiment_ref or "unknown", what="experiment reference"),
            run_number=safe_component(run_number, what="run number"),
            run_version=safe_component(run_version, what="run version"),
        )
        resolved = confine(root, path, what="output directory")
        if resolved == root:
            raise UnsafePathError(f"output directory {path!r} is the outputs root itself")
        return resolved


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and the TOML file (overrides win).

    Raises :class:`ConfigError` with one line per problem: a missing config file, a key that is
    not a setting (with the closest one), a bad value or template.
    """
    from autoreduce.config_check import settings_problems

    path = config_path()
    problems, settings = settings_problems(path, overrides)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings
