"""Failures a scientist can triage: every Error run carries a category and a fingerprint.

The *category* says which kind of thing went wrong (DESIGN §4):

- ``plugin``: the reduction raised, returned something it may not, or the plugin cannot be used
  for the run at all (not installed, refused the run's variables — configuration errors are
  mapped here: they are fixed where the plugin is configured);
- ``data``: the run's input is missing or unreadable (the data file check, or an ``OSError``
  about the data file raised inside the plugin), or a value read from it cannot be used;
- ``timeout`` and ``memory``: the reduction passed its ``timeout_s`` or ``memory_mb``;
- ``crash``: the process died (a signal, an exit without a verdict, a processor that died);
- ``infrastructure``: database, broker, storage or the processor's own configuration.

The *fingerprint* names the cause, so that identical failures group whatever run they hit: the
first 12 hex digits of the SHA-1 of the category, the plugin, the exception's type, the plugin
frame it was raised in (``module:function``, no line number) and the message with its numbers,
paths and addresses normalised away. The *signature* is the same cause as a short text to show.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Any

FINGERPRINT_HEX_DIGITS = 12
SIGNATURE_CHARS = 300


class ErrorCategory(enum.StrEnum):
    """What kind of thing failed; every run in Error carries one."""

    @classmethod
    def known(cls, value: str) -> bool:
        """True if ``value`` names a category."""
        return value in cls._value2member_map_

    PLUGIN = "plugin"
    DATA = "data"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASH = "crash"
    INFRASTRUCTURE = "infrastructure"


_QUOTED_PATH = re.compile(r"""(['"])/[^'"]*\1""")
_PATH = re.compile(r"(?<![\w.])(?:~|\.{1,2})?/[^\s'\",:;()\[\]{}]+")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SPACES = re.compile(r"\s+")


def normalise_message(message: str) -> str:
    """``message`` with what differs from run to run replaced: paths, addresses, numbers.

    ``"no data in /archive/GEM00000012.nxs after 3.5 s"`` becomes
    ``"no data in <path> after <n> s"``; whitespace is collapsed.
    """
    text = _QUOTED_PATH.sub("<path>", message)
    text = _PATH.sub("<path>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class Failure:
    """Why a run is in Error: its category, fingerprint (12 hex digits) and signature."""

    category: ErrorCategory
    fingerprint: str
    signature: str

    def columns(self) -> dict[str, Any]:
        """The run's columns for this failure (for a ``transition``'s values)."""
        return {
            "error_category": self.category.value,
            "error_fingerprint": self.fingerprint,
            "error_signature": self.signature,
        }


NO_FAILURE_COLUMNS: dict[str, Any] = {
    "error_category": "",
    "error_fingerprint": "",
    "error_signature": "",
}
"""The columns of a run that is not (or no longer) failing."""


def classify(
    category: ErrorCategory,
    reason: str,
    *,
    plugin: str = "",
    exception_type: str = "",
    frame: str = "",
) -> Failure:
    """The failure of a run in ``category`` with the one-line ``reason`` its ``message`` holds.

    For a plugin's exception, ``exception_type`` (``RuntimeError``) and ``frame``
    (``plugins.noop:_fail``, the innermost frame in the plugin's code) name where it came from.
    """
    normalised = normalise_message(reason)
    cause = "\x1f".join((category.value, plugin, exception_type, frame, normalised))
    digest = hashlib.sha1(cause.encode("utf-8"), usedforsecurity=False).hexdigest()
    where = f" in {frame}" if frame else (f" in {plugin}" if plugin else "")
    what = exception_type or category.value
    signature = f"{what}{where}: {normalised}"
    if len(signature) > SIGNATURE_CHARS:
        signature = signature[: SIGNATURE_CHARS - 1] + "…"
    return Failure(category, digest[:FINGERPRINT_HEX_DIGITS], signature)


def raising_frame(error: BaseException, package: str) -> str:
    """``module:function`` of the innermost frame of ``error``'s traceback in ``package``.

    ``package`` is the plugin's top-level package (``plugins`` for ``plugins.noop``): the frame
    where the plugin's own code raised or called what raised, not autoreduce's or a library's.
    Without such a frame, the innermost frame of all; ``""`` without a traceback.
    """
    innermost = ""
    inside = ""
    traceback = error.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        module = str(traceback.tb_frame.f_globals.get("__name__", "?"))
        innermost = f"{module}:{code.co_name}"
        if module == package or module.startswith(f"{package}."):
            inside = innermost
        traceback = traceback.tb_next
    return inside or innermost
