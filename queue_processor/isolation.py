"""Run one reduction in a child process forked from this warm, pre-imported processor.

The child gets its own process group, a memory ceiling (``RLIMIT_AS`` = what it had at fork plus
``memory_mb``), its stdout, stderr and logging sent to ``reduction.log`` in its output directory,
and writes ``result.json`` there before it exits. The parent enforces the time limit (SIGTERM to
the group, then SIGKILL) and also watches the group's resident memory. Whatever the plugin does
— raise, hang, exhaust memory, segfault, ``os._exit`` — the outcome is one :class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from autoreduce.plugin import ReductionContext, RunInfo
from autoreduce.plugin_manager import Plugins

LOG_NAME = "reduction.log"
RESULT_NAME = "result.json"
KILL_GRACE_S = 5.0
WATCH_INTERVAL_S = 0.05  # how often the time limit and shutdown are checked
RSS_INTERVAL_S = 0.25  # how often the group's RSS is sampled: each sample scans /proc
MIB = 1024 * 1024
PR_SET_PDEATHSIG = 1

_fork = multiprocessing.get_context("fork")


@dataclass(frozen=True)
class ReductionJob:
    """Everything the child needs; nothing in it touches the database."""

    plugin: str
    run: RunInfo
    variables: dict[str, object]
    work_dir: Path
    timeout_s: float
    memory_mb: int


@dataclass
class Outcome:
    """How a reduction ended: ``ok`` with files, or not with a one-line reason."""

    ok: bool
    reason: str = ""
    retryable: bool = False  # the process crashed without a verdict: may be the machine's fault
    summary: str = ""
    files: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _child_logging(log_path: Path) -> logging.Logger:
    """Send every byte the child writes — fds 1 and 2, Python logging — to its log file."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    stream = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115 - lives as long as the child
    sys.stdout = sys.stderr = stream
    faulthandler.enable(file=stream)  # a crash's Python stack goes to the run's log
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return logging.getLogger("autoreduce.reduction")


def _die_with_parent() -> None:
    """Linux: SIGKILL this child if its processor dies, so no orphan reduction runs on."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the processor's shutdown still stops the child


def _limit_memory(memory_mb: int) -> None:
    import resource

    current = psutil.Process().memory_info().vms
    ceiling = current + memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def _write_result(work_dir: Path, payload: dict[str, object]) -> None:
    tmp = work_dir / f".{RESULT_NAME}.tmp"
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, work_dir / RESULT_NAME)


def _relative_outputs(paths: list[Path], work_dir: Path, kind: str) -> list[str]:
    names = []
    for path in paths:
        path = path if path.is_absolute() else work_dir / path
        if not _inside(path, work_dir):
            raise ValueError(f"plugin returned {kind} {path} outside its output directory")
        if not path.is_file():
            raise ValueError(f"plugin returned {kind} {path} that does not exist")
        names.append(str(path.resolve().relative_to(work_dir.resolve())))
    return names


def _child_main(job: ReductionJob, plugins: Plugins) -> None:
    """Runs in the forked child; never returns normally (os._exit)."""
    code = 0
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        logger = _child_logging(job.work_dir / LOG_NAME)
        logger.info(
            "reducing %s run %s v%s with plugin %s, variables %s",
            job.run.instrument,
            job.run.run_number,
            job.run.run_version,
            job.plugin,
            json.dumps(job.variables),
        )
        _limit_memory(job.memory_mb)
        context = ReductionContext(
            run=job.run,
            variables=dict(job.variables),
            output_dir=job.work_dir,
            logger=logger,
            progress=lambda fraction: logger.info("progress %.0f%%", 100 * fraction),
        )
        try:
            result = plugins.reduce(job.plugin, context)
            payload: dict[str, object] = {
                "ok": True,
                "summary": result.summary,
                "files": _relative_outputs(result.files, job.work_dir, "file"),
                "plots": _relative_outputs(result.plots, job.work_dir, "plot"),
            }
        except MemoryError:
            logger.exception("the reduction ran out of memory")
            payload = {
                "ok": False,
                "reason": f"plugin exceeded its memory limit of {job.memory_mb} MB",
            }
        except BaseException as error:
            logger.exception("the reduction failed")
            payload = {"ok": False, "reason": f"plugin raised {type(error).__name__}: {error}"}
        _write_result(job.work_dir, payload)
    except BaseException:
        code = 70  # EX_SOFTWARE: the child's own machinery failed; its log says why
    finally:
        try:
            logging.shutdown()
        finally:
            os._exit(code)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _rss_mb(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss) / MIB
    except psutil.Error:
        return 0.0


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


def run_isolated(
    job: ReductionJob,
    plugins: Plugins,
    *,
    should_abandon: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Fork a child for ``job`` and wait for it within its limits.

    ``should_abandon`` is asked while waiting; when it answers True the child is stopped and the
    outcome says so (the processor is shutting down and releases the run).
    """
    job.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    child = _fork.Process(target=_child_main, args=(job, plugins), daemon=False)
    child.start()
    assert child.pid is not None
    watched = psutil.Process(child.pid)
    # The rlimit caps address space; this catches resident growth the cap might not. The child
    # has no children of its own yet, so its RSS alone is the group's (no scan of /proc).
    rss_limit_mb = _rss_mb(watched) + job.memory_mb
    peak_rss_mb = 0.0
    reason = ""
    next_sample_at = started + RSS_INTERVAL_S
    # Wakes the moment the child exits, else every WATCH_INTERVAL_S for the checks below.
    while not multiprocessing.connection.wait([child.sentinel], WATCH_INTERVAL_S):
        if not child.is_alive():  # exited; a grandchild it forked still holds the sentinel open
            break
        now = time.monotonic()
        if now >= next_sample_at:
            peak_rss_mb = max(peak_rss_mb, _group_rss_mb(watched))
            next_sample_at = now + RSS_INTERVAL_S
        if now - started > job.timeout_s:
            reason = f"plugin exceeded its {job.timeout_s:g} s time limit"
        elif peak_rss_mb > rss_limit_mb:
            reason = f"plugin exceeded its memory limit of {job.memory_mb} MB"
        elif should_abandon():
            reason = "abandoned: the processor is shutting down"
        if reason:
            _stop(child)
            break
    child.join()
    _kill_group(child.pid, signal.SIGKILL)  # grandchildren the plugin left behind
    outcome = _read_outcome(job.work_dir, child.exitcode, reason)
    outcome.wall_s = time.monotonic() - started
    outcome.peak_rss_mb = peak_rss_mb
    return outcome


def _stop(child: multiprocessing.process.BaseProcess) -> None:
    assert child.pid is not None
    _kill_group(child.pid, signal.SIGTERM)
    child.join(KILL_GRACE_S)
    if child.is_alive():
        _kill_group(child.pid, signal.SIGKILL)


def _read_outcome(work_dir: Path, exitcode: int | None, reason: str) -> Outcome:
    if reason:
        return Outcome(ok=False, reason=reason)
    try:
        payload = json.loads((work_dir / RESULT_NAME).read_text())
    except (OSError, ValueError):
        return Outcome(ok=False, reason=_describe_exit(exitcode), retryable=True)
    if not payload.get("ok"):
        return Outcome(ok=False, reason=str(payload.get("reason") or "plugin failed"))
    return Outcome(
        ok=True,
        summary=str(payload.get("summary", "")),
        files=[str(name) for name in payload.get("files", [])],
        plots=[str(name) for name in payload.get("plots", [])],
    )
