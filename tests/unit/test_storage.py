"""Storage settings and key confinement (no server needed: nothing here talks to the store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from autoreduce.paths import UnsafePathError
from autoreduce.settings import Settings
from autoreduce.storage import NotInStore, ObjectStore, object_name, open_store


def settings(tmp_path: Path, **options: object) -> Settings:
    return Settings(data_dir=tmp_path, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "s3://key:secret@bucket/prefix",  # credentials never in the URL
        "s3://Bucket/prefix",
        "s3://b/prefix",
        "http://bucket/prefix",
        "s3://bucket/../up",
        "",
    ],
)
def test_a_storage_that_is_neither_file_nor_a_plain_s3_url_is_refused(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(ValidationError, match="storage"):
        settings(tmp_path, storage=url)


def test_file_storage_has_no_object_store_and_s3_storage_has_one(tmp_path: Path) -> None:
    assert open_store(settings(tmp_path)) is None
    store = open_store(settings(tmp_path, storage="s3://outputs-bucket/facility/autoreduce"))
    assert store is not None
    assert (store.bucket, store.prefix) == ("outputs-bucket", "facility/autoreduce")


def test_the_instrument_name_job_is_reserved(tmp_path: Path) -> None:
    table = {"plugin": "noop", "lastruns": "{root}/l.txt", "data": "{root}/{run_number}.nxs"}
    with pytest.raises(ValidationError, match="reserved"):
        settings(tmp_path, instruments={"JOB": table})


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/etc/passwd", "a//b", "./a", ""])
def test_an_output_name_that_could_leave_its_run_is_refused_as_a_key(name: str) -> None:
    with pytest.raises(UnsafePathError):
        object_name(name)


def test_plots_in_subdirectories_keep_their_relative_name() -> None:
    assert object_name("plots/bank1.png") == "plots/bank1.png"


def test_a_recorded_url_outside_the_prefix_is_not_in_the_store(tmp_path: Path) -> None:
    store = ObjectStore(settings(tmp_path, storage="s3://outputs-bucket/autoreduce"))
    inside = "s3://outputs-bucket/autoreduce/runs/GEM/1/v0/a1-abc"
    assert store.key_of(inside) == "autoreduce/runs/GEM/1/v0/a1-abc"
    for outside in (
        "s3://other-bucket/autoreduce/runs/GEM/1/v0/a1-abc",
        "s3://outputs-bucket/elsewhere/x",
        "s3://outputs-bucket/autoreduce/../secrets/x",
        "/outputs/GEM/1/v0",
    ):
        with pytest.raises(NotInStore):
            store.key_of(outside)
    with pytest.raises(UnsafePathError):
        store.run_prefix("../GEM", 1, 0)
