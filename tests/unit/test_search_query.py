"""Which searches MariaDB answers by reading the newest versions first (the word window)."""

from __future__ import annotations

import pytest
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import mysql

from autoreduce.search import FieldIs, Words, parse_search
from rest_api.search_query import windowed_words


@pytest.mark.parametrize(
    ("q", "left"),
    [
        ("vanadium", []),
        ('"vanadium rod" calibration', []),
        ("vanadium instrument:WISH status:Error",
         [FieldIs("instrument", "WISH"), FieldIs("status", "Error")]),
        ("vanadium experiment:2010001", [FieldIs("experiment", "2010001")]),
    ],
)  # fmt: skip
def test_plain_words_beside_indexed_fields_are_windowed_on_mariadb(q: str, left: list) -> None:
    terms, window = windowed_words(parse_search(q), "mysql")

    assert window is not None
    assert terms == left
    assert "REGEXP" in _sql(window.scanned) and "MATCH" in _sql(window.indexed)


@pytest.mark.parametrize(
    "q",
    [
        "vanadium title:rod",  # a substring: no index finds the window's versions
        "vanadium by:ada",
        "vanadium /rod/",
        "vanadium var.sleep_s:0",
        "vanadium run:1..9",
        "vanadium date:2026-01-01..2026-02-01",
        "ab",  # under FULLTEXT's 3 letters: a substring
        "the",  # an InnoDB stopword
        "100%_",  # not a token
        "instrument:WISH",  # no word at all
    ],
)
def test_other_searches_are_not_windowed(q: str) -> None:
    terms = parse_search(q)

    assert windowed_words(terms, "mysql") == (terms, None)


def test_sqlite_windows_every_word_fts5_holds() -> None:
    """FTS5 holds short words and stopwords too: only a word with other characters is not."""
    for q in ("ab", "the", "vanadium"):
        terms, window = windowed_words(parse_search(q), "sqlite")
        assert (terms, window is not None) == ([], True), q
    terms = parse_search("100%_")
    assert windowed_words(terms, "sqlite") == (terms, None)
    assert terms == [Words("100%_")]


def test_a_phrase_too_long_for_sqlites_regexp_is_left_to_fts5() -> None:
    """SQLite's REGEXP matches nothing past 200 characters of pattern: FTS5 answers instead."""
    long_phrase = parse_search('"' + " ".join(["ab"] * 40) + '"')
    short_phrase = parse_search('"' + " ".join(["ab"] * 20) + '"')

    assert windowed_words(long_phrase, "sqlite") == (long_phrase, None)
    assert windowed_words(short_phrase, "sqlite")[1] is not None


def _sql(condition: ColumnElement[bool]) -> str:
    return str(condition.compile(dialect=mysql.dialect()))
