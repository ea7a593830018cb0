"""Provenance: the data file's facts, the plugin's distribution, a change of plugin version."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autoreduce import __version__
from autoreduce.provenance import (
    HASH_BLOCK_BYTES,
    ProcessorProvenance,
    data_file_facts,
    environment_fingerprint,
    plugin_change,
    plugin_distribution,
)


def test_data_file_facts_are_its_size_mtime_and_sha256(tmp_path: Path) -> None:
    path = tmp_path / "GEM00000001.nxs"
    data = os.urandom(2 * HASH_BLOCK_BYTES + 123)
    path.write_bytes(data)
    os.utime(path, (1_700_000_000, 1_700_000_000))

    facts = data_file_facts(path)

    assert facts == {
        "path": str(path),
        "size_bytes": len(data),
        "modified_at": datetime.fromtimestamp(1_700_000_000, UTC).isoformat(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_a_missing_data_file_raises_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        data_file_facts(tmp_path / "missing.nxs")


def test_a_built_in_plugin_comes_from_the_autoreduce_distribution() -> None:
    assert plugin_distribution("noop") == ("autoreduce", __version__)


def test_a_plugin_no_distribution_declares_is_unknown() -> None:
    assert plugin_distribution("registered_by_hand") == ("unknown", "unknown")


def test_the_environment_fingerprint_is_stable_and_covers_autoreduce() -> None:
    digest, packages = environment_fingerprint()

    assert environment_fingerprint() == (digest, packages)
    assert len(digest) == 64 and packages > 10


def test_a_processors_provenance_names_plugin_processor_and_host() -> None:
    record = ProcessorProvenance("host:1:abc").for_plugin("noop", None)

    assert record["plugin_version"] == __version__ and record["processor"] == "host:1:abc"
    assert "data_file" not in record


@pytest.mark.parametrize(
    ("base", "change"),
    [
        ({"plugin": "noop", "plugin_version": "1.2"}, "plugin noop 1.2 → 1.3 since v0"),
        ({"plugin": "old", "plugin_version": "2.0"}, "plugin old 2.0 → noop 1.3 since v0"),
        ({"plugin": "noop", "plugin_version": "1.3"}, None),
        (None, None),
    ],
)
def test_a_change_of_plugin_since_the_base_version_is_described(
    base: dict[str, str] | None, change: str | None
) -> None:
    current = {"plugin": "noop", "plugin_version": "1.3"}

    assert plugin_change(current, base, 0) == change
