"""The metadata reader's worker process: reads, time limit, memory cap and crashes.

The worker is a real process started through the fork server; a hostile file is one whose
NX_class attribute claims a 1 GiB string (8 KB on disk), which made an unconfined HDF5 read grow
to about 1 GB of RSS.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from autoreduce.metadata_reader import IsolatedMetadataReader
from autoreduce.nexus import RunMetadata

TIMEOUT_S = 30.0  # generous: a hang guard on a shared machine, never a speed assertion


def _run_file(path: Path, title: str = "Vanadium rod") -> Path:
    with h5py.File(path, "w") as nexus:
        entry = nexus.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["experiment_identifier"] = "1920123"
        entry["title"] = title
    return path


def _forged_attribute_file(path: Path, claimed_bytes: int = 1 << 30) -> Path:
    """A run file whose NX_class attribute's stored length is forged to ``claimed_bytes``."""
    _run_file(path)
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")  # the global heap collection holding "NXentry"
    descriptor = data.find(struct.pack("<I", len("NXentry")) + struct.pack("<Q", heap))
    assert heap > 0 and descriptor > 0, "the file layout is not the one this test forges"
    data[descriptor : descriptor + 4] = struct.pack("<I", claimed_bytes)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def reader() -> Iterator[IsolatedMetadataReader]:
    metadata_reader = IsolatedMetadataReader(memory_mb=256)
    yield metadata_reader
    metadata_reader.close()


def _worker_pid(reader: IsolatedMetadataReader) -> int:
    assert reader._worker is not None
    pid = reader._worker.process.pid
    assert pid is not None
    return pid


def test_a_run_file_is_read_in_the_worker(reader: IsolatedMetadataReader, tmp_path: Path) -> None:
    metadata = reader.read(_run_file(tmp_path / "run.nxs"), TIMEOUT_S)

    assert metadata == RunMetadata("1920123", "Vanadium rod")
    assert _worker_pid(reader) != os.getpid()


def test_the_worker_is_reused_between_reads(reader: IsolatedMetadataReader, tmp_path: Path) -> None:
    reader.read(_run_file(tmp_path / "a.nxs"), TIMEOUT_S)
    first = _worker_pid(reader)

    metadata = reader.read(_run_file(tmp_path / "b.nxs", title="second"), TIMEOUT_S)

    assert metadata.title == "second"
    assert _worker_pid(reader) == first


def test_a_forged_attribute_length_is_stopped_by_the_workers_memory_cap(
    reader: IsolatedMetadataReader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="autoreduce.nexus")
    hostile = _forged_attribute_file(tmp_path / "hostile.nxs")
    peak_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    metadata = reader.read(hostile, TIMEOUT_S)
    after = reader.read(_run_file(tmp_path / "good.nxs"), TIMEOUT_S)

    peak_after_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the capped worker fails to allocate the 1 GiB and falls back to the group named "entry"
    assert metadata in (RunMetadata(), RunMetadata("1920123", "Vanadium rod"))
    assert peak_after_mb - peak_before_mb < 200  # the 1 GiB went nowhere near this process
    assert after == RunMetadata("1920123", "Vanadium rod")  # and the reader goes on
    assert "memory allocation failed" in caplog.text


def test_a_read_past_its_time_limit_stops_the_worker_and_the_next_read_works(
    reader: IsolatedMetadataReader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _run_file(tmp_path / "run.nxs")
    reader.read(path, TIMEOUT_S)
    stuck = _worker_pid(reader)
    os.kill(stuck, signal.SIGSTOP)  # a worker stuck inside HDF5, as far as the caller can tell

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = reader.read(path, 0.5)

    assert metadata == RunMetadata()
    assert "took longer than 0.5 s" in caplog.text
    assert reader.read(path, TIMEOUT_S) == RunMetadata("1920123", "Vanadium rod")
    assert _worker_pid(reader) != stuck


def test_a_worker_that_died_is_replaced(
    reader: IsolatedMetadataReader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _run_file(tmp_path / "run.nxs")
    reader.read(path, TIMEOUT_S)
    dead = _worker_pid(reader)
    os.kill(dead, signal.SIGKILL)

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        first = reader.read(path, TIMEOUT_S)
        second = reader.read(path, TIMEOUT_S)

    assert first == RunMetadata() and "died" in caplog.text
    assert second == RunMetadata("1920123", "Vanadium rod")
    assert _worker_pid(reader) != dead


def test_the_readers_warnings_reach_the_callers_log(
    reader: IsolatedMetadataReader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "empty.nxs"
    with h5py.File(path, "w"):
        pass

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        assert reader.read(path, TIMEOUT_S) == RunMetadata()

    assert "no NXentry" in caplog.text
