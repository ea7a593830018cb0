"""Persisted cursors: survive a new instance, never move backwards, refuse a corrupt file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from run_detection.cursor import CursorFileError, CursorStore


@pytest.fixture
def cursor_file(tmp_path: Path) -> Path:
    return tmp_path / "run_detection" / "cursors.json"


def test_missing_file_means_no_cursor_yet(cursor_file: Path) -> None:
    store = CursorStore(cursor_file)

    assert store.get("GEM") is None
    assert not cursor_file.exists()


def test_advanced_cursor_is_read_back_by_a_new_instance(cursor_file: Path) -> None:
    CursorStore(cursor_file).advance("GEM", 123)
    CursorStore(cursor_file).advance("WISH", 44733)

    reopened = CursorStore(cursor_file)

    assert reopened.snapshot() == {"GEM": 123, "WISH": 44733}
    assert json.loads(cursor_file.read_text()) == {"GEM": 123, "WISH": 44733}


def test_cursor_never_moves_backwards(cursor_file: Path) -> None:
    store = CursorStore(cursor_file)
    store.advance("GEM", 10)

    with pytest.raises(ValueError, match="backwards"):
        store.advance("GEM", 9)

    assert store.get("GEM") == 10
    assert CursorStore(cursor_file).get("GEM") == 10


def test_advancing_to_the_same_run_is_a_no_op(cursor_file: Path) -> None:
    store = CursorStore(cursor_file)
    store.advance("GEM", 10)

    store.advance("GEM", 10)

    assert store.get("GEM") == 10


def test_operator_reset_may_move_the_cursor_back(cursor_file: Path) -> None:
    store = CursorStore(cursor_file)
    store.advance("GEM", 10)

    store.reset("GEM", 4)

    assert CursorStore(cursor_file).get("GEM") == 4


def test_write_leaves_no_temporary_file_behind(cursor_file: Path) -> None:
    store = CursorStore(cursor_file)
    for run_number in range(5):
        store.advance("GEM", run_number)

    assert sorted(os.listdir(cursor_file.parent)) == ["cursors.json"]


def test_failed_write_keeps_the_previous_file_and_cursor(
    cursor_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CursorStore(cursor_file)
    store.advance("GEM", 10)

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.advance("GEM", 11)

    assert store.get("GEM") == 10
    assert json.loads(cursor_file.read_text()) == {"GEM": 10}
    assert sorted(os.listdir(cursor_file.parent)) == ["cursors.json"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"GEM": 12', "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"GEM": "12"}', "must be a non-negative integer"),
        ('{"GEM": -1}', "must be a non-negative integer"),
        ('{"GEM": true}', "must be a non-negative integer"),
        ('{"GEM": 1.5}', "must be a non-negative integer"),
    ],
)
def test_corrupt_file_refuses_to_load_naming_the_file(
    cursor_file: Path, content: str, reason: str
) -> None:
    cursor_file.parent.mkdir(parents=True)
    cursor_file.write_text(content)

    with pytest.raises(CursorFileError) as raised:
        CursorStore(cursor_file)

    assert str(cursor_file) in str(raised.value)
    assert reason in str(raised.value)
