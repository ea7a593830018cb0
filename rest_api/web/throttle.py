"""Slowing down password guessing: failed sign-ins counted per (username, address).

After ``limit`` failures within ``window_s`` seconds, further attempts for that username from
that address are refused until the oldest failure leaves the window; a successful sign-in
clears the count. The counts live in this process's memory: they are lost on restart and not
shared between API workers (each worker counts on its own), which bounds guessing per worker.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_KEYS = 100_000
"""Past this many tracked keys, keys whose failures all left the window are forgotten."""


class FailureThrottle:
    """Failed attempts per key within a sliding window of ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def retry_after_s(self, key: tuple[str, str]) -> float:
        """0 if ``key`` may try now; else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) < self.limit:
                return 0.0
            return max(failures[-self.limit] + self.window_s - now, 0.0)

    def failed(self, key: tuple[str, str]) -> None:
        """Count one failure for ``key``."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= MAX_KEYS:
                self._forget_expired(now)
            failures = self._recent(key, now)
            failures.append(now)
            self._failures[key] = failures

    def succeeded(self, key: tuple[str, str]) -> None:
        """Forget ``key``'s failures."""
        with self._lock:
            self._failures.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window_s]:
            del self._failures[key]
