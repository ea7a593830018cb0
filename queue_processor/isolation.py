"""Run each reduction in its own child process, forked from a warm, pre-imported process.

A plugin installed from a package is forked by its own fork server
(:mod:`queue_processor.fork_server`: a small process that imported only that plugin), so the
processor never imports a plugin's heavy modules; a plugin registered in-process (tests) is
forked from the processor itself. A :class:`ReductionLauncher` keeps one *ready child* per plugin
forked ahead of need (see :mod:`queue_processor.child`): forking and the child's start-up happen
while the processor records the previous run, not while the next one waits. The job goes to the
child over a pipe and its verdict comes back over another, so the processor has the verdict
before the child's address space is torn down; the exited child is reaped later.

The parent enforces the time limit (SIGTERM to the child's process group, SIGKILL after
``KILL_GRACE_S``), stops the group the same way when asked to (shutdown, a cancelled run) and
watches the group's resident memory; the child caps its own address space.
Whatever the plugin does — raise, hang, exhaust memory, segfault, ``os._exit`` — the result is
one :class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from autoreduce.failures import ErrorCategory
from autoreduce.plugin import RunInfo
from autoreduce.plugin_manager import Plugins
from queue_processor.child import LOG_NAME, frame_job, ready_child
from queue_processor.fork_server import ForkServer

__all__ = ["LOG_NAME", "Outcome", "ReductionJob", "ReductionLauncher", "run_isolated"]

KILL_GRACE_S = 5.0
WATCH_INTERVAL_S = 0.05  # how often the time limit and shutdown are checked
RSS_INTERVAL_S = 0.25  # how often the group's RSS is sampled: each sample scans /proc
MIB = 1024 * 1024


@dataclass(frozen=True)
class ReductionJob:
    """Everything the child needs; nothing in it touches the database."""

    plugin: str
    run: RunInfo
    variables: dict[str, object]
    work_dir: Path
    timeout_s: float
    memory_mb: int
    run_id: int | None = None  # the database row, named in the run's ECS log records


@dataclass
class Outcome:
    """How a reduction ended: ``ok`` with files, or not with a one-line reason and category."""

    ok: bool
    reason: str = ""
    retryable: bool = False  # the process crashed without a verdict: may be the machine's fault
    category: str = ""  # an ErrorCategory when not ok (empty when abandoned on shutdown)
    exception_type: str = ""  # the plugin's exception, when it raised
    exception_message: str = ""  # and its message (the reason is "plugin raised <type>: ...")
    frame: str = ""  # module:function of the plugin frame the exception came from
    data_file: dict[str, Any] | None = None  # size, mtime and SHA-256, from the child
    summary: str = ""
    files: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass(frozen=True)
class _Stopped:
    """Why the processor stopped a child before its verdict (empty reason: it did not)."""

    reason: str = ""
    category: str = ""  # timeout or memory; empty when abandoned on shutdown


@dataclass
class _ReadyChild:
    pid: int
    job_fd: int  # the processor writes the pickled job here, then closes it
    result_fd: int  # the child writes its JSON verdict here, then closes it
    server: ForkServer | None = None  # its parent, when not this process


FORK_LOCK = threading.Lock()
"""Held from making a child's pipes until this process has closed its copies of the child's ends.
Pipeline steps run on threads, each forking children: a child forked by another thread in between
would inherit the child's result end and withhold its end of file (its verdict) until it exits."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_rss_mb(process: psutil.Process) -> float:
    try:
        members = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in members) / MIB
    except psutil.Error:
        return 0.0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "reduction process did not exit"
    if code < 0:
        name = signal.Signals(-code).name
        what = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed)"}.get(name, "")
        return f"reduction process died from signal {name}{what}"
    return f"reduction process exited with status {code} before writing its result"


def _outcome(payload: bytes, exitcode: int | None) -> Outcome:
    try:
        verdict = json.loads(payload)
    except ValueError:
        return Outcome(
            ok=False,
            reason=_describe_exit(exitcode),
            retryable=True,
            category=ErrorCategory.CRASH.value,
        )
    data_file = verdict.get("data_file")
    data_file = data_file if isinstance(data_file, dict) else None
    if not verdict.get("ok"):
        category = str(verdict.get("category") or "")
        return Outcome(
            ok=False,
            reason=str(verdict.get("reason") or "plugin failed"),
            category=category if ErrorCategory.known(category) else ErrorCategory.PLUGIN.value,
            exception_type=str(verdict.get("exception_type") or ""),
            exception_message=str(verdict.get("exception_message") or ""),
            frame=str(verdict.get("frame") or ""),
            data_file=data_file,
        )
    return Outcome(
        ok=True,
        data_file=data_file,
        summary=str(verdict.get("summary", "")),
        files=[str(name) for name in verdict.get("files", [])],
        plots=[str(name) for name in verdict.get("plots", [])],
    )


class ReductionLauncher:
    """Runs jobs in fresh children, one at a time, keeping the next child ready.

    ``fork_servers``: fork each entry-point plugin's children from its own fork server (the
    processor); False forks every child from this process (a one-off reduction).
    """

    def __init__(self, plugins: Plugins, *, fork_servers: bool = False) -> None:
        self.plugins = plugins
        self.fork_servers = fork_servers
        self._servers: dict[str, ForkServer] = {}
        self._ready: dict[str, _ReadyChild] = {}
        self._unreaped: list[int] = []
        self.running_pid: int | None = None  # the child reducing a job now (its process group)

    def _served(self, plugin: str) -> bool:
        """Whether ``plugin``'s children come from a fork server (it is an installed package)."""
        if not self.fork_servers:
            return False
        if plugin not in self._servers:
            release = self.plugins.release(plugin)
            if release is None or not release.from_entry_point:
                return False
            self._servers[plugin] = ForkServer(plugin)
        return True

    def start(self, plugin: str) -> None:
        """Get ``plugin`` ready: its fork server started, or its ``warm_up`` run here."""
        if not self._served(plugin):
            self.plugins.warm_up(plugin)

    def prepare(self, plugin: str) -> None:
        """Fork ``plugin``'s next ready child now, if there is none (call it in the main thread)."""
        self._reap()
        if plugin in self._ready:
            return
        served = self._served(plugin)
        with FORK_LOCK:
            job_read, job_write = os.pipe()
            result_read, result_write = os.pipe()
            if served:
                server = self._servers[plugin]
                try:
                    pid = server.fork(job_read, result_write)
                finally:
                    os.close(job_read)
                    os.close(result_write)
                self._ready[plugin] = _ReadyChild(pid, job_write, result_read, server)
                return
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(job_write)
                os.close(result_read)
                ready_child(self.plugins, job_read, result_write)
            os.close(job_read)
            os.close(result_write)
        self._ready[plugin] = _ReadyChild(pid, job_write, result_read)

    def run(self, job: ReductionJob, stop_reason: Callable[[], str] = lambda: "") -> Outcome:
        """Reduce ``job`` in the ready child within its limits; then ready the next child.

        ``stop_reason`` is asked while waiting (every ``WATCH_INTERVAL_S``, so it must be cheap);
        when it answers a reason the child's process group is stopped and the outcome fails with
        that reason (the processor is shutting down, or the run was cancelled).
        """
        job.work_dir.mkdir(parents=True, exist_ok=True)
        self.prepare(job.plugin)
        child = self._ready.pop(job.plugin)
        self.running_pid = child.pid
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError):  # a dead ready child: its exit says why
            _write_all(child.job_fd, frame_job(pickle.dumps(job)))
        os.close(child.job_fd)
        payload, stopped, peak_rss_mb = self._await_verdict(child, job, started, stop_reason)
        exitcode: int | None = None
        if stopped.reason:
            self._stop(child)
        elif not payload:  # it died without a verdict: it is exiting, learn how
            exitcode = self._wait(child)
            _kill_group(child.pid, signal.SIGKILL)
        else:
            _kill_group(child.pid, signal.SIGKILL)  # grandchildren the plugin left behind
            if child.server is None:
                self._unreaped.append(child.pid)  # its teardown need not hold up this run
        self.running_pid = None
        self.prepare(job.plugin)  # the next child starts while the processor records this run
        if stopped.reason:
            outcome = Outcome(ok=False, reason=stopped.reason, category=stopped.category)
        else:
            outcome = _outcome(payload, exitcode)
        outcome.wall_s = time.monotonic() - started
        outcome.peak_rss_mb = peak_rss_mb
        return outcome

    def _await_verdict(
        self,
        child: _ReadyChild,
        job: ReductionJob,
        started: float,
        stop_reason: Callable[[], str],
    ) -> tuple[bytes, _Stopped, float]:
        """Read the child's verdict until EOF, or stop at a limit; (payload, stop, peak)."""
        try:
            watched = psutil.Process(child.pid)
            # The child has no children of its own yet: its RSS alone is the group's.
            rss_limit_mb = watched.memory_info().rss / MIB + job.memory_mb
        except psutil.Error:  # it died already: its verdict (or its absence) says how
            watched, rss_limit_mb = None, float("inf")
        peak_rss_mb = 0.0
        next_sample_at = started + RSS_INTERVAL_S
        chunks: list[bytes] = []
        reason = category = ""
        try:
            while True:
                readable, _, _ = select.select([child.result_fd], [], [], WATCH_INTERVAL_S)
                if readable:
                    chunk = os.read(child.result_fd, 1 << 16)
                    if not chunk:
                        break  # EOF: the verdict is complete, or the child died without one
                    chunks.append(chunk)
                    continue
                now = time.monotonic()
                if now >= next_sample_at and watched is not None:
                    peak_rss_mb = max(peak_rss_mb, _group_rss_mb(watched))
                    next_sample_at = now + RSS_INTERVAL_S
                if now - started > job.timeout_s:
                    reason = f"plugin exceeded its {job.timeout_s:g} s time limit"
                    category = ErrorCategory.TIMEOUT.value
                elif peak_rss_mb > rss_limit_mb:
                    reason = f"plugin exceeded its memory limit of {job.memory_mb} MB"
                    category = ErrorCategory.MEMORY.value
                else:
                    reason = stop_reason()  # shutting down, or cancelled: no error category
                if reason:
                    break
        finally:
            os.close(child.result_fd)
        return b"".join(chunks), _Stopped(reason, category), peak_rss_mb

    def _wait(self, child: _ReadyChild, timeout_s: float | None = None) -> int | None:
        """The child's exit code once it exited; None if it has not within ``timeout_s``."""
        if child.server is not None:
            return child.server.wait_exit(child.pid, 3600.0 if timeout_s is None else timeout_s)
        if timeout_s is None:
            _, status = os.waitpid(child.pid, 0)
            return os.waitstatus_to_exitcode(status)
        deadline = time.monotonic() + timeout_s
        while True:
            done, status = os.waitpid(child.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(WATCH_INTERVAL_S)

    def _stop(self, child: _ReadyChild) -> None:
        """SIGTERM the child's group, SIGKILL it after ``KILL_GRACE_S``; reap the child."""
        _kill_group(child.pid, signal.SIGTERM)
        exited = self._wait(child, KILL_GRACE_S) is not None
        _kill_group(child.pid, signal.SIGKILL)  # what it left behind, or itself
        if not exited:
            self._wait(child)

    def _reap(self) -> None:
        """Collect children that finished (their verdict was read before they exited)."""
        ready = {child.pid for child in self._ready.values()}
        for server in self._servers.values():
            server.poll_exits()  # nobody waits for a child whose verdict was read
            server.exits = {pid: code for pid, code in server.exits.items() if pid in ready}
        for pid in list(self._unreaped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._unreaped.remove(pid)

    def release_ready(self) -> None:
        """Let the ready children go (the processor is idle: it keeps none waiting, see
        docs/memory.md); the next run forks its own, as the first run does."""
        for ready in self._ready.values():
            os.close(ready.job_fd)  # no job: the child exits
            os.close(ready.result_fd)
            if ready.server is None:
                self._unreaped.append(ready.pid)
        self._ready.clear()
        self._reap()

    def close(self) -> None:
        """Stop the ready children and fork servers; reap every child this launcher started."""
        self.release_ready()
        for pid in self._unreaped:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._unreaped.clear()
        for server in self._servers.values():
            server.close()
        self._servers.clear()


def run_isolated(
    job: ReductionJob,
    plugins: Plugins,
    *,
    stop_reason: Callable[[], str] = lambda: "",
) -> Outcome:
    """Reduce one job in a child of its own (a launcher for one job)."""
    launcher = ReductionLauncher(plugins)
    try:
        return launcher.run(job, stop_reason)
    finally:
        launcher.close()
