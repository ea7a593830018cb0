"""Counting the rows of a mysqldump ``INSERT`` line, whatever the values hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autoreduce.backup import DumpCounter, rows_in


def quoted(value: str) -> str:
    """A string as mysqldump writes it."""
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\0", "\\0")
    )
    return f"'{escaped}'"


values = st.one_of(
    st.integers().map(str),
    st.just("NULL"),
    st.binary(max_size=8).map(lambda b: f"0x{b.hex()}" if b else "''"),
    st.text(max_size=30).map(quoted),
)


@given(st.lists(st.lists(values, min_size=1, max_size=5), min_size=1, max_size=20))
def test_every_row_is_counted_once(rows: list[list[str]]) -> None:
    line = "INSERT INTO `t` VALUES " + ",".join(f"({','.join(row)})" for row in rows) + ";\n"
    assert rows_in(line.encode("utf-8")) == len(rows)


def test_separators_inside_a_string_are_not_rows() -> None:
    line = b"INSERT INTO `t` VALUES (1,'a),(b\\'),(',NULL),(2,'\\\\'),(3,0x2829);"
    assert rows_in(line) == 3


def test_a_dump_counts_the_same_whether_rows_share_a_line_or_not() -> None:
    one_line = (
        b"CREATE TABLE `empty` (\n  `id` int\n);\n"
        b"INSERT INTO `alembic_version` VALUES ('0018');\n"
        b"INSERT INTO `t` VALUES (1,'a;'),(2,'b\\');\\n'),(3,NULL);\n"
        b"INSERT INTO `t` VALUES (4,'x');\n"
    )
    row_a_line = (
        b"CREATE TABLE `empty` (\n  `id` int\n);\n"
        b"INSERT INTO `alembic_version` VALUES\n('0018');\n"
        b"INSERT INTO `t` VALUES\n(1,'a;'),\n(2,'b\\');\\n'),\n(3,NULL);\n"
        b"INSERT INTO `t` VALUES\n(4,'x');\n"
    )
    for dump in (one_line, row_a_line):
        counter = DumpCounter()
        for line in dump.splitlines(keepends=True):
            counter.feed(line)
        assert counter.tables == {"empty": 0, "alembic_version": 1, "t": 4}
        assert counter.revision == "0018"
