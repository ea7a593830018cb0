"""The search terms of ``q=`` (``autoreduce.search``) applied to a query of run versions.

Each term is one more WHERE clause (terms combine with AND). Which use an index, at a million
runs: plain words and quoted phrases (the text index of migration 0021: SQLite FTS5, MariaDB
FULLTEXT, over title, message, experiment and instrument), ``instrument:``, ``status:``,
``experiment:`` (exact, on the bare indexed column), ``date:`` (a range on ``queued_at``) and
``run:`` beside ``instrument:`` (the instrument and run number index). ``title:``, ``message:``,
``by:``, ``var.`` and ``/regex/`` read every row the other terms leave: combine them with an
indexed term on a large database.

A word matches whole words that begin with it, whatever the case (``vanadium`` finds "Vanadium
rod", ``vana`` too, ``anadium`` not); a phrase, its words in a row. A word the text index cannot
hold — one with characters other than letters and digits (``100%_``), and on MariaDB one shorter
than three characters or one of InnoDB's stopwords — is matched as a substring instead, which
reads every row the other terms leave.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import ColumnElement, Select, and_, column, false, func, or_, select, table, true
from sqlalchemy.dialects.mysql import match
from sqlalchemy.exc import DBAPIError

from autoreduce.db.engine import SQLITE_REGEX_MAX_CHARS
from autoreduce.db.models import ReductionRun
from autoreduce.search import (
    DateRange,
    FieldIs,
    RunRange,
    Term,
    TitleRegex,
    VariableIs,
    Words,
)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MARIADB_REGEXP_ERROR = 1139
"""MariaDB's "Got error … from regexp": a pattern its PCRE refuses, or one it gave up on."""

_EXACT_COLUMNS = {
    "status": ReductionRun.status,
    "experiment": ReductionRun.experiment_ref,
    "by": ReductionRun.submitted_by,
}
_SUBSTRING_COLUMNS = {"title": ReductionRun.title, "message": ReductionRun.message}
_WORD_COLUMNS = (
    ReductionRun.title,
    ReductionRun.message,
    ReductionRun.experiment_ref,
    ReductionRun.instrument,
)
"""The columns plain words search, in the text index's order (migration 0021)."""
_INDEXED_WORD = re.compile(r"[^\W_]+")
"""A word the text indexes hold as one token: letters and digits only."""
MARIADB_MIN_TOKEN = 3
"""InnoDB's ``innodb_ft_min_token_size`` default: shorter words are not in a FULLTEXT index."""
MARIADB_STOPWORDS = frozenset({
    "a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from", "how",
    "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "who", "will", "with", "und", "www",
})  # fmt: skip
"""InnoDB's default FULLTEXT stopwords (never indexed)."""
_runs_fts = table("runs_fts", column("rowid"), column("runs_fts"))


def apply_search(
    query: Select[ReductionRun],
    terms: Iterable[Term],
    *,
    dialect: str,
    instruments: Iterable[str],
) -> Select[ReductionRun]:
    """``query`` narrowed by every term; ``instruments`` are the configured names.

    ``dialect`` is the database's (``sqlite``, or ``mysql`` / ``mariadb``): the JSON functions
    of ``var.`` terms and the regex's case-insensitivity differ between them.
    """
    configured = {name.lower(): name for name in instruments}
    for term in terms:
        query = query.where(_condition(term, dialect, configured))
    return query


def _condition(term: Term, dialect: str, configured: dict[str, str]) -> ColumnElement[bool]:
    if isinstance(term, Words):
        return _words_condition(term.text, dialect)
    if isinstance(term, FieldIs):
        return _field_condition(term, configured)
    if isinstance(term, RunRange):
        bounds = [
            *([ReductionRun.run_number >= term.low] if term.low is not None else []),
            *([ReductionRun.run_number <= term.high] if term.high is not None else []),
        ]
        return and_(true(), *bounds)
    if isinstance(term, DateRange):
        return _date_condition(term)
    if isinstance(term, VariableIs):
        return _variable_condition(term, dialect)
    if isinstance(term, TitleRegex):
        # SQLite's REGEXP is Python's re, case-insensitive (autoreduce.db.engine); MariaDB's
        # is PCRE, case-sensitive or not by the column's collation: made insensitive here
        pattern = term.pattern if dialect == "sqlite" else f"(?i){term.pattern}"
        return ReductionRun.title.regexp_match(pattern)
    raise TypeError(f"not a search term: {term!r}")  # pragma: no cover - the union is closed


def _indexable(words: list[str]) -> bool:
    """Whether the text indexes hold every one of ``words`` as a token."""
    return bool(words) and all(_INDEXED_WORD.fullmatch(word) for word in words)


def _in_mariadb_fulltext(words: list[str]) -> bool:
    """Whether MariaDB's FULLTEXT index holds every one of ``words`` (length, stopwords)."""
    return _indexable(words) and all(
        len(word) >= MARIADB_MIN_TOKEN and word.lower() not in MARIADB_STOPWORDS for word in words
    )


def _words_condition(text: str, dialect: str) -> ColumnElement[bool]:
    """A word or phrase on the text index when it can hold it, else as a substring."""
    words = text.split()
    if _indexable(words) and dialect == "sqlite":
        # FTS5: the phrase, its last word a prefix ("vanadium ro"*); the words are plain tokens
        matched = select(_runs_fts.c.rowid).where(
            _runs_fts.c.runs_fts.op("MATCH")('"' + " ".join(words) + '"*')
        )
        return ReductionRun.id.in_(matched)
    if dialect != "sqlite" and _in_mariadb_fulltext(words):
        query = f"+{words[0]}*" if len(words) == 1 else '+"' + " ".join(words) + '"'
        columns: list[ColumnElement[str]] = [column.expression for column in _WORD_COLUMNS]
        return match(*columns, against=query).in_boolean_mode()
    return or_(*(column.contains(text, autoescape=True) for column in _WORD_COLUMNS))


WINDOW_VERSIONS = 10_000
"""Plain words are first looked for in (at most) the newest this-many versions that the other
filters select, by reading those rows (see :class:`WordWindow`)..."""
WINDOW_STEP = 1_000
"""...this many at a time, stopping once a page is found."""
_WINDOWED_FIELDS = frozenset({"instrument", "status", "experiment"})
"""Field terms whose index finds the window's versions without reading other rows."""


@dataclass(frozen=True)
class WordWindow:
    """Plain words, for a page of versions newest first.

    MariaDB's FULLTEXT finds a word's versions in no useful order: a word in 10 % of a million
    versions costs about 0.1 s to look up and seconds to sort by id, whatever the page (SQLite's
    FTS5 gives them in order, but ``id IN (its matches)`` still collects all 100,000: 30 ms for
    the page and 40 ms for its total). The newest versions of a common word are found much
    sooner by reading the newest versions the other filters select (up to
    :data:`WINDOW_VERSIONS` of them, on the filter's own index) and matching the words on each
    row; the text index then serves only what the window did not hold — a rare word, whose
    matches are few. ``scanned`` is the words as patterns on a row (:func:`_on_the_row`);
    ``indexed`` is the same words on the text index.
    """

    scanned: ColumnElement[bool]
    indexed: ColumnElement[bool]


def windowed_words(terms: list[Term], dialect: str) -> tuple[list[Term], WordWindow | None]:
    """The terms left for the query and the window of their plain words, when the text index
    holds them and every other term is on an index; else ``terms`` and None."""
    sqlite = dialect == "sqlite"
    held = _indexable if sqlite else _in_mariadb_fulltext
    words = [term for term in terms if isinstance(term, Words) and held(term.text.split())]
    others = [term for term in terms if not any(term is word for word in words)]
    patterns = [_row_pattern(term.text.split(), sqlite=sqlite) for term in words]
    if (
        not words
        or not all(isinstance(term, FieldIs) and term.field in _WINDOWED_FIELDS for term in others)
        or (sqlite and max(map(len, patterns)) > SQLITE_REGEX_MAX_CHARS)  # a long phrase
    ):
        return terms, None
    firsts = [term.text.split()[0] for term in words]
    scanned = and_(*map(_on_the_row, firsts, patterns))
    indexed = and_(*(_words_condition(term.text, dialect) for term in words))
    return others, WordWindow(scanned, indexed)


def _row_pattern(words: list[str], *, sqlite: bool) -> str:
    """``words`` as a pattern that matches a column where the text index would, any case.

    MariaDB's FULLTEXT (InnoDB's parser: letters, digits and ``_`` make a token): the first
    word where a token begins; a phrase, its words in a row, the last a whole token. SQLite's
    FTS5 (``unicode61``: letters and digits make a token, ``_`` parts them): the same, but a
    phrase's last word is a prefix too. The words are letters and digits only, nothing a
    pattern would read as syntax.
    """
    if sqlite:
        return r"(?i)(?<![^\W_])" + r"[\W_]+".join(words)
    ending = r"\b" if len(words) > 1 else ""  # a word is a prefix; a phrase ends a token
    return r"(?i)\b" + r"\W+".join(words) + ending


def _on_the_row(first: str, pattern: str) -> ColumnElement[bool]:
    """``pattern`` on each word column, after a substring test of the ``first`` word that spares
    most rows the regular expression (skipped for a word that is not ASCII, which SQLite's
    ``LIKE`` compares with its case)."""
    return or_(
        *(
            and_(column.contains(first, autoescape=True), column.regexp_match(pattern))
            if first.isascii()
            else column.regexp_match(pattern)
            for column in _WORD_COLUMNS
        )
    )


def _field_condition(term: FieldIs, configured: dict[str, str]) -> ColumnElement[bool]:
    if term.field == "instrument":  # as configured, whatever the case typed: GEM for gem
        return ReductionRun.instrument == configured.get(term.value.lower(), term.value)
    if term.field in _EXACT_COLUMNS:
        return _EXACT_COLUMNS[term.field] == term.value
    return _SUBSTRING_COLUMNS[term.field].contains(term.value, autoescape=True)


def _date_condition(term: DateRange) -> ColumnElement[bool]:
    """Versions queued from the first day's start (UTC) to the last day's end."""
    conditions: list[ColumnElement[bool]] = []
    if term.first is not None:
        start = max(datetime.combine(term.first, time(), tzinfo=UTC), EARLIEST)
        conditions.append(ReductionRun.queued_at >= start)
    if term.last is not None:
        if term.last.year < EARLIEST.year:
            return false()
        end = datetime.combine(term.last, time(), tzinfo=UTC)
        if term.last.year < 9999:  # the last day of 9999 ends after anything stored
            conditions.append(ReductionRun.queued_at < end + timedelta(days=1))
    return and_(true(), *conditions)


def _variable_condition(term: VariableIs, dialect: str) -> ColumnElement[bool]:
    """The variable holds this JSON scalar, of its type: 5 matches 5 and 5.0, never "5"."""
    path = f"$.{term.name}"
    value = term.value
    if dialect == "sqlite":
        json_type = func.json_type(ReductionRun.variables, path)
        extracted = func.json_extract(ReductionRun.variables, path)
        if isinstance(value, bool):
            return json_type == ("true" if value else "false")
        if isinstance(value, int | float):
            return and_(json_type.in_(("integer", "real")), extracted == value)
        return and_(json_type == "text", extracted == value)
    extracted = func.json_extract(ReductionRun.variables, path)
    json_type = func.json_type(extracted)
    if isinstance(value, bool):
        return and_(json_type == "BOOLEAN", extracted == ("true" if value else "false"))
    if isinstance(value, int | float):
        return and_(json_type.in_(("INTEGER", "UNSIGNED INTEGER", "DOUBLE")), extracted == value)
    return and_(json_type == "STRING", func.json_unquote(extracted) == value)


def regex_refused(error: DBAPIError) -> str | None:
    """The database's reason if ``error`` is its regex engine refusing a pattern, else None."""
    args: tuple[object, ...] = tuple(getattr(error.orig, "args", ()))
    if len(args) >= 2 and args[0] == MARIADB_REGEXP_ERROR:
        return str(args[1])
    return None
