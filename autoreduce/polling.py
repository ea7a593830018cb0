"""Waiting without sleeping blindly: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold in time; the message names what was awaited."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "",
) -> T:
    """Call ``condition`` until it returns something truthy and return that.

    Raises :class:`WaitTimeout` after ``timeout_s`` seconds, naming ``what`` (or the condition).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{what or condition} not within {timeout_s:g} s")
        time.sleep(interval_s)
