"""Read sessions on real SQLite and MariaDB: they never block a writer, and they cannot write."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from autoreduce.db import Database, ReadOnlySessionError
from autoreduce.db.engine import SQLITE_BUSY_TIMEOUT_MS
from autoreduce.db.models import Instrument

WRITER_DEADLINE_S = SQLITE_BUSY_TIMEOUT_MS / 1000 + 10


def instrument_count(database: Database) -> int:
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(Instrument)) or 0)


def add_instrument(database: Database, name: str) -> None:
    with database.session() as session:
        session.add(Instrument(name=name, is_paused=False, created_at=datetime.now(UTC)))


def test_a_writer_commits_while_a_read_transaction_is_open(database: Database) -> None:
    add_instrument(database, "GEM")
    committed = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            add_instrument(database, "WISH")
            committed.set()
        except BaseException as error:
            failures.append(error)

    writer = threading.Thread(target=write)
    with database.read_session() as session:
        seen_before = session.scalar(select(func.count()).select_from(Instrument))
        writer.start()
        writer.join(WRITER_DEADLINE_S)
        seen_after = session.scalar(select(func.count()).select_from(Instrument))
        reader_still_open = session.in_transaction()

    assert failures == [] and committed.is_set()
    assert reader_still_open
    assert (seen_before, seen_after) == (1, 1)  # the reader kept its snapshot throughout
    assert instrument_count(database) == 2


def test_a_read_session_reads_what_was_committed(database: Database) -> None:
    add_instrument(database, "GEM")

    with database.read_session() as session:
        names = session.scalars(select(Instrument.name)).all()

    assert names == ["GEM"]


def test_adding_a_row_through_a_read_session_raises(database: Database) -> None:
    with pytest.raises(ReadOnlySessionError, match="read-only"), database.read_session() as session:
        session.add(Instrument(name="GEM", is_paused=False, created_at=datetime.now(UTC)))
        session.flush()

    assert instrument_count(database) == 0


def test_an_update_statement_through_a_read_session_raises(database: Database) -> None:
    add_instrument(database, "GEM")

    with pytest.raises(ReadOnlySessionError, match="read-only"), database.read_session() as session:
        session.execute(update(Instrument).values(is_paused=True))

    with database.read_session() as session:
        assert session.scalar(select(Instrument.is_paused)) is False


def test_raw_sql_writes_through_a_read_session_are_refused_by_the_database(
    database: Database,
) -> None:
    insert_sql = text(
        "INSERT INTO instruments (name, is_paused, created_at) VALUES ('GEM', 0, '2026-01-01')"
    )

    with pytest.raises(DBAPIError), database.read_session() as session:
        session.execute(insert_sql)

    assert instrument_count(database) == 0


def test_a_write_session_after_a_read_session_can_write(database: Database) -> None:
    for _ in range(3):  # the pooled connection goes from reading to writing and back
        with database.read_session() as session:
            session.scalar(select(func.count()).select_from(Instrument))
    add_instrument(database, "GEM")

    assert instrument_count(database) == 1
