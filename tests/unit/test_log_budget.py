"""The allowance of a run version's shipped log: lines and bytes, then one marker line."""

from __future__ import annotations

from pathlib import Path

from queue_processor.log_shipper import MAX_LINE_CHARS, TRUNCATED_MARKER, LineReader, LogBudget


def test_lines_within_the_allowance_are_all_admitted() -> None:
    budget = LogBudget(lines=10, size_bytes=10_000)

    assert budget.admit(["a", "b", "c"]) == ["a", "b", "c"]
    assert not budget.exhausted


def test_past_the_line_limit_one_marker_ends_the_log() -> None:
    budget = LogBudget(lines=3, size_bytes=10_000)

    admitted = budget.admit([f"line {n}" for n in range(10)])

    assert admitted == ["line 0", "line 1", TRUNCATED_MARKER]
    assert budget.admit(["more"]) == []


def test_past_the_byte_limit_one_marker_ends_the_log_within_the_limit() -> None:
    limit = 200
    budget = LogBudget(lines=1000, size_bytes=limit)

    admitted = budget.admit(["x" * 40] * 10)

    assert admitted[-1] == TRUNCATED_MARKER
    assert admitted.count(TRUNCATED_MARKER) == 1
    assert sum(len(line.encode()) for line in admitted) <= limit


def test_an_allowance_already_spent_by_an_earlier_attempt_admits_nothing() -> None:
    budget = LogBudget(lines=100, size_bytes=10_000, exhausted=True)

    assert budget.admit(["again"]) == []


def test_the_reader_returns_complete_lines_and_keeps_the_unfinished_one(tmp_path: Path) -> None:
    log = tmp_path / "reduction.log"
    reader = LineReader(log)
    assert reader.read_lines() == []  # not written yet

    log.write_bytes(b"first\r\nsecond\nthi")
    assert reader.read_lines() == ["first", "second"]
    with log.open("ab") as more:
        more.write(b"rd\nlast, no newline")
    assert reader.read_lines() == ["third"]
    assert reader.read_lines(final=True) == ["last, no newline"]
    reader.close()


def test_the_reader_cuts_a_very_long_line_and_replaces_bad_bytes(tmp_path: Path) -> None:
    log = tmp_path / "reduction.log"
    log.write_bytes(b"y" * (MAX_LINE_CHARS * 2) + b"\n\xff\xfe ok\n")
    reader = LineReader(log)

    long_line, bad = reader.read_lines()

    assert len(long_line) == MAX_LINE_CHARS and long_line.endswith("…")
    assert bad == "\ufffd\ufffd ok"
    reader.close()


def test_the_reader_does_not_follow_a_symlinked_log(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not ship\n")
    (tmp_path / "reduction.log").symlink_to(secret)

    assert LineReader(tmp_path / "reduction.log").read_lines(final=True) == []
