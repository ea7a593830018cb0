"""A run version's log as Server-Sent Events, from the lines its processor ships to the database.

:func:`log_events` polls ``run_log_lines`` every ``log_poll_interval_s`` (each read in a worker
thread, so the event loop never waits on the database) and sends one ``data:`` event per line,
its ``id:`` the line's number (a client that reconnects sends it back as ``Last-Event-ID`` and
gets only later lines). The run's state is read *before* its lines: once a read finds the run
final, the lines read after it are all there are (the processor ships them before recording the
final state), so the stream sends them and ends with an ``end`` event carrying that state.

:class:`FollowerSlots` caps how many streams are open at once; :class:`EventStream` gives a slot
back however its stream ends (finished, timed out, client gone).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from autoreduce.db import Database
from autoreduce.db.models import ReductionRun, RunLogLine, RunStatus

LINES_PER_READ = 500
KEEP_ALIVE_S = 15.0  # a comment this often keeps proxies from closing a quiet stream


@dataclass(frozen=True)
class LogProgress:
    """One look at a run version: its state then, and its lines after a given number."""

    status: str
    message: str
    lines: list[tuple[int, str]]

    @property
    def is_final(self) -> bool:
        return RunStatus(self.status).is_final


def read_log_lines(database: Database, run_id: int, after_seq: int) -> LogProgress | None:
    """The run's state, then up to ``LINES_PER_READ`` of its lines after ``after_seq``.

    None if the run version is gone. Blocking: call it in a worker thread.
    """
    with database.read_session() as session:
        run = session.execute(
            select(ReductionRun.status, ReductionRun.message).where(ReductionRun.id == run_id)
        ).one_or_none()
        if run is None:
            return None
        lines = session.execute(
            select(RunLogLine.seq, RunLogLine.text)
            .where(RunLogLine.run_id == run_id, RunLogLine.seq > after_seq)
            .order_by(RunLogLine.seq)
            .limit(LINES_PER_READ)
        ).all()
    return LogProgress(run.status, run.message, [(seq, text) for seq, text in lines])


def line_event(seq: int, text: str) -> str:
    """One log line as an event; ``text`` holds no line break (the shipper split on them)."""
    return f"id: {seq}\ndata: {text}\n\n"


def end_event(status: str, message: str) -> str:
    """The last event of a stream: the run's final state and its one-line message."""
    return f"event: end\ndata: {json.dumps({'status': status, 'message': message})}\n\n"


async def log_events(
    database: Database,
    run_id: int,
    *,
    after_seq: int = 0,
    poll_interval_s: float = 0.25,
    max_duration_s: float = 3600.0,
) -> AsyncIterator[str]:
    """The run's log lines after ``after_seq`` as events, until the run is final.

    Ends without an ``end`` event after ``max_duration_s`` (the client resumes with
    ``Last-Event-ID``) or if the run version is deleted meanwhile.
    """
    started = last_sent = time.monotonic()
    while True:
        progress = await run_in_threadpool(read_log_lines, database, run_id, after_seq)
        if progress is None:
            return
        for seq, text in progress.lines:
            yield line_event(seq, text)
            after_seq = seq
        now = time.monotonic()
        if progress.lines:
            last_sent = now
        if len(progress.lines) == LINES_PER_READ:
            continue  # more are waiting: no pause
        if progress.is_final:
            yield end_event(progress.status, progress.message)
            return
        if now - started >= max_duration_s:
            return
        if now - last_sent >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = now
        await anyio.sleep(poll_interval_s)


class FollowerSlots:
    """At most ``limit`` log streams at once, across the API's threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a slot; False if all ``limit`` are taken."""
        with self._lock:
            if self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._taken = max(0, self._taken - 1)

    @property
    def taken(self) -> int:
        return self._taken


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that calls ``on_close`` once it has ended, however."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(
            events,
            media_type=self.media_type,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
