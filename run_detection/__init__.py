"""Run detection: watches each instrument's ``lastruns.txt`` and posts new runs to the API.

``autoreduce detect`` calls :func:`serve`. The parts, one idea each:

- :mod:`run_detection.lastruns` parses the ``<INSTRUMENT> <RUN_NUMBER> <FLAG>`` line;
- :mod:`run_detection.cursor` persists the last run the API accepted, per instrument;
- :mod:`run_detection.client` posts a run to ``/api/v1/runs`` with retry and backoff;
- :mod:`run_detection.detector` decides which runs are due and submits them in order;
- :mod:`run_detection.watcher` drives the detector from file events and periodic rescans.

Data files are found by :mod:`autoreduce.archive`, the same code the API uses.

This package talks to the other services only over HTTP; it imports nothing of theirs.
"""

from run_detection.client import (
    ApiUnavailableError,
    RunRejectedError,
    RunsClient,
    SubmissionError,
    SubmittedRun,
    default_retry_policy,
)
from run_detection.cursor import CursorFileError, CursorStore, cursor_path
from run_detection.detector import RunDetector
from run_detection.lastruns import LastRunsError, parse_lastruns
from run_detection.watcher import LastRunsWatcher, serve

__all__ = [
    "ApiUnavailableError",
    "CursorFileError",
    "CursorStore",
    "LastRunsError",
    "LastRunsWatcher",
    "RunDetector",
    "RunRejectedError",
    "RunsClient",
    "SubmissionError",
    "SubmittedRun",
    "cursor_path",
    "default_retry_policy",
    "parse_lastruns",
    "serve",
]
