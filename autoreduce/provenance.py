"""Provenance of a run version: which code reduced which bytes, where.

Stored as one JSON object in the run's ``provenance`` column (one column, because the set of
facts will grow and is only ever read whole, with the run)::

    {"plugin": "noop", "plugin_distribution": "autoreduce", "plugin_version": "0.1.0",
     "environment_fingerprint": "<sha256 hex>", "environment_packages": 212,
     "processor": "host:pid:abc123", "host": "host",
     "data_file": {"path": "/archive/...", "size_bytes": 1048576,
                   "modified_at": "2026-11-24T06:40:00.123456+00:00", "sha256": "<hex>"},
     "plugin_change": "plugin noop 0.1.0 → 0.2.0 since v0"}

The plugin's version is the version of the installed distribution that provides its entry point
(``importlib.metadata``); the environment fingerprint is the SHA-256 of the sorted
``name==version`` lines of every installed distribution, computed once per processor. The data
file's facts are computed in the reduction child (:func:`data_file_facts`), never on the API's
path. ``data_file`` is absent when no child ran (the run failed before its reduction);
``plugin_change`` is present only when the plugin's version differs from its base version's.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

HASH_BLOCK_BYTES = 1024 * 1024  # the data file is read 1 MiB at a time
PLUGIN_ENTRY_POINTS = "autoreduce.plugins"
UNKNOWN = "unknown"


def data_file_facts(path: Path) -> dict[str, Any]:
    """The size (bytes), modification time (ISO 8601, UTC) and SHA-256 of the file at ``path``.

    Streams the file in blocks of ``HASH_BLOCK_BYTES`` (1 MiB), so memory stays flat.

    Raises:
        OSError: the file cannot be opened or read (missing, unreadable).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        stat = os.fstat(data.fileno())
        while block := data.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return {
        "path": str(path),
        "size_bytes": stat.st_size,
        "modified_at": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
        "sha256": digest.hexdigest(),
    }


@cache
def plugin_distribution(plugin: str) -> tuple[str, str]:
    """(distribution name, version) of the package providing entry point ``plugin``.

    ``("unknown", "unknown")`` when no installed distribution declares it (a plugin registered
    by hand, as in tests).
    """
    for entry_point in metadata.entry_points(group=PLUGIN_ENTRY_POINTS, name=plugin):
        dist = entry_point.dist
        if dist is not None:
            return dist.metadata["Name"] or UNKNOWN, dist.version or UNKNOWN
    return UNKNOWN, UNKNOWN


def environment_fingerprint() -> tuple[str, int]:
    """(SHA-256 hex of the sorted ``name==version`` lines, number of distributions) of this
    Python environment. Call it once per process: it reads every distribution's metadata.
    """
    lines = sorted(
        {
            f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
            for dist in metadata.distributions()
        }
    )
    digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    return digest, len(lines)


class ProcessorProvenance:
    """What one processor knows about itself: computed once, stamped on every run it records."""

    def __init__(self, processor_id: str) -> None:
        self.processor_id = processor_id
        self.host = socket.gethostname()
        self.environment, self.packages = environment_fingerprint()

    def for_plugin(self, plugin: str, data_file: dict[str, Any] | None) -> dict[str, Any]:
        """The provenance of a run this processor reduced (or failed) with ``plugin``."""
        distribution, version = plugin_distribution(plugin)
        record: dict[str, Any] = {
            "plugin": plugin,
            "plugin_distribution": distribution,
            "plugin_version": version,
            "environment_fingerprint": self.environment,
            "environment_packages": self.packages,
            "processor": self.processor_id,
            "host": self.host,
        }
        if data_file is not None:
            record["data_file"] = data_file
        return record


def plugin_change(
    current: dict[str, Any], base: dict[str, Any] | None, base_version: int
) -> str | None:
    """``"plugin noop 0.1.0 → 0.2.0 since v0"`` when ``current``'s plugin or version differs
    from ``base``'s (the provenance of version ``base_version``); None when they agree or no
    base recorded a plugin."""
    if not base or not base.get("plugin_version"):
        return None
    before = (base.get("plugin"), base.get("plugin_version"))
    after = (current.get("plugin"), current.get("plugin_version"))
    if before == after:
        return None
    if before[0] == after[0]:
        return f"plugin {after[0]} {before[1]} → {after[1]} since v{base_version}"
    return f"plugin {before[0]} {before[1]} → {after[0]} {after[1]} since v{base_version}"
