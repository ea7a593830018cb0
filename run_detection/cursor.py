"""Per-instrument cursors: the last run the API accepted, persisted so a restart loses nothing.

The cursors live in one JSON object, ``{"GEM": 123, "WISH": 44733}``, at
``<data_dir>/run_detection/cursors.json``. Every change rewrites the whole file atomically (a
temporary file in the same directory, flushed to disk, then ``os.replace``), so a crash leaves
either the old or the new content, never half of it.

A file that cannot be read as such an object is an error that stops the detector from starting
(:class:`CursorFileError`, naming the file): treating it as empty would silently re-baseline
every instrument on the run in its ``lastruns.txt`` and skip the runs in between.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from autoreduce.settings import Settings

logger = logging.getLogger("autoreduce.detect.cursor")


class CursorFileError(RuntimeError):
    """The cursor file exists but is not a JSON object of instrument name to run number."""


def cursor_path(settings: Settings) -> Path:
    """Where the detector keeps its cursors: ``<data_dir>/run_detection/cursors.json``."""
    return settings.data_dir / "run_detection" / "cursors.json"


class CursorStore:
    """The persisted cursors of every instrument; thread-safe, one process at a time."""

    def __init__(self, path: Path) -> None:
        """Load the cursors from ``path`` (absent means no cursor yet).

        Raises:
            CursorFileError: the file exists but is unreadable or not valid.
        """
        self.path = path
        self._lock = threading.Lock()
        self._cursors: dict[str, int] = _load(path)

    def get(self, instrument: str) -> int | None:
        """The last run of ``instrument`` accepted by the API, or None before the first sight."""
        with self._lock:
            return self._cursors.get(instrument)

    def snapshot(self) -> dict[str, int]:
        """A copy of every cursor."""
        with self._lock:
            return dict(self._cursors)

    def advance(self, instrument: str, run_number: int) -> None:
        """Move ``instrument``'s cursor forward to ``run_number`` and persist it.

        Setting the current value again is a no-op. Raises ValueError when ``run_number`` is
        below the current cursor: the cursor never moves backwards.
        """
        with self._lock:
            current = self._cursors.get(instrument)
            if current is not None and run_number < current:
                raise ValueError(
                    f"cursor of {instrument} cannot move backwards from {current} to {run_number}"
                )
            if current == run_number:
                return
            self._write_locked(instrument, run_number)

    def reset(self, instrument: str, run_number: int) -> None:
        """Set ``instrument``'s cursor to ``run_number`` even if lower (operator's ``--from``)."""
        if run_number < 0:
            raise ValueError(f"cursor of {instrument} cannot be negative ({run_number})")
        with self._lock:
            previous = self._cursors.get(instrument)
            self._write_locked(instrument, run_number)
        logger.warning(
            "cursor of %s reset from %s to %d by the operator", instrument, previous, run_number
        )

    def _write_locked(self, instrument: str, run_number: int) -> None:
        updated = {**self._cursors, instrument: run_number}
        _write_atomically(self.path, json.dumps(updated, indent=2, sort_keys=True) + "\n")
        self._cursors = updated


def _load(path: Path) -> dict[str, int]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise CursorFileError(f"cannot read cursor file {path}: {error}") from error
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise CursorFileError(
            f"cursor file {path} is not valid JSON ({error}); fix or remove it "
            "(removing it re-baselines every instrument on its current run)"
        ) from error
    if not isinstance(content, dict):
        raise CursorFileError(f"cursor file {path} must hold a JSON object, not {content!r:.60}")
    for instrument, run_number in content.items():
        if type(run_number) is not int or run_number < 0:
            raise CursorFileError(
                f"cursor file {path}: cursor of {instrument!r} must be a non-negative integer, "
                f"not {run_number!r:.60}"
            )
    return dict(content)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as temporary:
            temporary.write(text)
            temporary.flush()
            os.fsync(temporary.fileno())
        os.replace(temporary_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot open a directory, which is fine."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
