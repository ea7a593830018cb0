"""Create engines the same way everywhere; upgrade the schema with Alembic."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

logger = logging.getLogger("autoreduce.db")
P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION_LINE = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*["']([^"']+)["']\s*$""", re.M
)
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_REGEX_MAX_CHARS = 200
"""The longest pattern SQLite's ``REGEXP`` accepts (longer patterns match nothing)."""
READ_ONLY = "autoreduce_read_only"
"""The execution option that marks a connection's transactions read-only (see ``read_session``)."""


class ReadOnlySessionError(RuntimeError):
    """A write was attempted through :meth:`Database.read_session`: a programming error."""


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    if len(pattern) > SQLITE_REGEX_MAX_CHARS:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError):
        return None


def sqlite_regexp(pattern: Any, value: Any) -> bool:
    """SQLite's ``value REGEXP pattern``: Python's ``re.search``, case-insensitive like MariaDB's.

    A pattern longer than :data:`SQLITE_REGEX_MAX_CHARS`, one that does not compile, or a value
    that is not text matches nothing (never an error inside the query). The pattern runs over
    every row the rest of the query leaves: combine it with a term that narrows on an index.
    """
    if not isinstance(pattern, str) or not isinstance(value, str):
        return False
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(value) is not None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue, not fail.
    # The driver's own transaction handling is off (isolation_level=None below) so BEGIN
    # IMMEDIATE can take the write lock up front: no deadlock between two would-be writers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    dbapi_connection.create_function("regexp", 2, sqlite_regexp, deterministic=True)


def _sqlite_begin(conn: Any) -> None:
    # A write takes the write lock up front (BEGIN IMMEDIATE). A read starts deferred, so it
    # only takes a WAL snapshot and never waits for, nor holds up, the writer; query_only makes
    # SQLite refuse any write in it. The pragma outlives the transaction, so it is switched
    # (and its state remembered per DBAPI connection) whenever a pooled connection changes role.
    read_only = bool(conn.get_execution_options().get(READ_ONLY, False))
    if conn.info.get("query_only", False) != read_only:
        conn.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
        conn.info["query_only"] = read_only
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _server_begin(conn: Any) -> None:
    # MariaDB / MySQL: applies to the next transaction only, which is this one.
    if conn.get_execution_options().get(READ_ONLY, False):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError("cannot add, change or delete rows in a read-only session")


def _refuse_write_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("cannot run INSERT, UPDATE or DELETE in a read-only session")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and immediate transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 3600)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "begin", _server_begin)
    return engine


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic says "Context impl …" at INFO on every start; keep it to warnings."""
    alembic_logger = logging.getLogger("alembic")
    previous = alembic_logger.level
    alembic_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_logger.setLevel(previous)


@lru_cache(maxsize=1)
def _head_revision() -> str | None:
    """The one head of the migrations, read from their ``revision``/``down_revision`` lines;
    None when that is not plain (no file, several heads): the caller then asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text()):
            (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The revision the database says it is at; None without an ``alembic_version`` table or
    when it holds other than one row."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision`` with the Alembic migrations.

    Returns the revisions before and after; before is None when the database had no schema.
    A database already at the head is left alone without importing Alembic (about 25 MiB a
    service would otherwise hold for its lifetime: see docs/memory.md).
    """
    if revision == "head":
        head = _head_revision()
        if head is not None and _stored_revision(engine) == head:
            return head, head
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _quiet_alembic(), engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after


def safe_url(url: str) -> str:
    """``url`` with its password masked, fit for a log line or an error message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it that could be a secret
        return "<unparseable database URL>"


def is_unreachable(error: BaseException) -> bool:
    """True for errors that mean "the server is away" (gone, refused, lost), not bad SQL."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


class Database:
    """An engine and its session factories: :meth:`session` to write, :meth:`read_session`."""

    def __init__(self, url: str, *, max_outage_s: float = 300.0, **engine_kwargs: Any) -> None:
        self.url = url
        self.max_outage_s = max_outage_s
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{READ_ONLY: True})
        self.read_sessions = sessionmaker(reader, expire_on_commit=False)
        event.listen(self.read_sessions, "before_flush", _refuse_flush)
        event.listen(self.read_sessions, "do_orm_execute", _refuse_write_statement)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error.

        On SQLite the transaction takes the write lock when it begins (``BEGIN IMMEDIATE``), so
        two writers queue (up to the busy timeout) instead of deadlocking; use
        :meth:`read_session` for anything that only reads.
        """
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session in a read-only transaction, which never waits for a writer nor blocks one.

        On SQLite it begins deferred (a WAL snapshot, no write lock) with ``PRAGMA query_only``;
        on MariaDB it is ``SET TRANSACTION READ ONLY``. Adding, changing or deleting rows, or an
        INSERT / UPDATE / DELETE statement, raises :class:`ReadOnlySessionError`; raw SQL that
        writes is refused by the database itself (a :class:`~sqlalchemy.exc.DBAPIError`).
        """
        with self.read_sessions() as session, session.begin():
            yield session

    def when_reachable(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``work``, again and again while the database is unreachable.

        For writes that must not be lost to an outage (a finished run's result): retries with
        a growing wait (0.2 s doubling to 5 s) for up to ``max_outage_s``, then re-raises.
        ``work`` must run its own transaction, so a retry repeats all of it or none.
        """
        retrying = Retrying(
            retry=retry_if_exception(is_unreachable),
            stop=stop_after_delay(self.max_outage_s),
            wait=wait_exponential(multiplier=0.2, max=5),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        return retrying(work, *args, **kwargs)

    def upgrade(self) -> tuple[str | None, str | None]:
        """Migrate to the newest revision; (revision before, revision after)."""
        return upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
