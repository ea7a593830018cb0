"""The detector's decisions: which runs of an instrument are due, and submitting them in order.

:class:`RunDetector` holds no threads. ``check_instrument(name)`` reads the instrument's
``lastruns.txt``, compares its run number with the persisted cursor and submits every run after
the cursor, in order, advancing the cursor after each run the API accepts. It stops at the first
run that cannot be submitted yet (data file missing or ambiguous, API unavailable or rejecting);
that run is tried again on the next check, so no run is ever skipped.

Every problem is logged once, with its reason, when it first appears; while it persists,
repeated checks log it at DEBUG only, so a 5 s rescan does not flood the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import tenacity

from autoreduce.archive import AmbiguousDataFileError, DataFileError, locate_data_file
from autoreduce.settings import Settings
from run_detection.client import (
    ApiUnavailableError,
    RunRejectedError,
    RunsClient,
    SubmissionError,
    default_retry_policy,
)
from run_detection.cursor import CursorStore, cursor_path
from run_detection.lastruns import LastRunsError, parse_lastruns

logger = logging.getLogger("autoreduce.detect")

MAX_LASTRUNS_BYTES = 4096
"""A ``lastruns.txt`` longer than this (bytes) is malformed without being read in full."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class RunDetector:
    """Submits each instrument's new runs to the API, one synchronous check at a time."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: RunsClient,
        cursors: CursorStore,
        instruments: list[str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Watch ``instruments`` (default: every configured instrument).

        Raises:
            ValueError: an instrument is not configured in ``settings``.
        """
        chosen = list(settings.instruments) if instruments is None else list(instruments)
        unknown = sorted(set(chosen) - set(settings.instruments))
        if unknown:
            raise ValueError(
                f"instrument(s) {', '.join(unknown)} not configured "
                f"(configured: {', '.join(sorted(settings.instruments)) or 'none'})"
            )
        self.settings = settings
        self.instruments = list(dict.fromkeys(chosen))
        self.client = client
        self.cursors = cursors
        self._clock = clock
        self._locks = {name: threading.Lock() for name in self.instruments}
        self._last_problem: dict[str, object] = {}
        self._unconfirmed_malformed: dict[str, str] = {}
        self._detected_at: dict[tuple[str, int], datetime] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        instruments: list[str] | None = None,
        stop: threading.Event | None = None,
        retry_policy: tenacity.Retrying | None = None,
    ) -> RunDetector:
        """A detector with the API client and cursor file the settings describe.

        ``retry_policy`` (a ``tenacity.Retrying``) replaces the default, which retries until
        ``stop`` is set.

        Raises:
            CursorFileError: the cursor file exists but is not valid.
            ValueError: an instrument is not configured.
        """
        client = RunsClient(
            settings.api_url,
            settings.api_token,
            retry_policy=retry_policy or default_retry_policy(stop),
        )
        cursors = CursorStore(cursor_path(settings))
        return cls(settings, client=client, cursors=cursors, instruments=instruments)

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    def start_from(self, from_run: int) -> None:
        """Set every chosen instrument's cursor to ``from_run - 1`` (``autoreduce detect --from``).

        The next check submits ``from_run`` up to the run in each ``lastruns.txt``; runs the API
        already holds are answered 200 and are not recorded twice.
        """
        if from_run < 1:
            raise ValueError(f"--from must be a run number of at least 1, not {from_run}")
        for instrument in self.instruments:
            self.cursors.reset(instrument, from_run - 1)

    def check_all(self) -> dict[str, list[int]]:
        """Check every instrument; one instrument's failure is logged and never stops the others."""
        return {instrument: self.check_safely(instrument) for instrument in self.instruments}

    def check_safely(self, instrument: str) -> list[int]:
        """:meth:`check_instrument`, logging any unexpected error instead of raising it."""
        try:
            return self.check_instrument(instrument)
        except Exception:
            logger.exception("checking %s failed unexpectedly; will retry", instrument)
            return []

    def check_instrument(self, instrument: str) -> list[int]:
        """Submit what is due for ``instrument``; return the run numbers the API accepted, in order.

        First sight (no cursor): the run in the file becomes the cursor and nothing is submitted.
        A malformed file, another instrument's name or a run below the cursor is logged with its
        reason and ignored.
        """
        if instrument not in self._locks:
            raise ValueError(f"{instrument} is not one of the watched instruments")
        with self._locks[instrument]:
            current = self._read_current_run(instrument)
            if current is None:
                return []
            cursor = self.cursors.get(instrument)
            if cursor is None:
                self.cursors.advance(instrument, current)
                self._clear_problem(instrument)
                logger.info(
                    "first sight of %s: cursor set to run %d, nothing submitted",
                    instrument,
                    current,
                )
                return []
            if current < cursor:
                self._report_problem(
                    instrument,
                    ("backwards", current, cursor),
                    logging.WARNING,
                    f"{instrument} run number went backwards: lastruns says {current}, "
                    f"cursor is {cursor}; ignored until a later run",
                )
                return []
            if current == cursor:
                self._clear_problem(instrument)
                return []
            return self._submit_due_runs(instrument, cursor, current)

    def _submit_due_runs(self, instrument: str, cursor: int, current: int) -> list[int]:
        accepted: list[int] = []
        for run_number in range(cursor + 1, current + 1):
            if not self._submit_run(instrument, run_number):
                break
            self.cursors.advance(instrument, run_number)
            self._detected_at.pop((instrument, run_number), None)
            accepted.append(run_number)
        if accepted and accepted[-1] == current:
            self._clear_problem(instrument)
        return accepted

    def _submit_run(self, instrument: str, run_number: int) -> bool:
        """Try to submit one run; True once the API accepted it."""
        detected_at = self._detected_at.setdefault((instrument, run_number), self._clock())
        pattern = self.settings.data_pattern(instrument, run_number)
        try:
            data_path = locate_data_file(self.settings, instrument, run_number)
        except DataFileError as error:
            self._report_problem(
                instrument,
                ("refused", run_number, str(error)),
                logging.ERROR,
                f"{instrument} run {run_number} held: {error}",
            )
            return False
        except AmbiguousDataFileError as error:
            self._report_problem(
                instrument,
                ("ambiguous", run_number, tuple(error.paths)),
                logging.ERROR,
                f"{instrument} run {run_number} held: {error}; an operator must remove the "
                "extra files",
            )
            return False
        if data_path is None:
            self._report_problem(
                instrument,
                ("waiting", run_number),
                logging.INFO,
                f"{instrument} run {run_number} waiting for its data file {pattern}",
            )
            return False
        return self._post_run(instrument, run_number, data_path, detected_at)

    def _post_run(
        self, instrument: str, run_number: int, data_path: Path, detected_at: datetime
    ) -> bool:
        try:
            submitted = self.client.submit_run(instrument, run_number, detected_at)
        except RunRejectedError as error:
            self._report_problem(
                instrument,
                ("rejected", run_number, error.status, error.reason),
                logging.ERROR,
                f"API rejected {instrument} run {run_number} ({data_path}): HTTP {error.status}: "
                f"{error.reason}; will retry on the next check",
            )
            return False
        except ApiUnavailableError as error:
            logger.warning(
                "%s run %d not submitted, will retry on the next check: %s",
                instrument,
                run_number,
                error,
            )
            return False
        except SubmissionError as error:
            self._report_problem(
                instrument,
                ("submission", run_number, str(error)),
                logging.ERROR,
                f"{instrument} run {run_number} not submitted: {error}; will retry",
            )
            return False
        logger.info(
            "submitted %s run %d data=%s status=%d latency_ms=%.1f",
            instrument,
            run_number,
            data_path,
            submitted.status,
            submitted.latency_ms,
        )
        return True

    def _read_current_run(self, instrument: str) -> int | None:
        """The run number in ``instrument``'s file, or None (reason logged) when there is none."""
        path = self.settings.lastruns_path(instrument)
        try:
            with path.open("rb") as lastruns:
                content = lastruns.read(MAX_LASTRUNS_BYTES + 1)
        except FileNotFoundError:
            self._report_problem(
                instrument,
                ("no file",),
                logging.WARNING,
                f"{instrument} lastruns file {path} does not exist (yet); will keep checking",
            )
            return None
        except OSError as error:
            self._report_problem(
                instrument,
                ("unreadable", str(error)),
                logging.ERROR,
                f"cannot read {instrument} lastruns file {path}: {error}",
            )
            return None
        text = content.decode("utf-8", errors="replace")
        try:
            if len(content) > MAX_LASTRUNS_BYTES:
                raise LastRunsError(f"file longer than {MAX_LASTRUNS_BYTES} bytes")
            run_number = parse_lastruns(text, instrument)
        except LastRunsError as error:
            self._malformed(instrument, path, text, error)
            return None
        self._unconfirmed_malformed.pop(instrument, None)
        if _kind(self._last_problem.get(instrument)) in _FILE_PROBLEMS:
            self._clear_problem(instrument)
        return run_number

    def _malformed(self, instrument: str, path: Path, text: str, error: LastRunsError) -> None:
        """Report a malformed file once it is read twice in a row with the same content.

        An instrument rewriting the file in place truncates it first; a check that runs between
        the truncation and the write sees an empty or half-written line that the next event
        corrects. Waiting for a second identical read (the rescan guarantees one) keeps such
        transient states out of the log while every lasting one is still reported.
        """
        if self._unconfirmed_malformed.get(instrument) != text:
            self._unconfirmed_malformed[instrument] = text
            logger.debug("%s lastruns file %s unreadable for now: %s", instrument, path, error)
            return
        self._report_problem(
            instrument,
            ("malformed", text),
            logging.WARNING,
            f"{instrument} lastruns file {path} ignored: {error}",
        )

    def _report_problem(self, instrument: str, key: object, level: int, message: str) -> None:
        """Log ``message`` at ``level`` when the problem ``key`` is new, at DEBUG while it lasts."""
        if self._last_problem.get(instrument) == key:
            logger.debug("%s (still)", message)
            return
        self._last_problem[instrument] = key
        logger.log(level, "%s", message)

    def _clear_problem(self, instrument: str) -> None:
        self._last_problem.pop(instrument, None)


_FILE_PROBLEMS = frozenset({"no file", "unreadable", "malformed"})


def _kind(problem_key: object) -> object:
    """The first element of a problem key (its kind), None for no problem."""
    return problem_key[0] if isinstance(problem_key, tuple) and problem_key else None
