"""The detector's HTTP client: submits one detected run with ``POST /api/v1/runs``.

201 (created) and 200 (the run already existed) mean the API accepted the run. Connection
errors, timeouts, 5xx and 429 are transient: the request is retried with capped exponential
backoff by a tenacity policy the caller may replace (tests bound it; the service retries until
it is stopped). Any other status is a rejection the detector cannot fix by retrying at once
(:class:`RunRejectedError`). The bearer token is sent in a header and never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import tenacity

logger = logging.getLogger("autoreduce.detect.client")

ACCEPTED_STATUSES = frozenset({200, 201})
TRANSIENT_STATUSES = frozenset({429})
CONNECT_TIMEOUT_S = 3.05
"""Seconds to wait for the TCP connection to the API."""
READ_TIMEOUT_S = 10.0
"""Seconds to wait for the API's answer once connected."""
MAX_BACKOFF_S = 5.0
"""The longest wait between two attempts of the default retry policy."""


class SubmissionError(Exception):
    """A run could not be submitted; the detector keeps it and tries again later."""


class RunRejectedError(SubmissionError):
    """The API answered with a status that retrying at once will not change (e.g. 401, 422)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {reason}")


class ApiUnavailableError(SubmissionError):
    """The API stayed unreachable (or answered 5xx/429) until the retry policy gave up."""


class _TransientError(Exception):
    """One failed attempt worth retrying; carries the one-line reason for the log."""


@dataclass(frozen=True)
class SubmittedRun:
    """The API's acceptance of one run: ``status`` is 201 (new) or 200 (already recorded)."""

    status: int
    latency_ms: float


def default_retry_policy(stop: threading.Event | None = None) -> tenacity.Retrying:
    """Retry forever with exponential backoff and jitter, capped at :data:`MAX_BACKOFF_S`.

    With ``stop``, setting it ends the wait between attempts at once and gives up (so a service
    shutting down is not held by an unreachable API).
    """
    if stop is None:
        return tenacity.Retrying(
            stop=tenacity.stop_never,
            wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=MAX_BACKOFF_S, jitter=0.1),
        )
    return tenacity.Retrying(
        stop=lambda _state: stop.is_set(),
        wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=MAX_BACKOFF_S, jitter=0.1),
        sleep=lambda wait_s: _wait_unless_stopped(stop, wait_s),
    )


def _wait_unless_stopped(stop: threading.Event, wait_s: float) -> None:
    stop.wait(wait_s)


class RunsClient:
    """Submits runs to the REST API at ``api_url`` with the detector's bearer token."""

    def __init__(
        self,
        api_url: str,
        api_token: str,
        *,
        retry_policy: tenacity.Retrying | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        """``retry_policy`` decides when to stop and how long to wait between attempts; which
        failures are retried is fixed here (connection errors, timeouts, 5xx, 429)."""
        self.runs_url = api_url.rstrip("/") + "/api/v1/runs"
        self._timeout_s = (connect_timeout_s, read_timeout_s)
        self._retry_policy = retry_policy or default_retry_policy()
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_token}"

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def submit_run(self, instrument: str, run_number: int, detected_at: datetime) -> SubmittedRun:
        """POST one run; return once the API accepted it (201 or 200).

        The API finds the run's data file itself from the instrument's template (the detector
        checks it exists first, with the same code); a run whose file the API cannot see yet
        is answered 409 and submitted again on the next check.

        ``detected_at`` must be timezone-aware; it is sent in UTC as ISO 8601 ending in ``Z``.

        Raises:
            RunRejectedError: the API answered another 4xx (or any status not worth retrying).
            ApiUnavailableError: transient failures lasted until the retry policy gave up.
        """
        body = {
            "instrument": instrument,
            "run_number": run_number,
            "detected_at": iso_utc(detected_at),
        }
        retrying = self._retry_policy.copy(
            retry=tenacity.retry_if_exception_type(_TransientError),
            before_sleep=lambda state: _log_retry(instrument, run_number, state),
            reraise=True,
        )
        try:
            return retrying(self._post_once, body)
        except _TransientError as error:
            raise ApiUnavailableError(f"API at {self.runs_url} unavailable: {error}") from error

    def _post_once(self, body: dict[str, Any]) -> SubmittedRun:
        started_s = time.perf_counter()
        try:
            response = self._session.post(self.runs_url, json=body, timeout=self._timeout_s)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            raise _TransientError(f"{type(error).__name__}: {_first_line(error)}") from error
        except requests.RequestException as error:
            raise SubmissionError(
                f"cannot post to {self.runs_url}: {_first_line(error)}"
            ) from error
        latency_ms = (time.perf_counter() - started_s) * 1000.0
        status = response.status_code
        if status in ACCEPTED_STATUSES:
            return SubmittedRun(status=status, latency_ms=latency_ms)
        reason = _reason(response)
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise _TransientError(f"HTTP {status}: {reason}")
        raise RunRejectedError(status, reason)


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with milliseconds and a ``Z``: ``2026-11-24T06:40:00.123Z``."""
    if moment.tzinfo is None:
        raise ValueError("detected_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason(response: requests.Response) -> str:
    """The API's one-line reason: JSON ``detail`` when there is one, else the HTTP reason."""
    try:
        content = response.json()
    except ValueError:
        content = None
    detail = content.get("detail") if isinstance(content, dict) else None
    if detail is None:
        return response.reason or "no reason given"
    text = detail if isinstance(detail, str) else repr(detail)
    return _first_line(text)[:300]


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else ""


def _log_retry(instrument: str, run_number: int, state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait_s = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "submitting %s run %d failed (attempt %d: %s); retrying in %.1f s",
        instrument,
        run_number,
        state.attempt_number,
        error,
        wait_s,
    )
