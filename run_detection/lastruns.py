"""Parse an instrument's ``lastruns.txt``: one line ``<INSTRUMENT> <RUN_NUMBER> <FLAG>``.

The instrument control software rewrites the file at the end of every run, e.g.
``WISH 00044733 0``. Anything that is not exactly such a line for the expected instrument is
rejected with a :class:`LastRunsError` whose message is a one-line reason an operator can act on.
"""

from __future__ import annotations

import re

MAX_RUN_NUMBER = 2**63 - 1
"""The largest run number the database can hold (a signed 64-bit integer)."""

_DIGITS = re.compile(r"[0-9]+")
_SIGNED_INTEGER = re.compile(r"[+-]?[0-9]+")
_EXPECTED_FORMAT = "expected '<INSTRUMENT> <RUN_NUMBER> <FLAG>'"
_SHOWN_CHARS = 60


class LastRunsError(ValueError):
    """The content of a ``lastruns.txt`` is not a valid line; ``str(error)`` is the reason."""


def parse_lastruns(text: str, expected_instrument: str) -> int:
    """Return the run number held in ``text``, the content of ``expected_instrument``'s file.

    The line must hold exactly three whitespace-separated tokens: the instrument name, the run
    number (ASCII digits, usually zero-padded, between 0 and :data:`MAX_RUN_NUMBER`) and an
    integer flag. Leading and trailing whitespace, including the trailing newline, is ignored.

    The instrument token must equal ``expected_instrument`` exactly: the comparison is
    case-sensitive (configured instrument names are upper case), so ``wish`` is not ``WISH``.

    Raises:
        LastRunsError: the file is empty, holds more than one line, a half-written line (fewer
            than three tokens), too many tokens, another instrument's name, a run number that is
            not a non-negative integer, or a flag that is not an integer.
    """
    line = text.strip()
    if not line:
        raise LastRunsError("empty file")
    if len(line.splitlines()) > 1:
        raise LastRunsError(f"more than one line ({_EXPECTED_FORMAT}): {_shown(line)!r}")
    tokens = line.split()
    if len(tokens) < 3:
        raise LastRunsError(
            f"half-written line: {len(tokens)} of 3 tokens ({_EXPECTED_FORMAT}): {_shown(line)!r}"
        )
    if len(tokens) > 3:
        raise LastRunsError(
            f"wrong token count: {len(tokens)} tokens ({_EXPECTED_FORMAT}): {_shown(line)!r}"
        )
    instrument, run_token, flag_token = tokens
    if instrument != expected_instrument:
        raise LastRunsError(
            f"instrument name {_shown(instrument)!r} is not {expected_instrument!r}"
        )
    return _run_number(run_token, flag_token)


def _run_number(run_token: str, flag_token: str) -> int:
    if _SIGNED_INTEGER.fullmatch(run_token) and run_token.startswith("-"):
        raise LastRunsError(f"negative run number {run_token}")
    if not _DIGITS.fullmatch(run_token):
        raise LastRunsError(f"run number {_shown(run_token)!r} is not a number")
    run_number = int(run_token)
    if run_number > MAX_RUN_NUMBER:
        raise LastRunsError(f"run number {_shown(run_token)} is out of range")
    if not _SIGNED_INTEGER.fullmatch(flag_token):
        raise LastRunsError(f"flag {_shown(flag_token)!r} is not an integer")
    return run_number


def _shown(text: str) -> str:
    """``text`` shortened for a one-line log message."""
    if len(text) <= _SHOWN_CHARS:
        return text
    return text[: _SHOWN_CHARS - 3] + "..."
