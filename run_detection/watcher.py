"""The detection service: file events and a periodic rescan drive a :class:`RunDetector`.

watchdog reports changes to each instrument's ``lastruns.txt`` (inotify, or polling every
``poll_interval_s`` on network filesystems where inotify sees nothing). The observer thread only
records which instrument changed; the service loop, on the caller's thread, does the checking,
so HTTP retries never block the file events and one instrument is never checked twice at once.
A rescan of every instrument every ``rescan_interval_s`` retries runs waiting for their data
file or for the API, and starts watching directories that did not exist before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from autoreduce.settings import Settings
from run_detection.detector import RunDetector

logger = logging.getLogger("autoreduce.detect.watcher")

STOP_CHECK_INTERVAL_S = 0.2
"""How often (seconds) an idle service loop looks at its stop event."""

WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,  # created, or renamed into place from outside the directory
    FileModifiedEvent,  # rewritten in place
    FileClosedEvent,  # closed after writing (inotify only)
    FileMovedEvent,  # renamed into place within the directory
    DirDeletedEvent,  # the watched directory itself went away
]
"""The events that can mean a new ``lastruns.txt``. Opening and reading the file (which the
detector itself does) must not trigger a check."""


class PendingChecks:
    """Instruments whose file changed and that wait for a check; wakes the service loop."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._instruments: dict[str, None] = {}

    def add(self, instruments: Iterable[str]) -> None:
        """Ask for a check of ``instruments`` (duplicates collapse into one check)."""
        with self._condition:
            self._instruments.update(dict.fromkeys(instruments))
            self._condition.notify()

    def take(self, timeout_s: float) -> list[str]:
        """Wait up to ``timeout_s`` seconds for requests; return and forget them, in order."""
        with self._condition:
            if not self._instruments and timeout_s > 0:
                self._condition.wait(timeout_s)
            taken = list(self._instruments)
            self._instruments.clear()
            return taken


class LastRunsEventHandler(FileSystemEventHandler):
    """Turns watchdog events on ``lastruns.txt`` files into pending checks of their instruments."""

    def __init__(
        self,
        instruments_by_path: dict[str, list[str]],
        pending: PendingChecks,
        on_directory_deleted: Callable[[str], None],
    ) -> None:
        """``instruments_by_path`` maps absolute ``lastruns.txt`` paths to their instruments."""
        self._instruments_by_path = instruments_by_path
        self._pending = pending
        self._on_directory_deleted = on_directory_deleted

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Request a check when the event touches a watched file (as source or destination)."""
        for raw_path in (event.src_path, event.dest_path):
            if not raw_path:
                continue
            path = os.path.abspath(os.fsdecode(raw_path))
            instruments = self._instruments_by_path.get(path)
            if instruments:
                self._pending.add(instruments)
        if isinstance(event, DirDeletedEvent):
            self._on_directory_deleted(os.path.abspath(os.fsdecode(event.src_path)))


class Watches:
    """The watched ``lastruns.txt`` directories; watches each once it exists, again if recreated."""

    def __init__(self, observer: BaseObserver, directories: Iterable[str]) -> None:
        self._observer = observer
        self._directories = sorted(set(directories))
        self._watches: dict[str, ObservedWatch] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._reported_missing: set[str] = set()

    def mark_lost(self, directory: str) -> None:
        """Called from the observer thread when a watched directory is deleted."""
        with self._lock:
            if directory in self._watches:
                self._lost.add(directory)

    def ensure(self, handler: FileSystemEventHandler) -> None:
        """Watch with ``handler`` every directory that exists and is not watched yet."""
        with self._lock:
            lost, self._lost = self._lost, set()
        for directory in lost:
            self._forget(directory)
        for directory in self._directories:
            if directory not in self._watches:
                self._watch(directory, handler)

    def _forget(self, directory: str) -> None:
        watch = self._watches.pop(directory)
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError) as error:
            logger.debug("unscheduling the lost watch on %s: %s", directory, error)
        logger.warning(
            "directory %s disappeared; it will be watched again once it exists", directory
        )

    def _watch(self, directory: str, handler: FileSystemEventHandler) -> None:
        if not os.path.isdir(directory):
            if directory not in self._reported_missing:
                self._reported_missing.add(directory)
                logger.warning(
                    "directory %s does not exist (yet); rescanning until it appears", directory
                )
            return
        try:
            watch = self._observer.schedule(handler, directory, event_filter=WATCHED_EVENTS)
        except OSError as error:
            logger.error("cannot watch %s: %s; relying on rescans", directory, error)
            return
        self._watches[directory] = watch
        self._reported_missing.discard(directory)
        logger.info("watching %s", directory)


class LastRunsWatcher:
    """Runs a :class:`RunDetector` on file events and periodic rescans until stopped."""

    def __init__(
        self,
        detector: RunDetector,
        *,
        poll_interval_s: float | None = None,
        rescan_interval_s: float = 5.0,
    ) -> None:
        """``poll_interval_s`` set: poll the directories at that period instead of inotify."""
        if poll_interval_s is not None and poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, not {poll_interval_s}")
        if rescan_interval_s <= 0:
            raise ValueError(f"rescan_interval_s must be positive, not {rescan_interval_s}")
        self.detector = detector
        self.poll_interval_s = poll_interval_s
        self.rescan_interval_s = rescan_interval_s
        self.pending = PendingChecks()

    def run(self, stop: threading.Event) -> None:
        """Check every instrument at once, then on each event and rescan, until ``stop`` is set."""
        observer = self._new_observer()
        instruments_by_path: dict[str, list[str]] = {}
        for instrument in self.detector.instruments:
            path = os.path.abspath(self.detector.settings.lastruns_path(instrument))
            instruments_by_path.setdefault(path, []).append(instrument)
        watches = Watches(observer, (os.path.dirname(path) for path in instruments_by_path))
        handler = LastRunsEventHandler(instruments_by_path, self.pending, watches.mark_lost)
        observer.start()
        logger.info(
            "detecting runs of %s (%s, rescan every %.1f s)",
            ", ".join(self.detector.instruments) or "no instrument",
            "inotify"
            if self.poll_interval_s is None
            else f"polling every {self.poll_interval_s} s",
            self.rescan_interval_s,
        )
        try:
            self._loop(stop, watches, handler)
        finally:
            observer.stop()
            observer.join(timeout=10)
            logger.info("run detection stopped")

    def _loop(
        self, stop: threading.Event, watches: Watches, handler: FileSystemEventHandler
    ) -> None:
        next_rescan_s = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= next_rescan_s:
                watches.ensure(handler)
                self.pending.take(timeout_s=0)
                self.detector.check_all()
                next_rescan_s = time.monotonic() + self.rescan_interval_s
                continue
            wait_s = min(next_rescan_s - time.monotonic(), STOP_CHECK_INTERVAL_S)
            for instrument in self.pending.take(timeout_s=wait_s):
                if stop.is_set():
                    break
                self.detector.check_safely(instrument)

    def _new_observer(self) -> BaseObserver:
        if self.poll_interval_s is None:
            return Observer()
        return PollingObserver(timeout=self.poll_interval_s)


def serve(
    settings: Settings,
    *,
    poll_interval_s: float | None = None,
    from_run: int | None = None,
    instruments: list[str] | None = None,
    stop: threading.Event | None = None,
    rescan_interval_s: float = 5.0,
) -> None:
    """Detect runs of ``instruments`` (default: all configured) until ``stop`` is set.

    Each instrument is checked once at start, then whenever its ``lastruns.txt`` changes and
    every ``rescan_interval_s`` seconds. ``poll_interval_s`` selects polling (seconds between
    polls) instead of inotify. ``from_run`` sets the cursor of every chosen instrument to
    ``from_run - 1`` first, so runs ``from_run`` onwards are submitted again. Without ``stop``
    the service runs until the process is interrupted. Transient API failures are retried until
    ``stop`` is set; an HTTP request in flight may delay stopping by its timeout.

    Raises:
        CursorFileError: the cursor file exists but is not valid (nothing is started).
        ValueError: an instrument is not configured, or an interval or ``from_run`` is invalid.
    """
    stop = stop or threading.Event()
    detector = RunDetector.from_settings(settings, instruments=instruments, stop=stop)
    try:
        watcher = LastRunsWatcher(
            detector, poll_interval_s=poll_interval_s, rescan_interval_s=rescan_interval_s
        )
        if from_run is not None:
            detector.start_from(from_run)
        watcher.run(stop)
    finally:
        detector.close()
