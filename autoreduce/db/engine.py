"""Create engines the same way everywhere; upgrade the schema with Alembic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
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
SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


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
    return create_engine(url, **kwargs)


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


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision`` with the Alembic migrations.

    Returns the revisions before and after; before is None when the database had no schema.
    """
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
    """An engine and its session factory."""

    def __init__(self, url: str, *, max_outage_s: float = 300.0, **engine_kwargs: Any) -> None:
        self.url = url
        self.max_outage_s = max_outage_s
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
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
