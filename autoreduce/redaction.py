"""Keep secrets out of log records: tokens, passwords and the credentials of URLs.

:class:`SecretScrubber` is a logging filter put on every handler (:mod:`autoreduce.logs`): it
rewrites a record's message, its exception text and its ``extra`` values before any formatter
sees them, so neither the console nor the JSON-lines files nor Elasticsearch ever hold one.
:func:`scrub` is the same rewrite for one string, :func:`scrub_value` for nested JSON values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]*):[^/\s@]+@"
)
_BEARER = re.compile(r"(?i)\b(?P<kind>bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
TOKEN_PREFIX = "ar_"  # how an API token begins (here, so logging imports no database code)
_API_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{16,}")
_SECRET_WORDS = (
    r"password|passwd|pwd|secret|token|api[_-]?key|client[_-]?secret|access[_-]?token|"
    r"refresh[_-]?token|authorization|credentials?|session[_-]?key"
)
# key=value, key: value, "key": "value" (JSON), key='value'
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>\b[\w.-]*(?:" + _SECRET_WORDS + r")[\w.-]*)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"',;&)}\]]+)"
)
_SECRET_KEY = re.compile(r"(?i)(?:" + _SECRET_WORDS + r")")


def scrub(text: str) -> str:
    """``text`` with URL passwords, bearer tokens, API tokens and ``key=secret`` values masked."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m['kind']} {REDACTED}", text)
    text = _API_TOKEN.sub(TOKEN_PREFIX + REDACTED, text)
    return _KEY_VALUE.sub(_masked_pair, text)


def _masked_pair(match: re.Match[str]) -> str:
    if match["value"] == REDACTED or match["value"].endswith(REDACTED):
        return match[0]
    return f"{match['key']}{match['sep']}{REDACTED}"


def is_secret_key(key: str) -> bool:
    """A field named like a secret (``password``, ``db.token``, ``client_secret``…)."""
    return bool(_SECRET_KEY.search(key))


def scrub_value(value: Any, key: str = "") -> Any:
    """A JSON-like value with every string scrubbed and every secret-named field masked."""
    if key and is_secret_key(key) and isinstance(value, str | bytes | int) and value != "":
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: scrub_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    return value


_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class SecretScrubber(logging.Filter):
    """Rewrite each record so that no secret reaches a handler; never drops a record.

    The exception object itself is left alone (its text is in ``exc_text``, scrubbed): a
    formatter that reads it (the ECS one) scrubs what it writes with :func:`scrub_value`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw text, scrubbed
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_FIELDS and not key.startswith("_"):
                setattr(record, key, scrub_value(value, key))
        return True
