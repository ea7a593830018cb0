"""Read run metadata in a separate, memory-capped process, so no data file can harm the reader.

:func:`autoreduce.nexus.read_run_metadata` refuses what it can see coming (external storage and
links, virtual datasets, oversized and compressed strings), but HDF5 still parses a hostile file:
a forged variable-length attribute can make it allocate gigabytes, and a corrupt file can crash
it. :class:`IsolatedMetadataReader` therefore reads in a worker process of its own, started
through a fork server (so the caller's threads and state are not inherited), with its address
space capped at what it holds once h5py is imported plus ``memory_mb``. A read that passes its
time limit, or a worker that dies (memory cap, crash), gives empty metadata with a warning; the
worker is killed and the next read starts a fresh one. The caller's process never runs HDF5 on a
data file.

A read costs the read plus one round trip over a pipe (about 1.2 ms for a run file here, as in
process); starting a worker, which imports h5py, about 150-250 ms: the API starts it on its first
read, so an idle API holds no HDF5.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from autoreduce.run_metadata import RunMetadata

logger = logging.getLogger("autoreduce.nexus")

DEFAULT_MEMORY_MB = 512
"""How much memory (MiB) the worker may allocate beyond what it holds once started."""
KILL_WAIT_S = 5.0


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Collect(logging.Handler):
    """Keeps the reader's warnings, to be sent back and logged by the caller."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _serve(connection: Connection, memory_mb: int) -> None:
    """The worker: cap the address space, then read each path sent until the pipe closes."""
    from autoreduce.nexus import read_run_metadata

    limit = _address_space_bytes() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    collect = _Collect()
    nexus_logger = logging.getLogger("autoreduce.nexus")
    nexus_logger.addHandler(collect)
    nexus_logger.propagate = False
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        collect.messages.clear()
        metadata = read_run_metadata(Path(path))
        connection.send((metadata, list(collect.messages)))


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection


class IsolatedMetadataReader:
    """Reads metadata in a capped worker process; one read at a time, thread-safe."""

    def __init__(self, *, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._context = multiprocessing.get_context("forkserver")

    def start(self) -> None:
        """Start the worker now rather than on the first read (it takes a few hundred ms)."""
        with self._lock:
            if self._worker is None:
                self._start()

    def read(self, path: Path, timeout_s: float) -> RunMetadata:
        """The metadata of ``path``; empty (with a warning) past ``timeout_s`` or on a crash."""
        deadline = time.monotonic() + timeout_s
        if not self._lock.acquire(timeout=timeout_s):
            logger.warning("metadata of %s not read: the reader stayed busy %s s", path, timeout_s)
            return RunMetadata()
        try:
            return self._read_locked(path, deadline, timeout_s)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Stop the worker (a later read starts a new one)."""
        with self._lock:
            self._discard()

    def _read_locked(self, path: Path, deadline: float, timeout_s: float) -> RunMetadata:
        try:
            worker = self._worker or self._start()
            worker.connection.send(str(path))
            if not worker.connection.poll(max(0.0, deadline - time.monotonic())):
                logger.warning(
                    "metadata read of %s took longer than %s s; its reader was stopped",
                    path,
                    timeout_s,
                )
                self._discard()
                return RunMetadata()
            metadata, messages = worker.connection.recv()
        except (EOFError, OSError) as error:
            code = self._worker.process.exitcode if self._worker else None
            logger.warning(
                "metadata of %s not read: its reader process died (exit code %s: %s); "
                "a memory limit of %d MiB or a crash in HDF5",
                path,
                code,
                type(error).__name__,
                self.memory_mb,
            )
            self._discard()
            return RunMetadata()
        for message in messages:
            logger.warning("%s", message)
        assert isinstance(metadata, RunMetadata)
        return metadata

    def _start(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve,
            args=(child_end, self.memory_mb),
            name="autoreduce-metadata-reader",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._worker = _Worker(process, parent_end)
        return self._worker

    def _discard(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.connection.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(KILL_WAIT_S)
