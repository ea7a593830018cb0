"""The search grammar (DESIGN §4): text typed in a search box → a list of typed terms.

Terms are separated by whitespace and combine with AND:

- a plain word, or a quoted phrase (``"vanadium rod"``): in the title, experiment, instrument
  or message;
- ``field:value``, the value bare or quoted (``title:"vanadium rod"``): ``instrument:``,
  ``status:``, ``experiment:``, ``title:``, ``message:``, ``by:`` (who submitted the version),
  ``run:100..200`` (either end optional, or one number), ``date:2026-11-01..2026-11-20`` (ISO
  days, inclusive, either end optional, or one day) and ``var.<name>:<value>`` (a variable's
  value, a JSON scalar: a number, ``true``/``false``, else a string; quoted, always a string);
- ``/regex/``: matches the title (at most :data:`MAX_REGEX_CHARS` characters; nested unbounded
  repetition such as ``(a+)+`` is refused, it can take exponential time).

Inside quotes ``\\"`` is a quote and ``\\\\`` a backslash. Anything else raises
:class:`SearchSyntaxError` naming the offending token. This module knows no SQL: the API turns
the terms into a query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from re import _parser as _regex_parser  # type: ignore[attr-defined]

from autoreduce.db.models import RunStatus

MAX_RUN_NUMBER = 2**63 - 1
MAX_REGEX_CHARS = 200
MAX_VARIABLE_NAME_CHARS = 64
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**63 - 1
"""Integers a variable term may compare with: what both databases hold as a JSON integer."""

TEXT_FIELDS = ("instrument", "status", "experiment", "title", "message", "by")
FIELDS = (*TEXT_FIELDS, "run", "date", "var.<name>")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SearchSyntaxError(ValueError):
    """A search that cannot be parsed; ``token`` is the part of the text at fault."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token


@dataclass(frozen=True)
class Words:
    """A plain word or quoted phrase: a substring of the title, experiment, instrument, message."""

    text: str


@dataclass(frozen=True)
class FieldIs:
    """``field:value`` on a text column: ``instrument``, ``status``, ``experiment``, ``by``
    match exactly; ``title`` and ``message`` match a substring."""

    field: str
    value: str


@dataclass(frozen=True)
class RunRange:
    """``run:low..high``, both ends included; None is open."""

    low: int | None
    high: int | None


@dataclass(frozen=True)
class DateRange:
    """``date:first..last`` on the day the version was queued (UTC), both days included."""

    first: date | None
    last: date | None


@dataclass(frozen=True)
class VariableIs:
    """``var.name:value``: the version's variable ``name`` equals ``value`` and has its type."""

    name: str
    value: int | float | bool | str


@dataclass(frozen=True)
class TitleRegex:
    """``/pattern/``: the title matches ``pattern`` (case-insensitive, anywhere in it)."""

    pattern: str


Term = Words | FieldIs | RunRange | DateRange | VariableIs | TitleRegex


@dataclass(frozen=True)
class _Token:
    """One whitespace-separated piece of the text, as typed (``raw``) and its parts."""

    raw: str
    field: str | None  # the part before ':' of a field term, else None
    value: str  # the word, the phrase or the field's value, quotes removed
    quoted: bool
    regex: bool


def parse_search(text: str) -> list[Term]:
    """The terms of ``text``, in order; :class:`SearchSyntaxError` naming the token at fault."""
    return [_term(token) for token in _tokens(text)]


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return tokens
        token, position = _token_at(text, position)
        tokens.append(token)


def _token_at(text: str, start: int) -> tuple[_Token, int]:
    if text[start] == '"':
        value, end = _quoted(text, start, start)
        return _Token(text[start:end], None, value, quoted=True, regex=False), end
    if text[start] == "/":
        return _regex_at(text, start)
    position = start
    while position < len(text) and not text[position].isspace():
        if text[position] == '"':
            field = text[start:position]
            if not field.endswith(":") or ":" in field[:-1]:
                end = _word_end(text, position)
                raise SearchSyntaxError(
                    text[start:end],
                    f"stray quote in {text[start:end]!r} (quote a whole phrase or a field's "
                    'value: "vanadium rod", title:"vanadium rod")',
                )
            value, end = _quoted(text, start, position)
            return _Token(text[start:end], field[:-1], value, quoted=True, regex=False), end
        position += 1
    raw = text[start:position]
    field, colon, value = raw.partition(":")
    if not colon:
        return _Token(raw, None, raw, quoted=False, regex=False), position
    return _Token(raw, field, value, quoted=False, regex=False), position


def _word_end(text: str, position: int) -> int:
    while position < len(text) and not text[position].isspace():
        position += 1
    return position


def _quoted(text: str, start: int, quote: int) -> tuple[str, int]:
    """The phrase in the quotes opening at ``quote`` (in the token at ``start``); the end."""
    chars: list[str] = []
    position = quote + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text) and text[position + 1] in '"\\':
            chars.append(text[position + 1])
            position += 2
            continue
        if char == '"':
            end = position + 1
            if end < len(text) and not text[end].isspace():
                bad = text[start : _word_end(text, end)]
                raise SearchSyntaxError(bad, f"text after a closing quote in {bad!r}")
            return "".join(chars), end
        chars.append(char)
        position += 1
    raise SearchSyntaxError(text[start:], f"unterminated quote in {text[start:]!r}")


def _regex_at(text: str, start: int) -> tuple[_Token, int]:
    """``/pattern/``: it ends at the first unescaped ``/`` followed by a space or the end."""
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == "/" and (position + 1 == len(text) or text[position + 1].isspace()):
            raw = text[start : position + 1]
            return _Token(raw, None, text[start + 1 : position], quoted=False, regex=True), (
                position + 1
            )
        position += 1
    raw = text[start:]
    raise SearchSyntaxError(
        raw, f"unterminated regex in {raw!r} (a regex is /…/; quote a word that starts with /)"
    )


def _term(token: _Token) -> Term:
    if token.regex:
        return TitleRegex(_checked_regex(token.value, token.raw))
    if token.field is None:
        return Words(token.value)
    field = token.field.lower()
    if field.startswith("var."):
        return _variable(token, token.field[4:])
    if field == "run":
        return _run_range(token)
    if field == "date":
        return _date_range(token)
    if field == "status":
        return FieldIs("status", _status(token))
    if field in TEXT_FIELDS:
        return FieldIs(field, token.value)
    if not token.field:
        raise SearchSyntaxError(token.raw, f"no field name before ':' in {token.raw!r}")
    raise SearchSyntaxError(
        token.raw, f"unknown field {token.field!r} in {token.raw!r} (fields: {', '.join(FIELDS)})"
    )


def _status(token: _Token) -> str:
    for status in RunStatus:
        if status.value.lower() == token.value.lower():
            return status.value
    statuses = ", ".join(status.value for status in RunStatus)
    raise SearchSyntaxError(
        token.raw, f"unknown status {token.value!r} in {token.raw!r} (statuses: {statuses})"
    )


def _run_number(token: _Token, text: str) -> int | None:
    if text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise SearchSyntaxError(token.raw, f"run range {token.value!r} is not numbers")
    number = int(text)
    if number > MAX_RUN_NUMBER:
        raise SearchSyntaxError(
            token.raw, f"run number {text} in {token.raw!r} is past {MAX_RUN_NUMBER}"
        )
    return number


def _run_range(token: _Token) -> RunRange:
    if ".." not in token.value:
        number = _run_number(token, token.value)
        if number is None:
            raise SearchSyntaxError(token.raw, f"{token.raw!r} names no run (run:100..200)")
        return RunRange(number, number)
    low_text, _, high_text = token.value.partition("..")
    low, high = _run_number(token, low_text), _run_number(token, high_text)
    if low is None and high is None:
        raise SearchSyntaxError(token.raw, f"{token.raw!r} names no run (run:100..200)")
    if low is not None and high is not None and low > high:
        raise SearchSyntaxError(token.raw, f"run range {token.value!r} runs backwards")
    return RunRange(low, high)


def _day(token: _Token, text: str) -> date | None:
    if text == "":
        return None
    if _DAY.fullmatch(text) and text.isascii():
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise SearchSyntaxError(
        token.raw, f"date {text!r} in {token.raw!r} is not an ISO date (2026-11-01)"
    )


def _date_range(token: _Token) -> DateRange:
    if ".." not in token.value:
        day = _day(token, token.value)
        if day is None:
            raise SearchSyntaxError(token.raw, f"{token.raw!r} names no date (date:2026-11-01)")
        return DateRange(day, day)
    first_text, _, last_text = token.value.partition("..")
    first, last = _day(token, first_text), _day(token, last_text)
    if first is None and last is None:
        raise SearchSyntaxError(
            token.raw, f"{token.raw!r} names no date (date:2026-11-01..2026-11-20)"
        )
    if first is not None and last is not None and first > last:
        raise SearchSyntaxError(token.raw, f"date range {token.value!r} runs backwards")
    return DateRange(first, last)


def _variable(token: _Token, name: str) -> VariableIs:
    if len(name) > MAX_VARIABLE_NAME_CHARS or not _VARIABLE_NAME.fullmatch(name):
        raise SearchSyntaxError(
            token.raw,
            f"variable name {name!r} in {token.raw!r} is not a name (letters, digits, _)",
        )
    return VariableIs(name, _json_scalar(token))


def _json_scalar(token: _Token) -> int | float | bool | str:
    text = token.value
    if token.quoted:
        return text
    if text in ("true", "false"):
        return text == "true"
    if not _NUMBER.fullmatch(text) or not text.isascii():
        return text
    if re.fullmatch(r"-?\d+", text):
        number = int(text)
        if not MIN_JSON_INT <= number <= MAX_JSON_INT:
            raise SearchSyntaxError(token.raw, f"number {text} in {token.raw!r} is out of range")
        return number
    value = float(text)
    if not math.isfinite(value):
        raise SearchSyntaxError(token.raw, f"number {text} in {token.raw!r} is out of range")
    return value


def _checked_regex(pattern: str, raw: str) -> str:
    if not pattern:
        raise SearchSyntaxError(raw, "empty regex '//'")
    if len(pattern) > MAX_REGEX_CHARS:
        raise SearchSyntaxError(
            raw[:40], f"regex longer than {MAX_REGEX_CHARS} characters: {raw[:40]!r}…"
        )
    try:
        parsed = _regex_parser.parse(pattern)
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as error:
        raise SearchSyntaxError(raw, f"invalid regex {raw!r}: {error}") from None
    if _nested_repetition(parsed):
        raise SearchSyntaxError(
            raw,
            f"regex {raw!r} repeats a part that itself repeats (like (a+)+), which can take "
            "exponential time; write it without the nesting",
        )
    return pattern


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _nested_repetition(parsed: object) -> bool:
    """True if a part repeated more than once holds a part that is itself repeated so.

    ``parsed`` is Python's own parse of the pattern (``re._parser``), walked without recursion.
    Such patterns (``(a+)+``, ``(\\w*x)*``) can take exponential time, and neither Python's
    ``re`` nor the database's regex engine is given a time limit.
    """
    pending: list[tuple[object, bool]] = [(parsed, False)]
    while pending:
        node, inside_repeat = pending.pop()
        if isinstance(node, tuple) and len(node) == 2 and str(node[0]) in _REPEATS:
            _low, high, body = node[1]
            repeats = high > 1
            if repeats and inside_repeat:
                return True
            pending.append((body, inside_repeat or repeats))
        elif isinstance(node, list | tuple):
            pending.extend((item, inside_repeat) for item in node)
        elif isinstance(data := getattr(node, "data", None), list):  # a parsed sub-pattern
            pending.extend((item, inside_repeat) for item in data)
    return False
