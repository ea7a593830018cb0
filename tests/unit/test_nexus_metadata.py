"""read_run_metadata: the experiment reference and title of a run, never an exception."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoreduce.demo.nexus import write_powder_run
from autoreduce.nexus import (
    MAX_TEXT_BYTES,
    RunMetadata,
    read_run_metadata,
)


def _entry_file(path: Path, entry_name: str = "entry", **fields: object) -> Path:
    """An HDF5 file with one NXentry holding ``fields`` as datasets."""
    with h5py.File(path, "w") as nexus:
        entry = nexus.create_group(entry_name)
        entry.attrs["NX_class"] = "NXentry"
        for name, value in fields.items():
            entry[name] = value
    return path


def test_synthetic_run_metadata_is_read_back(tmp_path: Path) -> None:
    path = write_powder_run(
        tmp_path / "WISH00044733.nxs",
        instrument="WISH",
        run_number=44733,
        experiment_ref="1920123",
        title="Si standard, 300 K",
        n_events=1_000,
        seed=1,
    )

    metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="1920123", title="Si standard, 300 K")


def test_bytes_fields_are_decoded_as_utf8(tmp_path: Path) -> None:
    path = _entry_file(
        tmp_path / "run.nxs",
        experiment_identifier=np.bytes_(b"RB1920123"),
        title=np.bytes_("Ångström test".encode()),
    )

    metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="RB1920123", title="Ångström test")


def test_one_element_arrays_give_their_element(tmp_path: Path) -> None:
    path = _entry_file(
        tmp_path / "run.nxs",
        experiment_identifier=np.array([b"1920123"]),
        title=np.array(["vanadium rod"], dtype=h5py.string_dtype()),
    )

    metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="1920123", title="vanadium rod")


def test_padding_around_fixed_length_strings_is_stripped(tmp_path: Path) -> None:
    path = _entry_file(
        tmp_path / "run.nxs",
        experiment_identifier=np.bytes_(b"1920123   "),
        title=np.bytes_(b"empty can\x00\x00"),
    )

    assert read_run_metadata(path) == RunMetadata(experiment_ref="1920123", title="empty can")


def test_first_nxentry_is_found_whatever_its_name(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", "raw_data_1", experiment_identifier="7", title="t")

    assert read_run_metadata(path) == RunMetadata(experiment_ref="7", title="t")


def test_missing_fields_are_empty_and_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _entry_file(tmp_path / "run.nxs", title="only a title")

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="", title="only a title")
    assert "experiment_identifier" in caplog.text


def test_missing_file_gives_empty_metadata_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-written-yet.nxs"

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata()
    assert str(path) in caplog.text


def test_corrupt_file_gives_empty_metadata_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "half-written.nxs"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 100)

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata()
    assert "half-written.nxs" in caplog.text


def test_file_without_an_entry_gives_empty_metadata(tmp_path: Path) -> None:
    path = tmp_path / "empty.nxs"
    with h5py.File(path, "w") as nexus:
        nexus.create_group("not_an_entry")

    assert read_run_metadata(path) == RunMetadata()


def test_a_field_that_is_a_group_gives_empty_text(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        nexus["entry"].create_group("title")

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="")


titles = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=80
).filter(lambda title: title == title.strip())


@settings(max_examples=40, deadline=None)
@given(title=titles, experiment_ref=st.from_regex(r"[0-9A-Z]{0,12}", fullmatch=True))
def test_any_unicode_title_round_trips(
    tmp_path_factory: pytest.TempPathFactory, title: str, experiment_ref: str
) -> None:
    path = _entry_file(
        tmp_path_factory.mktemp("titles") / "run.nxs",
        experiment_identifier=experiment_ref,
        title=title,
    )

    assert read_run_metadata(path) == RunMetadata(experiment_ref=experiment_ref, title=title)


# --- Hostile files: nothing from outside the file, nothing unbounded, no hang ---------------------

SECRET = b"SECRET-MARKER-0f3c"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Another HDF5 file beside the run, whose ``/secret`` holds :data:`SECRET`."""
    return _outside_file(tmp_path / "outside.h5")


def _outside_file(path: Path) -> Path:
    with h5py.File(path, "w") as other:
        other["secret"] = np.array([SECRET])
        other.attrs["note"] = SECRET
    return path


def _gzip_bomb(inflated_bytes: int) -> bytes:
    """A valid zlib stream of about ``inflated_bytes / 1000`` bytes inflating to that many zeros.

    Built from one raw-deflate block of 1 MiB of zeros, repeated (each block starts from an empty
    dictionary thanks to a full flush), so making a 1 GiB bomb costs milliseconds.
    """
    mebibyte = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * mebibyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler32 = ((inflated_bytes % 65521) << 16) | 1  # Adler-32 of that many zero bytes
    return (
        b"\x78\xda"
        + block * (inflated_bytes // mebibyte)
        + compressor.flush()
        + adler32.to_bytes(4, "big")
    )


def _bomb_title(entry: h5py.Group, inflated_bytes: int, declared_itemsize: int) -> None:
    """A gzip-filtered 1-element title whose one chunk inflates to ``inflated_bytes``."""
    title = entry.create_dataset(
        "title", shape=(1,), dtype=f"S{declared_itemsize}", chunks=(1,), compression="gzip"
    )
    title.id.write_direct_chunk((0,), _gzip_bomb(inflated_bytes))


def _forge_vlen_length(path: Path, dataset: str, claimed_bytes: int) -> None:
    """Overwrite the stored length of a contiguous variable-length string, leaving its data."""
    with h5py.File(path, "r") as nexus:
        offset = nexus[dataset].id.get_offset()
    with path.open("r+b") as raw:
        raw.seek(offset)
        raw.write(struct.pack("<I", claimed_bytes))


def _read_in_fresh_process(path: Path) -> tuple[RunMetadata, float]:
    """Read ``path`` in a new interpreter; its metadata and how much the read grew peak RSS, MB.

    A fresh process, so that an earlier test's high-water mark cannot hide the read's.
    """
    script = (
        "import json, resource, sys\n"
        "from pathlib import Path\n"
        "from autoreduce.nexus import read_run_metadata\n"
        "def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "before = peak()\n"
        "metadata = read_run_metadata(Path(sys.argv[1]))\n"
        "print(json.dumps([metadata.experiment_ref, metadata.title, peak() - before]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    experiment_ref, title, growth_mb = json.loads(done.stdout)
    return RunMetadata(experiment_ref=experiment_ref, title=title), growth_mb


def test_title_in_external_storage_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET * 10)
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        title = nexus["entry"].create_dataset(
            "title", shape=(1,), dtype="S100", external=[(str(secret), 0, 100)]
        )
        assert title[0].startswith(SECRET)  # the attack works on a plain h5py read

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert "external storage" in caplog.text


def test_title_behind_an_external_link_is_refused(
    tmp_path: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        nexus["entry/title"] = h5py.ExternalLink(str(outside), "/secret")

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert "ExternalLink" in caplog.text


def test_entry_behind_an_external_link_is_not_opened(tmp_path: Path) -> None:
    other = tmp_path / "other.nxs"
    _entry_file(other, experiment_identifier="SECRET", title="SECRET")
    path = tmp_path / "run.nxs"
    with h5py.File(path, "w") as nexus:
        nexus["entry"] = h5py.ExternalLink(str(other), "/entry")

    assert read_run_metadata(path) == RunMetadata()


def test_soft_link_leading_outside_the_file_is_refused(tmp_path: Path, outside: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        nexus["elsewhere"] = h5py.ExternalLink(str(outside), "/")
        nexus["entry/title"] = h5py.SoftLink("/elsewhere/secret")

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="")


def test_soft_links_are_not_followed_even_within_the_file(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42", real_title="t")
    with h5py.File(path, "a") as nexus:
        nexus["entry/title"] = h5py.SoftLink("/entry/real_title")

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="")


def test_virtual_dataset_sourcing_another_file_is_refused(
    tmp_path: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    layout = h5py.VirtualLayout(shape=(1,), dtype=f"S{len(SECRET)}")
    layout[0] = h5py.VirtualSource(str(outside), "secret", shape=(1,))[0]
    with h5py.File(path, "a") as nexus:
        nexus["entry"].create_virtual_dataset("title", layout)

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert "virtual" in caplog.text


def test_gzip_title_declaring_one_gib_is_refused_without_inflating(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        _bomb_title(nexus["entry"], inflated_bytes=1 << 30, declared_itemsize=1 << 30)

    metadata, growth_mb = _read_in_fresh_process(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert growth_mb < 200


def test_gzip_title_inflating_past_its_declared_size_is_refused_without_inflating(
    tmp_path: Path,
) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        _bomb_title(nexus["entry"], inflated_bytes=1 << 30, declared_itemsize=100)

    metadata, growth_mb = _read_in_fresh_process(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert growth_mb < 200


def test_small_gzip_title_is_read(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42")
    with h5py.File(path, "a") as nexus:
        nexus["entry"].create_dataset(
            "title", data=np.array([b"compressed run"]), compression="gzip"
        )

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="compressed run")


def test_fixed_length_title_over_the_bound_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _entry_file(
        tmp_path / "run.nxs",
        experiment_identifier="42",
        title=np.bytes_(b"x" * (MAX_TEXT_BYTES + 1)),
    )

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert str(MAX_TEXT_BYTES) in caplog.text


def test_fixed_length_title_at_the_bound_is_read(tmp_path: Path) -> None:
    path = _entry_file(tmp_path / "run.nxs", title=np.bytes_(b"x" * MAX_TEXT_BYTES))

    assert read_run_metadata(path).title == "x" * MAX_TEXT_BYTES


def test_variable_length_title_over_the_bound_is_refused(tmp_path: Path) -> None:
    path = _entry_file(
        tmp_path / "run.nxs", experiment_identifier="42", title="y" * (MAX_TEXT_BYTES + 1)
    )

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="")


def test_variable_length_title_claiming_one_gib_is_refused_without_allocating(
    tmp_path: Path,
) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42", title="abc")
    _forge_vlen_length(path, "entry/title", claimed_bytes=1 << 30)

    metadata, growth_mb = _read_in_fresh_process(path)

    assert metadata == RunMetadata(experiment_ref="42", title="")
    assert growth_mb < 200


def test_a_fifo_named_as_the_data_file_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "run.nxs"
    os.mkfifo(fifo)
    results: list[RunMetadata] = []
    reader = threading.Thread(target=lambda: results.append(read_run_metadata(fifo)), daemon=True)

    reader.start()
    reader.join(timeout=10)
    blocked = reader.is_alive()
    if blocked:  # let the stuck reader go, so that the test run can end
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    assert not blocked, "read_run_metadata blocked on a FIFO"
    assert results == [RunMetadata()]


@pytest.mark.parametrize("special", ["/dev/null", "/dev/zero", "a directory"])
def test_anything_but_a_regular_file_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, special: str
) -> None:
    path = tmp_path if special == "a directory" else Path(special)

    with caplog.at_level(logging.WARNING, logger="autoreduce.nexus"):
        metadata = read_run_metadata(path)

    assert metadata == RunMetadata()
    assert "not a regular file" in caplog.text


@pytest.mark.parametrize(
    "title",
    [
        pytest.param(np.int64(7), id="integer"),
        pytest.param(np.array([1, 2, 3]), id="integer array"),
        pytest.param(np.array([[b"a", b"b"], [b"c", b"d"]]), id="2-D strings"),
        pytest.param(np.array([b"a", b"b"]), id="two strings"),
        pytest.param(np.array([], dtype="S4"), id="no strings"),
        pytest.param(np.array([(b"t", 1)], dtype=[("text", "S4"), ("n", "i4")]), id="compound"),
        pytest.param(h5py.Empty("S10"), id="null dataspace"),
        pytest.param(np.array([b"run"], dtype="V3"), id="opaque"),
    ],
)
def test_a_title_that_is_not_one_string_gives_empty_text(tmp_path: Path, title: object) -> None:
    path = _entry_file(tmp_path / "run.nxs", experiment_identifier="42", title=title)

    assert read_run_metadata(path) == RunMetadata(experiment_ref="42", title="")


def test_long_nx_class_attribute_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "run.nxs"
    with h5py.File(path, "w") as nexus:
        decoy = nexus.create_group("a_decoy")
        decoy.attrs["NX_class"] = np.bytes_(b"NXentry" + b" " * MAX_TEXT_BYTES)
        decoy["title"] = "decoy"
        entry = nexus.create_group("b_entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["title"] = "real"

    assert read_run_metadata(path) == RunMetadata(title="real")


# --- The same, generated: any mix of hostile fields ---------------------------------------------

FIELD_KINDS = (
    "text",
    "bytes",
    "external storage",
    "external link",
    "soft link outside",
    "virtual",
    "gzip bomb",
    "long text",
    "forged length",
    "integer",
    "array",
    "null dataspace",
    "group",
    "missing",
)


def _write_field(
    path: Path, name: str, kind: str, n: int, outside: Path, secret: Path
) -> str | None:
    """Make ``/entry/<name>`` of ``kind`` in ``path``; the text it should read back, or None."""
    with h5py.File(path, "a") as nexus:
        entry = nexus.require_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        if kind == "text":
            entry[name] = f"{name} {n}"
            return f"{name} {n}"
        if kind == "bytes":
            entry[name] = np.bytes_(f"{name} {n}".encode())
            return f"{name} {n}"
        if kind == "external storage":
            entry.create_dataset(name, shape=(1,), dtype="S64", external=[(str(secret), 0, 64)])
        elif kind == "external link":
            entry[name] = h5py.ExternalLink(str(outside), "/secret")
        elif kind == "soft link outside":
            nexus.require_group("links")[name] = h5py.ExternalLink(str(outside), "/")
            entry[name] = h5py.SoftLink(f"/links/{name}/secret")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(1,), dtype=f"S{len(SECRET)}")
            layout[0] = h5py.VirtualSource(str(outside), "secret", shape=(1,))[0]
            entry.create_virtual_dataset(name, layout)
        elif kind == "gzip bomb":
            dataset = entry.create_dataset(
                name, shape=(1,), dtype="S100", chunks=(1,), compression="gzip"
            )
            dataset.id.write_direct_chunk((0,), _gzip_bomb((n + 1) << 20))
        elif kind == "long text":
            entry[name] = "z" * (MAX_TEXT_BYTES + 1 + n)
        elif kind == "forged length":
            entry[name] = "abc"
            offset = entry[name].id.get_offset()
            nexus.flush()
            with path.open("r+b") as raw:
                raw.seek(offset)
                raw.write(struct.pack("<I", (n + 1) << 20))
        elif kind == "integer":
            entry[name] = n
        elif kind == "array":
            entry[name] = np.array([f"{name} {i}".encode() for i in range(n)], dtype="S32")
            return f"{name} 0" if n == 1 else None
        elif kind == "null dataspace":
            entry[name] = h5py.Empty("S8")
        elif kind == "group":
            entry.create_group(name)
        return None


@settings(max_examples=60, deadline=None)
@given(
    title_kind=st.sampled_from(FIELD_KINDS),
    experiment_kind=st.sampled_from(FIELD_KINDS),
    n=st.integers(min_value=0, max_value=3),
)
def test_no_hostile_field_raises_leaks_or_exceeds_the_bound(
    tmp_path_factory: pytest.TempPathFactory, title_kind: str, experiment_kind: str, n: int
) -> None:
    directory = tmp_path_factory.mktemp("hostile")
    outside = _outside_file(directory / "outside.h5")
    secret = directory / "secret.txt"
    secret.write_bytes(SECRET * 8)
    path = directory / "run.nxs"
    h5py.File(path, "w").close()
    expected_title = _write_field(path, "title", title_kind, n, outside, secret)
    expected_ref = _write_field(path, "experiment_identifier", experiment_kind, n, outside, secret)

    metadata = read_run_metadata(path)

    for value, expected in (
        (metadata.title, expected_title),
        (metadata.experiment_ref, expected_ref),
    ):
        assert len(value.encode()) <= MAX_TEXT_BYTES
        assert SECRET.decode() not in value
        assert value == (expected or "")
