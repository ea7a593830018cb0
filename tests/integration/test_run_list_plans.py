"""The run list at scale (issue 14): the plans of its queries, counts kept by the database, and
reads that never hold up a write — on SQLite and MariaDB.

The plan tests load 20,000 run versions in the benchmark's shape (``bench.scale.load``), send
real requests, catch the SQL they run and ask the database to EXPLAIN it: a list, filter or
search that stops using its index, or starts sorting every match, fails here rather than at a
facility's millionth run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select, update

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunCount
from autoreduce.search import parse_search
from autoreduce.tokens import create_token
from bench import scale
from rest_api.app import create_app
from rest_api.routes import runs as runs_module
from rest_api.search_query import apply_search
from tests.api_client import RUNS, run_body

VERSIONS = 20_000


@dataclass
class Loaded:
    client: TestClient
    database: Database
    shape: scale.Shape
    headers: dict[str, str]
    statements: list[tuple[str, Any]]

    def statements_of(self, path: str) -> list[tuple[str, Any]]:
        """The SQL (and parameters) that answering ``path`` ran against reduction_runs."""
        self.statements.clear()
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == 200, response.text
        return [(sql, params) for sql, params in self.statements if "reduction_runs" in sql]

    def plan(self, sql: str, params: Any) -> list[str]:
        """The database's plan of ``sql``, one line per step."""
        sqlite = self.database.dialect == "sqlite"
        with self.database.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, params
            ).all()
        if sqlite:
            return [str(row[3]) for row in rows]
        # MariaDB: table, access type, key, extra
        return [f"{row[2]} type={row[3]} key={row[5]} extra={row[9]}" for row in rows]


@pytest.fixture
def loaded(database: Database, tmp_path: Path) -> Iterator[Loaded]:
    scale.load(database.url, VERSIONS)
    settings = scale._settings(tmp_path, database.url)
    token = create_token(database, "plans-admin", "admin")
    statements: list[tuple[str, Any]] = []

    def caught(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if not sql.startswith("EXPLAIN"):
            statements.append((sql, params))

    event.listen(database.engine, "before_cursor_execute", caught)
    try:
        app = create_app(settings, database=database, relay=False)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield Loaded(
                client,
                database,
                scale.Shape(VERSIONS),
                {"Authorization": f"Bearer {token}"},
                statements,
            )
    finally:
        event.remove(database.engine, "before_cursor_execute", caught)


def _page_query(statements: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The statement that finds the page's ids (newest first)."""
    pages = [
        (sql, params) for sql, params in statements if "ORDER BY reduction_runs.id DESC" in sql
    ]
    assert len(pages) == 1, statements
    return pages[0]


def _count_query(statements: list[tuple[str, Any]]) -> tuple[str, Any]:
    counts = [(sql, params) for sql, params in statements if "count(*)" in sql]
    assert len(counts) == 1, statements
    return counts[0]


# (request, the index SQLite must use, MariaDB's) — ``None``: the primary key, in id order
LISTS: list[tuple[str, str | None, str | None]] = [
    ("/api/v1/runs", None, "PRIMARY"),
    ("/api/v1/runs?instrument={x}", "ix_runs_instrument_id", "ix_runs_instrument_id"),
    (
        "/api/v1/runs?instrument={x}&status=Error",
        "ix_runs_instrument_status_id",
        "ix_runs_instrument_status_id",
    ),
    ("/api/v1/runs?status=Error", "ix_runs_status_id", "ix_runs_status_id"),
    ("/api/v1/runs?instrument={x}&after=5000", "ix_runs_instrument_id", "ix_runs_instrument_id"),
    ("/api/v1/runs?instrument={x}&offset=800", "ix_runs_instrument_id", "ix_runs_instrument_id"),
]


def test_each_list_and_filter_reads_its_index_in_order_without_sorting(loaded: Loaded) -> None:
    for path, sqlite_index, mariadb_index in LISTS:
        sql, params = _page_query(loaded.statements_of(path.format(x=loaded.shape.instrument)))
        plan = loaded.plan(sql, params)
        text = f"{path}:\n" + "\n".join(plan)

        if loaded.database.dialect == "sqlite":
            assert "TEMP B-TREE" not in text, text
            if sqlite_index is None:  # rowid order, stops at the limit
                assert plan == ["SCAN reduction_runs"], text
            else:
                assert f"COVERING INDEX {sqlite_index} " in text, text
        else:
            assert "filesort" not in text and "temporary" not in text, text
            assert f"key={mariadb_index} " in plan[0], text
            assert "type=ALL" not in text, text


# (request, whether the text index serves part of the page: the word is rare in the newest versions)
WORDS: list[tuple[str, bool]] = [
    ("/api/v1/runs?q=vanadium", False),
    ('/api/v1/runs?q="vanadium rod"', False),
    ("/api/v1/runs?q=vanadium&instrument={x}", False),
    ("/api/v1/runs?q=vanadium&status=Error", False),
    ("/api/v1/runs?q=vanadium&instrument={x}&status=Error", False),
    ("/api/v1/runs?q=vanadium&after=15000", False),
    ("/api/v1/runs?q=vanadium instrument:{x}", False),
    ("/api/v1/runs?q=zirconium", True),
    ("/api/v1/runs?q={ref}", True),
]


def test_a_word_is_read_in_the_newest_versions_in_index_order_then_on_the_text_index(
    loaded: Loaded,
) -> None:
    """A common word is found by reading the newest versions on the filter's own index, a
    thousand at a time, never sorting them; the text index serves only what those did not hold
    (sorting, on MariaDB, only its own matches), and never by reading the whole table."""
    sqlite = loaded.database.dialect == "sqlite"
    for path, indexed in WORDS:
        path = path.format(x=loaded.shape.instrument, ref=loaded.shape.experiment)
        statements = loaded.statements_of(path)
        on_index = [sql for sql, _ in statements if ("runs_fts" if sqlite else "MATCH (") in sql]
        assert bool(on_index) == indexed, (path, statements)
        assert [sql for sql, _ in statements if "REGEXP" in sql], (path, statements)
        for sql, params in statements:
            plan = loaded.plan(sql, params)
            text = f"{path}:\n{sql}\n" + "\n".join(plan)
            if sqlite and "runs_fts" in sql:
                assert "SCAN runs_fts VIRTUAL TABLE" in text, text
                assert "SCAN reduction_runs" not in text, text
            elif sqlite and "ORDER BY reduction_runs.id DESC" in sql:
                assert "TEMP B-TREE" not in text, text
            elif not sqlite:
                assert "reduction_runs type=ALL" not in text, text
                if "MATCH (" in sql:
                    assert "type=fulltext key=ft_runs_text" in text, text
                elif "ORDER BY reduction_runs.id DESC" in sql:
                    assert "filesort" not in text and "temporary" not in text, text


def test_reading_rows_finds_the_same_versions_as_the_text_index(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The versions the window's patterns find are those the text index finds, page after page,
    also across the window's edge (a small window here), for words that begin inside a token
    (``_`` is part of a token for MariaDB, not for SQLite) and for a phrase."""
    titles = [
        "x_vanadium can",  # one token "x_vanadium": vanadium does not begin it
        "vanadium_rod 5",  # a token that begins with vanadium
        "Pre-VANADIUM scan",  # a word after a hyphen, other case
        "vanadiumrod",  # a prefix of a longer word
        "rod vanadium",  # the phrase's words the other way round
        "Vanadium, rod",  # the phrase's words with a comma between
        "calibrated vanadium rods",  # the phrase's last word a prefix of the title's
    ]
    _set_newest_titles(loaded.database, titles)
    monkeypatch.setattr(runs_module, "WINDOW_STEP", 7)
    monkeypatch.setattr(runs_module, "WINDOW_VERSIONS", 21)
    for q in ("vanadium", '"vanadium rod"', '"vanadium ro"', "rod", "calibration", "zirconium"):
        expected = _fulltext_ids(loaded.database, q)
        for after in (None, expected[3] if len(expected) > 3 else None):
            pages: list[int] = []
            total = None
            for offset in range(0, 60, 4):
                query = f"/api/v1/runs?q={q}&limit=4&offset={offset}"
                body = loaded.client.get(
                    query + (f"&after={after}" if after else ""), headers=loaded.headers
                ).json()
                pages += [item["id"] for item in body["items"]]
                total = total or (body["total"], body["total_exact"])
            older = [i for i in expected if after is None or i < after]
            assert pages == older[:60], (q, after)
            count, exact = total or (0, True)
            assert count <= len(expected) and (count == len(expected) or not exact), (q, total)


def _set_newest_titles(database: Database, titles: list[str]) -> None:
    """Give the newest versions these titles (a message with none of the words)."""
    with database.session() as session:
        newest = list(
            session.scalars(
                select(ReductionRun.id).order_by(ReductionRun.id.desc()).limit(len(titles))
            )
        )
        for run_id, title in zip(newest, titles, strict=True):
            session.execute(
                update(ReductionRun).where(ReductionRun.id == run_id).values(title=title)
            )


def _fulltext_ids(database: Database, q: str) -> list[int]:
    """Every version ``q`` matches on the text index alone, newest first."""
    query = apply_search(
        select(ReductionRun.id), parse_search(q), dialect=database.dialect, instruments=[]
    )
    with database.read_session() as session:
        return list(session.scalars(query.order_by(ReductionRun.id.desc())))


def test_field_terms_use_their_index(loaded: Loaded) -> None:
    path = f"/api/v1/runs?q=experiment:{loaded.shape.experiment}"
    sql, params = _page_query(loaded.statements_of(path))
    text = "\n".join(loaded.plan(sql, params))

    if loaded.database.dialect == "sqlite":
        assert "COVERING INDEX ix_runs_experiment_queued" in text, text
    else:  # the experiment's few hundred versions are sorted, not the table
        assert "key=ix_runs_experiment_queued" in text and "type=ALL" not in text, text


def test_a_total_reads_at_most_the_bound(loaded: Loaded) -> None:
    sql, _ = _count_query(loaded.statements_of("/api/v1/runs"))

    assert "LIMIT" in sql
    body = loaded.client.get("/api/v1/runs", headers=loaded.headers).json()
    assert (body["total"], body["total_exact"]) == (10_000, False)


def test_each_instruments_latest_run_is_one_index_lookup_in_one_statement(loaded: Loaded) -> None:
    """The overview and ``/instruments`` find every instrument's latest run in one statement of
    a lookup per instrument at the end of ``uq_run_version``: no sort, no scan."""
    statements = loaded.statements_of("/api/v1/instruments")
    [(sql, params)] = [(sql, params) for sql, params in statements if "latest_0" in sql]
    text = "\n".join(loaded.plan(sql, params))

    assert sql.count("ORDER BY") == len(scale.INSTRUMENTS), sql
    if loaded.database.dialect == "sqlite":
        assert "TEMP B-TREE" not in text and "SCAN reduction_runs" not in text, text
        # uq_run_version is SQLite's autoindex of the unique constraint
        searches = "SEARCH reduction_runs USING COVERING INDEX sqlite_autoindex_reduction_runs_1"
        assert text.count(searches) == len(scale.INSTRUMENTS), text
    else:
        assert "filesort" not in text and "type=ALL" not in text.replace("<", " "), text
        assert text.count("key=uq_run_version ") == len(scale.INSTRUMENTS), text


def test_instruments_read_the_counts_the_database_keeps(loaded: Loaded) -> None:
    statements = loaded.statements_of("/api/v1/instruments")

    assert not [sql for sql, _ in statements if "GROUP BY" in sql.upper()], statements
    body = loaded.client.get("/api/v1/instruments", headers=loaded.headers).json()
    with loaded.database.read_session() as session:
        truth = {
            (instrument, status): count
            for instrument, status, count in session.execute(
                select(ReductionRun.instrument, ReductionRun.status, func.count()).group_by(
                    ReductionRun.instrument, ReductionRun.status
                )
            )
        }
    shown = {
        (item["name"], status): count
        for item in body
        for status, count in item["run_counts"].items()
        if count
    }
    assert shown == truth


def _counts(database: Database) -> dict[tuple[str, str], int]:
    with database.read_session() as session:
        return {
            (row.instrument, row.status): row.runs
            for row in session.scalars(select(RunCount))
            if row.runs
        }


def test_run_counts_follow_inserts_state_changes_and_deletes(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    headers = auth("detector")
    for number in (1, 2, 3):
        assert app_client.post(RUNS, json=run_body(number), headers=headers).status_code == 201
    assert _counts(db) == {("GEM", "Queued"): 3}

    with db.session() as session:
        session.execute(
            update(ReductionRun).where(ReductionRun.run_number <= 2).values(status="Processing")
        )
        session.execute(
            update(ReductionRun).where(ReductionRun.run_number == 1).values(status="Completed")
        )
        session.execute(update(ReductionRun).values(title="no state change"))
    assert _counts(db) == {("GEM", "Queued"): 1, ("GEM", "Processing"): 1, ("GEM", "Completed"): 1}

    with db.session() as session:
        session.execute(delete(ReductionRun).where(ReductionRun.run_number == 2))
    assert _counts(db) == {("GEM", "Queued"): 1, ("GEM", "Completed"): 1}
    listed = app_client.get("/api/v1/instruments", headers=auth("admin")).json()
    gem = next(item for item in listed if item["name"] == "GEM")
    assert (gem["run_counts"]["Queued"], gem["run_counts"]["Completed"]) == (1, 1)


def test_a_post_is_not_held_up_by_a_long_read_transaction(
    app_client: TestClient, auth: Callable[..., dict[str, str]], db: Database
) -> None:
    headers = auth("detector")
    with db.read_session() as reading:
        before = reading.scalar(select(func.count()).select_from(ReductionRun))

        # a read transaction is open (its snapshot taken): the write goes ahead at once —
        # on SQLite a write lock taken by the read would make this wait out the busy timeout
        response = app_client.post(RUNS, json=run_body(7), headers=headers)

        assert response.status_code == 201, response.text
        assert reading.scalar(select(func.count()).select_from(ReductionRun)) == before
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ReductionRun)) == before + 1
