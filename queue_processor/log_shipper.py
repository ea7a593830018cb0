"""Ship a reduction's log to the database while it is written, for followers on any host.

The child writes ``reduction.log`` in its work directory (:mod:`queue_processor.child`). While
it runs, a :class:`LogShipper` thread in the processor reads that file as it grows and inserts
its complete lines into ``run_log_lines`` in batches — every ``log_ship_interval_s`` or as soon
as ``log_ship_batch_lines`` wait, one transaction each, never one commit per line. Lines are
numbered per run version (``seq``), continuing across attempts.

A run version keeps at most ``max_log_lines`` lines and ``max_log_bytes`` bytes of text; past
that one marker line, :data:`TRUNCATED_MARKER`, ends what is shipped (the file itself is whole).
:meth:`LogShipper.stop` ships the rest, a last line without a newline too, before the processor
records the run's final state: a follower that sees the final state finds every shipped line. The
processor uses :meth:`LogShipper.finish` and :meth:`LogShipper.write_rest` instead, so the rest
goes into the final state's own transaction (a short run ships its whole log there: no commit
and no read of its own). Earlier attempts' numbering is read only when lines are first written.
A database that cannot be reached loses log lines for followers, never the reduction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from autoreduce.db import Database
from autoreduce.db.models import RunLogLine, utcnow
from autoreduce.settings import Settings

logger = logging.getLogger("autoreduce.process")

TRUNCATED_MARKER = "log truncated here; the full log is in reduction.log"
MAX_LINE_CHARS = 4000  # a longer line is cut (the file keeps it whole)
READ_TICK_S = 0.1  # how often the file is looked at
READ_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LogLimits:
    """How much of a run version's log is shipped, and how often."""

    max_lines: int = 5000
    max_bytes: int = 1024 * 1024
    interval_s: float = 0.5
    batch_lines: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> LogLimits:
        return cls(
            max_lines=settings.max_log_lines,
            max_bytes=settings.max_log_bytes,
            interval_s=settings.log_ship_interval_s,
            batch_lines=settings.log_ship_batch_lines,
        )


class LogBudget:
    """What is left of a run version's allowance of log lines and bytes (UTF-8 text).

    Room for the marker line is always kept, so the shipped log never exceeds either limit.
    """

    def __init__(self, lines: int, size_bytes: int, *, exhausted: bool = False) -> None:
        self.lines = lines
        self.bytes = size_bytes
        self.exhausted = exhausted or lines < 1 or size_bytes < len(TRUNCATED_MARKER)

    def admit(self, lines: list[str]) -> list[str]:
        """The leading ``lines`` that fit, then the marker once when the allowance runs out."""
        kept: list[str] = []
        for line in lines:
            if self.exhausted:
                break
            size = len(line.encode())
            if self.lines < 2 or self.bytes - size < len(TRUNCATED_MARKER):
                kept.append(TRUNCATED_MARKER)
                self.exhausted = True
                break
            self.lines -= 1
            self.bytes -= size
            kept.append(line)
        return kept


class LineReader:
    """Complete lines from a file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._partial = b""

    def read_lines(self, *, final: bool = False) -> list[str]:
        """The lines completed since the last call; with ``final``, an unfinished one too."""
        if self._fd is None:
            try:  # not followed through a symlink: the log is the file the child made
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return []  # the child has not opened it yet
        while chunk := os.read(self._fd, READ_CHUNK_BYTES):
            self._partial += chunk
            if len(chunk) < READ_CHUNK_BYTES:
                break
        *complete, self._partial = self._partial.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        return [_line_text(raw) for raw in complete]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _line_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").replace("\r", "").replace("\x00", "")
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


class LogShipper:
    """A thread that ships one attempt's ``reduction.log`` to ``run_log_lines``.

    Use it around the reduction: ``with LogShipper(...): launcher.run(job)``.
    """

    def __init__(
        self,
        database: Database,
        *,
        run_id: int,
        attempt: int,
        log_path: Path,
        limits: LogLimits | None = None,
        resume: bool = False,
    ) -> None:
        """``resume``: the file is one this attempt's lines were shipped from already (a Slurm
        job adopted by another processor's follower): those first lines are not shipped again."""
        self.database = database
        self.resume = resume
        self.run_id = run_id
        self.attempt = attempt
        self.limits = limits or LogLimits()
        self._reader = LineReader(log_path)
        self._pending: list[str] = []
        self._next_seq = 1
        self._budget = LogBudget(self.limits.max_lines, self.limits.max_bytes)
        self._stopping = threading.Event()
        self._flush_at_stop = True
        self._numbered = False  # earlier attempts' numbering and budget read
        self._skip = 0  # lines of the file this attempt shipped already (an adopted Slurm job)
        self._broken = False  # another writer owns this run's lines: ship nothing more
        self._thread = threading.Thread(
            target=self._ship_until_stopped, name=f"log-shipper-{run_id}", daemon=True
        )

    def __enter__(self) -> LogShipper:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ship what is left of the file and wait for the thread to end."""
        self._stopping.set()
        self._thread.join()

    def finish(self) -> None:
        """Read what is left of the file and end the thread; :meth:`write_rest` ships it."""
        self._flush_at_stop = False
        self.stop()

    def write_rest(self, session: Session) -> None:
        """Insert the lines not shipped yet in ``session``'s transaction (after :meth:`finish`).

        A savepoint keeps a clash with another attempt's lines from undoing the transaction.
        """
        if self._broken:
            return
        if not self._numbered:
            self._resume_numbering(session)
            self._pending = self._budget.admit(self._unshipped(self._pending))
        rows = self._rows()
        if not rows:
            return
        try:
            with session.begin_nested():
                session.execute(insert(RunLogLine), rows)
        except IntegrityError:
            logger.warning("run id %s: its log lines are shipped by another attempt", self.run_id)

    def _ship_until_stopped(self) -> None:
        try:
            last_flush = time.monotonic()
            while not self._stopping.wait(READ_TICK_S):
                self._take(self._reader.read_lines())
                now = time.monotonic()
                due = now - last_flush >= self.limits.interval_s
                if len(self._pending) >= self.limits.batch_lines or (due and self._pending):
                    self._flush()
                    last_flush = now
            self._take(self._reader.read_lines(final=True))
            if self._flush_at_stop:
                self._flush()
        except Exception:  # the reduction goes on; followers miss lines, the file has them
            logger.exception("run id %s: shipping its log lines failed", self.run_id)
        finally:
            self._reader.close()

    def _resume_numbering(self, session: Session) -> None:
        """Number on after the lines of earlier attempts, within what they left of the budget."""
        count, last_seq, used_bytes = session.execute(
            select(
                func.count(RunLogLine.id),
                func.max(RunLogLine.seq),
                func.sum(func.length(RunLogLine.text)),
            ).where(RunLogLine.run_id == self.run_id)
        ).one()
        # a follower adopting a Slurm job reads its log from the start: what the same attempt
        # shipped before is not shipped twice
        if self.resume:
            self._skip = (
                session.scalar(
                    select(func.count(RunLogLine.id)).where(
                        RunLogLine.run_id == self.run_id, RunLogLine.attempt == self.attempt
                    )
                )
                or 0
            )
        truncated = session.scalar(
            select(func.count(RunLogLine.id)).where(
                RunLogLine.run_id == self.run_id, RunLogLine.text == TRUNCATED_MARKER
            )
        )
        self._numbered = True
        self._next_seq = (last_seq or 0) + 1
        self._budget = LogBudget(
            self.limits.max_lines - count,
            self.limits.max_bytes - int(used_bytes or 0),
            exhausted=bool(truncated),
        )

    def _take(self, lines: list[str]) -> None:
        if self._broken:
            return
        if self._numbered:
            self._pending.extend(self._budget.admit(self._unshipped(lines)))
        else:  # the budget is applied when the numbering is read; more would be dropped then
            room = self.limits.max_lines + 1 - len(self._pending)
            self._pending.extend(lines[: max(room, 0)])

    def _unshipped(self, lines: list[str]) -> list[str]:
        """``lines`` without those the same attempt shipped already (the file's first ones)."""
        skipped = lines[: self._skip]
        self._skip -= len(skipped)
        return lines[len(skipped) :]

    def _rows(self) -> list[dict[str, object]]:
        logged_at = utcnow()
        return [
            {
                "run_id": self.run_id,
                "attempt": self.attempt,
                "seq": self._next_seq + offset,
                "logged_at": logged_at,
                "text": text,
            }
            for offset, text in enumerate(self._pending)
        ]

    def _flush(self) -> None:
        if not self._pending or self._broken:
            return
        try:
            with self.database.session() as session:
                if not self._numbered:
                    self._resume_numbering(session)
                    self._pending = self._budget.admit(self._unshipped(self._pending))
                rows = self._rows()
                session.execute(insert(RunLogLine), rows)
        except IntegrityError:  # another processor took the run over and numbers its lines
            logger.warning("run id %s: its log lines are shipped by another attempt", self.run_id)
            self._broken = True
            return
        except SQLAlchemyError as error:  # kept for the next flush; bounded by the budget
            logger.warning("run id %s: log lines wait for the database: %s", self.run_id, error)
            return
        self._next_seq += len(rows)
        self._pending.clear()
