"""read_run_metadata: the experiment reference and title of a run, never an exception."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoreduce.demo.nexus import write_powder_run
from autoreduce.nexus import RunMetadata, read_run_metadata


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
