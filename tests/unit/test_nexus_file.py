"""open_regular_file: a data file read through a bounded, read-once snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoreduce import nexus_file
from autoreduce.nexus_file import PAGE_BYTES, open_regular_file


def test_snapshot_reads_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.nxs"
    content = bytes(range(256)) * 40
    path.write_bytes(content)

    with open_regular_file(path) as snapshot:
        snapshot.seek(PAGE_BYTES - 3)
        head = snapshot.read(10)
        tail = snapshot.pread(len(content) - 5, 100)
        end = snapshot.seek(0, os.SEEK_END)

    assert head == content[PAGE_BYTES - 3 : PAGE_BYTES + 7]
    assert tail == content[-5:]
    assert end == len(content)


def test_a_page_once_read_does_not_change_when_the_file_does(tmp_path: Path) -> None:
    path = tmp_path / "run.nxs"
    path.write_bytes(b"a" * PAGE_BYTES)

    with open_regular_file(path) as snapshot:
        before = snapshot.pread(0, 4)
        path.write_bytes(b"b" * PAGE_BYTES)
        after = snapshot.pread(0, 4)

    assert before == after == b"aaaa"


def test_reading_past_the_budget_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nexus_file, "MAX_READ_BYTES", 2 * PAGE_BYTES)
    path = tmp_path / "run.nxs"
    path.write_bytes(b"x" * (3 * PAGE_BYTES))

    with open_regular_file(path) as snapshot, pytest.raises(OSError, match="more than"):
        snapshot.pread(0, 3 * PAGE_BYTES)


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "run.nxs"
    os.mkfifo(fifo)

    with pytest.raises(OSError, match="not a regular file"):
        open_regular_file(fifo)
