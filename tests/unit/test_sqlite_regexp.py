"""SQLite's REGEXP, answered by Python's re: case-insensitive, bounded, never an error."""

from __future__ import annotations

import pytest

from autoreduce.db.engine import SQLITE_REGEX_MAX_CHARS, sqlite_regexp


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("van.*rod", "Vanadium ROD", True),
        ("^rod", "Vanadium rod", False),
        ("rod$", "Vanadium rod", True),
        ("(", "(", False),
        ("a" * (SQLITE_REGEX_MAX_CHARS + 1), "a" * 500, False),
        ("a" * SQLITE_REGEX_MAX_CHARS, "a" * 500, True),
        (None, "text", False),
        ("text", None, False),
        ("1", 1, False),
    ],
)
def test_sqlite_regexp_matches_like_a_search_and_never_raises(
    pattern: object, value: object, matches: bool
) -> None:
    assert sqlite_regexp(pattern, value) is matches
