"""What runs inside a reduction's child process, from fork to ``os._exit``.

A child is forked ahead of need (a *ready child*): it puts itself in its own process group, asks
the kernel to kill it if its processor dies, and waits for a job on a pipe. Given one, it sends
every byte it writes — fds 1 and 2, Python logging, a crash's Python stack — to
``reduction.log`` in the run's work directory, caps its address space at what it has plus the
job's ``memory_mb``, runs the plugin, writes its verdict as one JSON object to the result pipe and
exits. Nothing here touches the database or the broker.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import logging
import os
import pickle
import resource
import signal
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from autoreduce.failures import ErrorCategory, raising_frame
from autoreduce.logs import EcsFormatter, run_fields
from autoreduce.paths import UnsafePathError, relative_name
from autoreduce.plugin import ReductionContext
from autoreduce.plugin_manager import Plugins
from autoreduce.provenance import data_file_facts
from autoreduce.redaction import SecretScrubber

if TYPE_CHECKING:
    from queue_processor.isolation import ReductionJob

LOG_NAME = "reduction.log"
JSON_LOG_NAME = "reduction.jsonl"  # the same records in ECS, with the run's identity
MIB = 1024 * 1024
PR_SET_PDEATHSIG = 1
EX_SOFTWARE = 70  # the child's own machinery failed; its log says why
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
try:  # loaded once in the processor, so no child pays for it
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """Linux: SIGKILL this child if its processor dies, so no orphan reduction runs on."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _log_to(log_path: Path, job: ReductionJob | None = None) -> logging.Logger:
    """Send fds 1 and 2 and Python logging to ``log_path``; with ``job``, logging to
    ``reduction.jsonl`` beside it too (ECS, the run's identity in each record, no secrets)."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    stream = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115 - lives as long as the child
    sys.stdout = sys.stderr = stream
    faulthandler.enable(file=stream)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubber())
    root.addHandler(handler)
    if job is not None:
        json_handler = logging.FileHandler(log_path.with_name(JSON_LOG_NAME), encoding="utf-8")
        json_handler.setFormatter(
            EcsFormatter(
                "reduction", {**run_fields(job.run, job.run_id), "autoreduce.plugin": job.plugin}
            )
        )
        json_handler.addFilter(SecretScrubber())
        root.addHandler(json_handler)
    root.setLevel(logging.INFO)
    return logging.getLogger("autoreduce.reduction")


def _limit_memory(memory_mb: int) -> None:
    with open("/proc/self/statm") as statm:
        current_bytes = int(statm.read().split()[0]) * _PAGE_BYTES
    ceiling = current_bytes + memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


class OutputRefused(ValueError):
    """A plugin returned an output that is not a regular file inside its output directory."""


def refused_output_reason(kind: str, name: object) -> str:
    """The run's reason when the plugin returned ``name`` as a ``kind`` (file, plot)."""
    return f"plugin returned {kind} {str(name)!r}, which is not a file inside its output directory"


def _relative_outputs(paths: list[Path], work_dir: Path, kind: str) -> list[str]:
    """Each path (absolute, or relative to ``work_dir``) as a name relative to ``work_dir``.

    A symlink is named as its target, which must lie inside ``work_dir`` too.

    Raises:
        OutputRefused: a path that is not a regular file inside ``work_dir`` (absolute elsewhere,
            through ``..``, a symlink out, a directory, missing); the run is Error, not the entry
            dropped: a plugin's result that lies about its files is a broken plugin.
    """
    names = []
    for path in paths:
        try:
            name = relative_name(work_dir, path)
        except (UnsafePathError, TypeError):
            raise OutputRefused(refused_output_reason(kind, path)) from None
        if not (work_dir / name).is_file():
            raise OutputRefused(refused_output_reason(kind, path))
        names.append(name)
    return names


def _failure(
    error: BaseException, job: ReductionJob, plugins: Plugins
) -> tuple[ErrorCategory, str, str]:
    """(category, exception type, plugin frame) of an exception ``reduce`` raised."""
    frame = raising_frame(error, plugins.package_of(job.plugin))
    if isinstance(error, MemoryError):
        return ErrorCategory.MEMORY, type(error).__name__, frame
    data_path = str(job.run.data_path)
    if isinstance(error, OSError) and data_path in (str(error.filename), str(error)):
        return ErrorCategory.DATA, type(error).__name__, frame
    return ErrorCategory.PLUGIN, type(error).__name__, frame


def _reduce_verdict(
    job: ReductionJob, plugins: Plugins, context: ReductionContext
) -> dict[str, object]:
    """Call the plugin; the verdict without the data file's facts."""
    logger = context.logger
    try:
        result = plugins.reduce(job.plugin, context)
        return {
            "ok": True,
            "summary": result.summary,
            "files": _relative_outputs(result.files, job.work_dir, "file"),
            "plots": _relative_outputs(result.plots, job.work_dir, "plot"),
        }
    except OutputRefused as refused:
        logger.error("%s", refused)
        return {"ok": False, "reason": str(refused), "category": ErrorCategory.PLUGIN.value}
    except BaseException as error:
        category, exception_type, frame = _failure(error, job, plugins)
        if category is ErrorCategory.MEMORY:
            logger.exception("the reduction ran out of memory")
            reason = f"plugin exceeded its memory limit of {job.memory_mb} MB"
        else:
            logger.exception("the reduction failed")
            reason = f"plugin raised {exception_type}: {error}"
        return {
            "ok": False,
            "reason": reason,
            "category": category.value,
            "exception_type": exception_type,
            "exception_message": str(error)[:1000],
            "frame": frame,
        }


def reduce_job(job: ReductionJob, plugins: Plugins) -> dict[str, object]:
    """Run the plugin on ``job`` in this (child) process; the verdict as a JSON-able dict.

    The data file is hashed first (its size, modification time and SHA-256, streamed in 1 MiB
    blocks): the verdict's ``data_file`` says which bytes were reduced. A data file that cannot
    be read fails the run in category ``data`` without calling the plugin. A failed verdict
    carries its ``category`` and, for an exception, its type and the plugin frame it came from.
    """
    logger = _log_to(job.work_dir / LOG_NAME, job)
    logger.info(
        "reducing %s run %s v%s with plugin %s, variables %s",
        job.run.instrument,
        job.run.run_number,
        job.run.run_version,
        job.plugin,
        json.dumps(job.variables),
    )
    _limit_memory(job.memory_mb)
    try:
        data_file = data_file_facts(job.run.data_path)
    except OSError as error:
        logger.error("cannot read the data file %s: %s", job.run.data_path, error)
        return {
            "ok": False,
            "reason": f"data file {job.run.data_path} cannot be read: {error.strerror or error}",
            "category": ErrorCategory.DATA.value,
            "exception_type": type(error).__name__,
        }
    logger.info(
        "data file %s: %s bytes, sha256 %s",
        data_file["path"],
        data_file["size_bytes"],
        data_file["sha256"],
    )
    context = ReductionContext(
        run=job.run,
        variables=dict(job.variables),
        output_dir=job.work_dir,
        logger=logger,
        progress=lambda fraction: logger.info("progress %.0f%%", 100 * fraction),
    )
    return {**_reduce_verdict(job, plugins, context), "data_file": data_file}


JOB_HEADER = struct.Struct("!Q")
"""A job's length before its pickle: a child reads exactly its job, not until an end of file that
a sibling forked meanwhile (holding a copy of the job pipe's write end) would withhold."""


def frame_job(job: bytes) -> bytes:
    return JOB_HEADER.pack(len(job)) + job


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``; fewer only if its writer closed it first."""
    chunks: list[bytes] = []
    left = size
    while left and (chunk := os.read(fd, min(left, 1 << 16))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_job(fd: int) -> bytes:
    """The framed job, or b"" when the processor closed the pipe without one (no job)."""
    header = _read_exactly(fd, JOB_HEADER.size)
    if len(header) < JOB_HEADER.size:
        return b""
    (size,) = JOB_HEADER.unpack(header)
    job = _read_exactly(fd, size)
    return job if len(job) == size else b""


def ready_child(plugins: Plugins, job_fd: int, result_fd: int) -> NoReturn:
    """The body of a forked ready child: wait for a job, reduce it, report, exit."""
    code = 0
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        job_bytes = _read_job(job_fd)
        os.close(job_fd)
        if job_bytes:  # no bytes: the processor closed the pipe, there is no job
            payload = reduce_job(pickle.loads(job_bytes), plugins)
            verdict = memoryview(json.dumps(payload).encode())
            while verdict:
                verdict = verdict[os.write(result_fd, verdict) :]
        os.close(result_fd)  # the processor has its verdict now, before this process tears down
    except BaseException:
        code = EX_SOFTWARE
    finally:
        try:
            logging.shutdown()
        finally:
            os._exit(code)
