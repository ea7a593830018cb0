"""Table (f): the web UI's pages and the API's reads at a facility's history (issue 14's shape).

A fresh database — an SQLite file, and a MariaDB database ``autoreduce_bench_scale`` dropped
afterwards — gets its schema from the project's own migrations, then N run versions by bulk SQL
(``executemany`` in chunks of 10,000): 20 instruments with the same number of runs each, 5 % of
runs re-run once (so N counts version 0s and re-runs together), 3 % of versions in Error, 2.5
output rows per version on average (data and log; a plot on every other version), queued over
eight years up to an hour ago. The insert's column lists are checked against the migrated
tables, so a new column fails the load loudly rather than being left at a default by accident.

The API is then built in this process (``rest_api.app.create_app``, no outbox relay) and driven
with Starlette's ``TestClient``. Each request type is sent sequentially, warm (two unmeasured
requests first), then ``POST /api/v1/runs`` records new runs of X (their data files made in
the archive first: the insert's cost with every index, trigger and text index of the schema),
and the **server time** of each is measured by an ASGI wrapper around the app:
from the call into the application to its last response body message — routing, dependencies,
the queries, rendering and serialisation, without the test client's own work. The pages are
requested signed in as an admin (a session cookie signed with ``data_dir/session.key``), the API
with an admin bearer token.
"""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, inspect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autoreduce.db import Database
from autoreduce.settings import Settings
from autoreduce.tokens import create_token
from bench.harness import DatabaseKind, fresh_database, one_line
from bench.report import Table, percentile

INSTRUMENTS = (
    "CRISP", "ENGINX", "GEM", "HRPD", "INTER", "IRIS", "LARMOR", "LET", "LOQ", "MAPS",
    "MARI", "MERLIN", "OFFSPEC", "OSIRIS", "POLARIS", "POLREF", "SANS2D", "SURF", "WISH", "ZOOM",
)  # fmt: skip
DATABASE_NAME = "autoreduce_bench_scale"
CHUNK = 10_000
RERUN_FRACTION = 0.05
ERROR_FRACTION = 0.03
RUNS_PER_EXPERIMENT = 250
HISTORY = timedelta(days=8 * 365)
FIRST_RUN = 10_000
SEED = 14
WARMUP = 2
TARGET_PAGE_P95_MS = 150.0
TARGET_LIST_P95_MS = 50.0
TARGET_DETAIL_P95_MS = 30.0
TITLES = (
    "Si powder 300K",
    "Vanadium rod calibration",
    "Empty can",
    "CeO2 standard",
    "LaB6 50K field scan",
    "Water in quartz cell",
    "Ni sphere alignment",
    "Sample changer position 3",
    "Fe3O4 1.5K cooling",
    "Background, beam off",
)
ERRORS = (
    ("data", "Data file is truncated: no events in bank 3"),
    ("plugin", "ValueError: focus_banks must be between 1 and 6"),
    ("timeout", "Reduction exceeded its 3600 s limit"),
)
DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Shape:
    """How many runs each instrument gets and the names the requests use."""

    versions: int

    @property
    def runs_per_instrument(self) -> int:
        return max(1, round(self.versions / len(INSTRUMENTS) / (1 + RERUN_FRACTION)))

    @property
    def instrument(self) -> str:
        return INSTRUMENTS[len(INSTRUMENTS) // 2]

    @property
    def run_number(self) -> int:
        """A run of :attr:`instrument` in the middle of its history that was re-run."""
        middle = FIRST_RUN + self.runs_per_instrument // 2
        draw = _run_draws()
        index = INSTRUMENTS.index(self.instrument)
        for number in range(middle, FIRST_RUN + self.runs_per_instrument):
            if draw(index, number)[0]:
                return number
        return middle

    @property
    def experiment(self) -> str:
        return _experiment_ref(INSTRUMENTS.index(self.instrument), self.run_number)

    @property
    def deep_offset(self) -> int:
        """Issue 14's ``offset=40000`` of 50,000 runs, scaled: 80 % into one instrument's list."""
        return int(self.runs_per_instrument * 0.8)


def _experiment_ref(instrument_index: int, run_number: int) -> str:
    return str(
        2_000_000 + instrument_index * 10_000 + (run_number - FIRST_RUN) // RUNS_PER_EXPERIMENT
    )


def _run_draws() -> Callable[[int, int], tuple[bool, bool, bool, int]]:
    """(re-run?, version 0 in Error?, version 1 in Error?, title index) of one run: a pure
    function of the instrument and run number, so :class:`Shape` can find a re-run run."""

    def draw(instrument_index: int, run_number: int) -> tuple[bool, bool, bool, int]:
        rng = random.Random(SEED * 1_000_003 + instrument_index * 100_000_007 + run_number)
        return (
            rng.random() < RERUN_FRACTION,
            rng.random() < ERROR_FRACTION,
            rng.random() < ERROR_FRACTION,
            rng.randrange(len(TITLES)),
        )

    return draw


@dataclass
class LoadStats:
    versions: int = 0
    outputs: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.versions + self.outputs


RUN_COLUMNS = (
    "id", "instrument", "run_number", "run_version", "status", "message", "experiment_ref",
    "title", "data_path", "variables", "reason", "description", "submitted_by", "summary",
    "output_dir", "attempts", "processor", "detected_at", "queued_at", "started_at",
    "finished_at", "cancel_requested_at", "cancel_requested_by", "cancel_reason", "provenance",
    "error_category", "error_fingerprint", "error_signature", "variable_sources",
    "derived_from_version", "memory_mb", "from_step",
)  # fmt: skip
OUTPUT_COLUMNS = ("id", "run_id", "kind", "name", "size_bytes")
INSTRUMENT_COLUMNS = ("name", "is_paused", "created_at")


def _check_columns(connection: Connection) -> None:
    """Fail if the migrated tables' columns are not exactly the ones this loader fills."""
    inspector = inspect(connection)
    for table, ours in (
        ("reduction_runs", RUN_COLUMNS),
        ("run_outputs", OUTPUT_COLUMNS),
        ("instruments", INSTRUMENT_COLUMNS),
    ):
        theirs = {column["name"] for column in inspector.get_columns(table)}
        if theirs != set(ours):
            missing, extra = sorted(theirs - set(ours)), sorted(set(ours) - theirs)
            raise RuntimeError(
                f"the bench loader does not match the migrated table {table}: "
                f"columns not filled {missing}, columns that do not exist {extra}"
            )


def _stamp(moment: datetime) -> str:
    return moment.strftime(DATETIME)


def _versions(shape: Shape, end: datetime) -> Iterator[tuple[Any, ...]]:
    """Every run version's row, in :data:`RUN_COLUMNS` order, ids from 1."""
    runs = shape.runs_per_instrument
    step = HISTORY / runs
    start = end - HISTORY
    draw = _run_draws()
    variables = json.dumps({"sleep_s": 0.0})
    run_id = 0
    for position in range(runs):
        for index, instrument in enumerate(INSTRUMENTS):
            number = FIRST_RUN + position
            rerun, error0, error1, title = draw(index, number)
            queued = start + step * position + timedelta(seconds=index * 37)
            ref = _experiment_ref(index, number)
            versions = [(0, error0, queued)]
            if rerun:
                versions.append((1, error1, queued + timedelta(hours=6)))
            for version, failed, at in versions:
                run_id += 1
                category, reason = ERRORS[run_id % len(ERRORS)] if failed else ("", "")
                yield (
                    run_id,
                    instrument,
                    number,
                    version,
                    "Error" if failed else "Completed",
                    reason,
                    ref,
                    TITLES[title],
                    f"/archive/NDX{instrument}/data/{instrument}{number:08d}.nxs",
                    variables,
                    "rerun" if version else "detected",
                    "re-run with new calibration" if version else "",
                    "ada" if version else "autoreduce",
                    "" if failed else "reduced 6 banks",
                    f"/outputs/{instrument}/{ref}/{number}/v{version}",
                    1,
                    "processor-1",
                    _stamp(at - timedelta(milliseconds=10)),
                    _stamp(at),
                    _stamp(at + timedelta(seconds=2)),
                    _stamp(at + timedelta(seconds=40)),
                    None,
                    "",
                    "",
                    None,
                    category,
                    f"{run_id % 7:012x}" if failed else "",
                    reason[:300],
                    None,
                    0 if version else None,
                    None,  # memory_mb: the instrument's
                    "",  # from_step: not a pipeline re-run
                )


def _outputs(run_ids: Sequence[int], first_id: int) -> list[tuple[Any, ...]]:
    """Data and log for every version, a plot for every other one: 2.5 rows a version."""
    rows: list[tuple[Any, ...]] = []
    next_id = first_id
    for run_id in run_ids:
        kinds: tuple[tuple[str, str], ...] = (("data", "reduced.nxs"), ("log", "reduction.log"))
        if run_id % 2:
            kinds += (("plot", "plot.png"),)
        for kind, name in kinds:
            rows.append((next_id, run_id, kind, name, 1000 + run_id % 5000))
            next_id += 1
    return rows


def _insert_sql(paramstyle: str, table: str, columns: Sequence[str]) -> str:
    mark = "?" if paramstyle == "qmark" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


class _Loader:
    """A raw DBAPI connection set for a bulk load, one transaction per chunk.

    SQLite: no fsync, foreign keys off, a big cache (pragmas of this connection only, set
    outside any transaction); MariaDB: no unique or foreign key checks for this session. The
    connection is closed, not returned to the pool, so the API never gets its settings.
    """

    def __init__(self, database: Database) -> None:
        self.sqlite = database.dialect == "sqlite"
        self.raw = database.engine.raw_connection()
        self.paramstyle = database.engine.dialect.paramstyle
        cursor = self.raw.cursor()
        if self.sqlite:
            for pragma in ("synchronous=OFF", "foreign_keys=OFF", "cache_size=-262144"):
                cursor.execute(f"PRAGMA {pragma}")
        else:
            cursor.execute("SET unique_checks=0, foreign_key_checks=0")
        cursor.close()

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        cursor = self.raw.cursor()
        try:
            for start in range(0, len(rows), CHUNK):
                cursor.executemany(
                    _insert_sql(self.paramstyle, table, columns), rows[start : start + CHUNK]
                )
        finally:
            cursor.close()

    def begin(self) -> None:
        if self.sqlite:  # the engine turns the driver's own transactions off
            self.execute("BEGIN")

    def commit(self) -> None:
        if self.sqlite:
            self.execute("COMMIT")
        else:
            self.raw.commit()

    def execute(self, sql: str) -> None:
        cursor = self.raw.cursor()
        try:
            cursor.execute(sql)
            if cursor.description:
                cursor.fetchall()
        finally:
            cursor.close()

    def close(self) -> None:
        self.raw.invalidate()  # never back into the pool with the load's settings


def load(url: str, versions: int) -> LoadStats:
    """Fill the migrated database at ``url`` with ``versions`` run versions in issue 14's shape.

    MariaDB's statistics are refreshed after (``ANALYZE TABLE``, as InnoDB would do by itself
    after the load); SQLite gets no ``ANALYZE``, as a deployed database never runs one.
    """
    shape = Shape(versions)
    end = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    stats = LoadStats()
    began = time.perf_counter()
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            _check_columns(connection)
        loader = _Loader(database)
        try:
            loader.begin()
            created = _stamp(end - HISTORY)
            loader.insert(
                "instruments", INSTRUMENT_COLUMNS, [(name, False, created) for name in INSTRUMENTS]
            )
            loader.commit()
            chunk: list[tuple[Any, ...]] = []
            for row in _versions(shape, end):
                chunk.append(row)
                if len(chunk) == CHUNK:
                    _insert_chunk(loader, chunk, stats)
                    chunk = []
            if chunk:
                _insert_chunk(loader, chunk, stats)
            if not loader.sqlite:
                loader.execute("ANALYZE TABLE reduction_runs, run_outputs")
        finally:
            loader.close()
    finally:
        database.dispose()
    stats.seconds = time.perf_counter() - began
    return stats


def _insert_chunk(loader: _Loader, chunk: list[tuple[Any, ...]], stats: LoadStats) -> None:
    outputs = _outputs([row[0] for row in chunk], stats.outputs + 1)
    loader.begin()
    loader.insert("reduction_runs", RUN_COLUMNS, chunk)
    loader.insert("run_outputs", OUTPUT_COLUMNS, outputs)
    loader.commit()
    stats.versions += len(chunk)
    stats.outputs += len(outputs)
    stats.errors += sum(1 for row in chunk if row[4] == "Error")


class ServerTiming:
    """An ASGI wrapper that records each HTTP call's server time, in ms, into :attr:`last_ms`:
    from the call into the app to its last response body message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last_ms = float("nan")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.last_ms = (time.perf_counter() - began) * 1000
            await send(message)

        await self.app(scope, receive, timed)


@dataclass
class Measured:
    label: str
    kind: str  # page | list | detail
    server_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_sample: str = ""


@dataclass
class ScaleResult:
    configuration: str
    shape: Shape
    load: LoadStats | None = None
    requests: list[Measured] = field(default_factory=list)
    failure: str = ""


def _requests(shape: Shape) -> list[tuple[str, str, str]]:
    """(label, kind, path) of every request measured."""
    x, run, ref = shape.instrument, shape.run_number, shape.experiment
    return [
        ("/", "page", "/"),
        ("/instruments/X", "page", f"/instruments/{x}"),
        ("/instruments/X?status=Error", "page", f"/instruments/{x}?status=Error"),
        ("/runs/X/N", "page", f"/runs/{x}/{run}"),
        ("/experiments/REF", "page", f"/experiments/{ref}"),
        ("/failed", "page", "/failed"),
        ("/search?q=vanadium", "page", "/search?q=vanadium"),
        ("/search?q=experiment:REF", "page", f"/search?q=experiment:{ref}"),
        ("/admin", "page", "/admin"),
        ("GET /api/v1/runs", "list", "/api/v1/runs"),
        ("  ?instrument=X", "list", f"/api/v1/runs?instrument={x}"),
        ("  ?instrument=X&status=Error", "list", f"/api/v1/runs?instrument={x}&status=Error"),
        ("  ?status=Error", "list", "/api/v1/runs?status=Error"),
        (
            "  ?instrument=X&offset=deep",
            "list",
            f"/api/v1/runs?instrument={x}&offset={shape.deep_offset}",
        ),
        ("  ?q=REF", "list", f"/api/v1/runs?q={ref}"),
        ("  ?q=vanadium", "list", "/api/v1/runs?q=vanadium"),
        ("GET /api/v1/runs/X/N", "detail", f"/api/v1/runs/{x}/{run}"),
        ("GET /api/v1/instruments", "list", "/api/v1/instruments"),
    ]


def _settings(root: Path, url: str) -> Settings:
    instruments = {
        name: {
            "plugin": "noop",
            "lastruns": "{root}/NDX{instrument}/logs/lastruns.txt",
            "data": "{root}/NDX{instrument}/data/cycle_*/{instrument}{run_number:08d}.nxs",
        }
        for name in INSTRUMENTS
    }
    options: dict[str, Any] = {
        "data_dir": root / "data",
        "database_url": url,
        "broker_url": "sql://",
        "archive": {"root": root / "archive"},
        "instruments": instruments,
        "public_read": False,
    }
    return Settings(**options)


def _admin_cookie(settings: Settings) -> str:
    from rest_api.web.session import encode_session, session_secret

    user = {"name": "bench-admin", "role": "admin", "instruments": [], "source": "bench"}
    return encode_session(
        session_secret(settings), {"user": user, "csrf": secrets.token_urlsafe(16)}
    )


def _drive(settings: Settings, shape: Shape, repeats: int, budget_s: float) -> list[Measured]:
    from rest_api.app import create_app
    from rest_api.web.session import SESSION_COOKIE

    database = Database(settings.resolved_database_url)
    try:
        token = create_token(database, "bench-scale-admin", "admin")
        app = create_app(settings, database=database, relay=False)
        timing = ServerTiming(app)
        measured: list[Measured] = []
        with TestClient(timing, base_url="http://127.0.0.1") as client:
            client.cookies.set(SESSION_COOKIE, _admin_cookie(settings))
            api_headers = {"Authorization": f"Bearer {token}"}
            for label, kind, path in _requests(shape):
                headers = api_headers if path.startswith("/api/") else {}
                row = Measured(label, kind)
                for _ in range(WARMUP):
                    client.get(path, headers=headers)
                deadline = time.monotonic() + budget_s
                for _ in range(repeats):
                    response = client.get(path, headers=headers)
                    row.server_ms.append(timing.last_ms)
                    if response.status_code != 200:
                        row.errors += 1
                        reason = one_line(Exception(response.text), 160)
                        row.error_sample = row.error_sample or (
                            f"{path}: {response.status_code} {reason}"
                        )
                    if time.monotonic() > deadline:
                        break
                measured.append(row)
            measured.append(_posts(client, timing, settings, shape, api_headers, repeats))
        return measured
    finally:
        database.dispose()


def _posts(
    client: TestClient,
    timing: ServerTiming,
    settings: Settings,
    shape: Shape,
    headers: dict[str, str],
    repeats: int,
) -> Measured:
    """``POST /api/v1/runs`` of new runs of X, after the last loaded one (201 each)."""
    row = Measured("POST /api/v1/runs", "write")
    instrument = shape.instrument
    data = settings.archive.root / f"NDX{instrument}" / "data" / "cycle_1"
    data.mkdir(parents=True, exist_ok=True)
    first = FIRST_RUN + shape.runs_per_instrument + 1
    for index in range(WARMUP + repeats):
        number = first + index
        (data / f"{instrument}{number:08d}.nxs").touch()
        response = client.post(
            "/api/v1/runs", json={"instrument": instrument, "run_number": number}, headers=headers
        )
        if index >= WARMUP:
            row.server_ms.append(timing.last_ms)
        if response.status_code != 201:
            row.errors += 1
            reason = one_line(Exception(response.text), 160)
            row.error_sample = (
                row.error_sample or f"POST run {number}: {response.status_code} {reason}"
            )
    return row


BEFORE_REVISION = "0020"
"""The schema before issue 14's indexes, triggers and text index (migration 0021)."""
INSERT_VERSIONS = 20_000
INSERT_POSTS = 40


@dataclass
class InsertCost:
    """``POST /api/v1/runs`` server times on the schema before and after migration 0021."""

    configuration: str
    versions: int = INSERT_VERSIONS
    before_ms: list[float] = field(default_factory=list)
    after_ms: list[float] = field(default_factory=list)
    failure: str = ""


def _downgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from autoreduce.db.engine import MIGRATIONS

    database = Database(url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        database.dispose()


@contextmanager
def _poster(settings: Settings) -> Iterator[Callable[[int], float]]:
    """A function that POSTs run ``number`` of the first instrument and answers its
    server time in ms (its data file made first)."""
    from rest_api.app import create_app

    database = Database(settings.resolved_database_url)
    data = settings.archive.root / f"NDX{INSTRUMENTS[0]}" / "data" / "cycle_1"
    data.mkdir(parents=True, exist_ok=True)
    try:
        token = create_token(database, "bench-insert-admin", "admin")
        timing = ServerTiming(create_app(settings, database=database, relay=False))
        with TestClient(timing, base_url="http://127.0.0.1") as client:

            def post(number: int) -> float:
                (data / f"{INSTRUMENTS[0]}{number:08d}.nxs").touch()
                response = client.post(
                    "/api/v1/runs",
                    json={"instrument": INSTRUMENTS[0], "run_number": number},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if response.status_code != 201:
                    raise RuntimeError(f"POST run {number}: {response.status_code}")
                return timing.last_ms

            yield post
    finally:
        database.dispose()


def measure_insert_cost(
    kind: DatabaseKind, versions: int = INSERT_VERSIONS, posts: int = INSERT_POSTS
) -> InsertCost:
    """The same POSTs, alternating between a database at :data:`BEFORE_REVISION` and one at
    the head, both loaded with ``versions``: machine load falls on both alike."""
    result = InsertCost("SQLite" if kind == "sqlite" else "MariaDB", versions)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="autoreduce-bench-f-") as before_dir,
            tempfile.TemporaryDirectory(prefix="autoreduce-bench-f-") as after_dir,
            fresh_database(kind, Path(before_dir), name=f"{DATABASE_NAME}_before") as before,
            fresh_database(kind, Path(after_dir), name=f"{DATABASE_NAME}_after") as after,
        ):
            _downgrade(before, BEFORE_REVISION)
            load(before, versions)
            load(after, versions)
            first = FIRST_RUN + Shape(versions).runs_per_instrument + 1
            with (
                _poster(_settings(Path(before_dir), before)) as post_before,
                _poster(_settings(Path(after_dir), after)) as post_after,
            ):
                for index in range(WARMUP + posts):
                    timed = (post_before(first + index), post_after(first + index))
                    if index >= WARMUP:
                        result.before_ms.append(timed[0])
                        result.after_ms.append(timed[1])
    except Exception as error:  # the other database still runs
        result.failure = one_line(error)
    return result


def insert_cost_table(results: list[InsertCost]) -> Table:
    versions = results[0].versions if results else INSERT_VERSIONS
    table = Table(
        f"(f) Insert cost: POST /api/v1/runs before and after migration 0021 "
        f"({versions:,} versions loaded, alternating)",
        ["database", "n", "before p50", "after p50", "before p95", "after p95", "p50 ratio",
         "target", "met"],
    )  # fmt: skip
    for result in results:
        if result.failure:
            table.notes.append(f"{result.configuration}: not measured: {result.failure}")
            continue
        before = percentile(result.before_ms, 0.5)
        after = percentile(result.after_ms, 0.5)
        ratio = after / before if before else float("nan")
        table.add(
            result.configuration,
            len(result.after_ms),
            before,
            after,
            percentile(result.before_ms, 0.95),
            percentile(result.after_ms, 0.95),
            f"{ratio:.2f}x",
            f"≤ {TARGET_INSERT_RATIO:g}x",
            "yes" if ratio <= TARGET_INSERT_RATIO else "NO",
        )
    table.notes.append(
        "server time of the whole request (auth, metadata read, insert, outbox row); before = the "
        f"schema at revision {BEFORE_REVISION}, after = the head (indexes, run_counts triggers, "
        "FTS5 triggers / FULLTEXT)"
    )
    return table


def measure_one(kind: DatabaseKind, versions: int, repeats: int, budget_s: float) -> ScaleResult:
    configuration = "SQLite" if kind == "sqlite" else "MariaDB"
    result = ScaleResult(configuration, Shape(versions))
    try:
        with (
            tempfile.TemporaryDirectory(prefix="autoreduce-bench-f-") as tmp,
            fresh_database(kind, Path(tmp), name=DATABASE_NAME) as url,
        ):
            result.load = load(url, versions)
            result.requests = _drive(_settings(Path(tmp), url), result.shape, repeats, budget_s)
    except Exception as error:  # the other database still runs
        result.failure = one_line(error)
    return result


def measure(
    versions: int,
    repeats: int = 20,
    budget_s: float = 10.0,
    kinds: Sequence[DatabaseKind] = ("sqlite", "mariadb"),
) -> list[ScaleResult]:
    """Table (f) on each database in turn."""
    return [measure_one(kind, versions, repeats, budget_s) for kind in kinds]


TARGET_INSERT_RATIO = 1.2
"""Issue 14: the indexes may cost an insert at most 20 % more than before them."""


def _target(kind: str) -> tuple[str, float]:
    if kind == "write":  # compared with the figure before migration 0021 (docs/performance.md)
        return f"≤ {TARGET_INSERT_RATIO:g}x before", float("inf")
    if kind == "page":
        return f"p95 ≤ {TARGET_PAGE_P95_MS:g} ms", TARGET_PAGE_P95_MS
    if kind == "detail":
        return f"p95 ≤ {TARGET_DETAIL_P95_MS:g} ms", TARGET_DETAIL_P95_MS
    return f"p95 ≤ {TARGET_LIST_P95_MS:g} ms", TARGET_LIST_P95_MS


def scale_table(results: list[ScaleResult]) -> Table:
    versions = results[0].shape.versions if results else 0
    table = Table(
        f"(f) Pages and API reads at {versions:,} run versions (server time, sequential, warm)",
        ["request", "database", "n", "p50 ms", "p95 ms", "max ms", "errors", "target", "met"],
    )
    for result in results:
        if result.failure:
            table.notes.append(f"{result.configuration}: not measured: {result.failure}")
        if result.load is not None:
            stats = result.load
            table.notes.append(
                f"{result.configuration} load: {stats.versions:,} versions ({stats.errors:,} in "
                f"Error) + {stats.outputs:,} outputs in {stats.seconds:.1f} s = "
                f"{stats.rows / stats.seconds:,.0f} rows/s"
            )
    rows = {(r.configuration, m.label): m for r in results for m in r.requests}
    labels = list(dict.fromkeys(m.label for r in results for m in r.requests))
    missed: list[str] = []
    for label in labels:
        for result in results:
            measured = rows.get((result.configuration, label))
            if measured is None:
                continue
            target, limit = _target(measured.kind)
            p95 = percentile(measured.server_ms, 0.95)
            met = "yes" if p95 <= limit else "NO"
            if measured.kind == "write":
                met = "see note"
            if met == "NO":
                missed.append(f"{label.strip()} on {result.configuration} ({p95:,.0f} ms)")
            table.add(
                label,
                result.configuration,
                len(measured.server_ms),
                percentile(measured.server_ms, 0.50),
                p95,
                max(measured.server_ms, default=float("nan")),
                measured.errors,
                target,
                met,
            )
            if measured.error_sample:
                table.notes.append(f"error: {measured.error_sample}")
    if results:
        shape = results[0].shape
        table.notes.append(
            f"{len(INSTRUMENTS)} instruments x {shape.runs_per_instrument:,} runs, "
            f"{RERUN_FRACTION:.0%} re-run, {ERROR_FRACTION:.0%} of versions in Error, 2.5 outputs "
            f"a version; X = {shape.instrument}, N = {shape.run_number} (2 versions), REF = "
            f"{shape.experiment}, deep offset = {shape.deep_offset:,}"
        )
    table.notes.append(
        "server time = the ASGI call (routing, auth, queries, rendering) in-process through "
        "Starlette's TestClient; pages signed in as an admin, API with an admin token"
    )
    table.notes.append(
        "POST /api/v1/runs: compare with the same row measured before migration 0021's indexes, "
        "triggers and text index (docs/performance.md)"
    )
    table.notes.append(
        f"targets (issue 14): {len(missed)} missed" + (f" — {'; '.join(missed)}" if missed else "")
    )
    return table
