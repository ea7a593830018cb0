"""Read a run's metadata (experiment reference and title) from its NeXus file.

Recording a run must never fail because of its data file: whatever is missing, unreadable or
refused comes back as an empty string, with the reason logged as a warning. The file is opened
only if it is a regular file, without blocking (:mod:`autoreduce.nexus_file`), and each value is
read only if it is one string of at most :data:`MAX_TEXT_BYTES` bytes stored in the file itself
(:mod:`autoreduce.nexus_text` lists what is refused and how each bound is enforced).
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py

from autoreduce.nexus_file import FileSnapshot, open_regular_file
from autoreduce.nexus_text import (
    MAX_TEXT_BYTES,
    Refused,
    hard_link_child,
    read_text_attribute,
    read_text_dataset,
)
from autoreduce.run_metadata import RunMetadata

__all__ = ["MAX_TEXT_BYTES", "RunMetadata", "read_run_metadata"]

logger = logging.getLogger(__name__)


def _first_entry(nexus: h5py.File, path: Path) -> h5py.Group | None:
    """The first group whose NX_class is NXentry (in name order), else a group named entry.

    Only hard links are followed; a group whose NX_class cannot be read is skipped.
    """
    for name in sorted(nexus):
        try:
            item = hard_link_child(nexus, name)
            if isinstance(item, h5py.Group) and read_text_attribute(item, "NX_class") == "NXentry":
                return item
        except (Refused, OSError, KeyError, ValueError, TypeError) as error:
            logger.warning("skipping /%s of %s: %s", name, path, error)
    try:
        fallback = hard_link_child(nexus, "entry")
    except Refused as error:
        logger.warning("skipping /entry of %s: %s", path, error)
        return None
    return fallback if isinstance(fallback, h5py.Group) else None


def _read_field(entry: h5py.Group, name: str, path: Path, snapshot: FileSnapshot) -> str:
    try:
        item = hard_link_child(entry, name)
        if not isinstance(item, h5py.Dataset):
            logger.warning("no %s dataset in %s's %s", name, path, entry.name)
            return ""
        return read_text_dataset(item, snapshot)
    except (Refused, OSError, KeyError, ValueError, TypeError) as error:
        logger.warning("cannot read %s%s/%s: %s", path, entry.name, name, error)
        return ""


def read_run_metadata(path: Path) -> RunMetadata:
    """Read ``experiment_identifier`` and ``title`` from the first NXentry of ``path``.

    Never raises: a missing, unreadable, corrupt or non-regular file, a missing field, or a field
    refused by :func:`autoreduce.nexus_text.read_text_dataset` gives empty strings and a warning
    naming the reason. Each string is at most :data:`MAX_TEXT_BYTES` bytes (UTF-8 encoded, before
    decoding); callers truncate further.
    """
    try:
        with open_regular_file(path) as snapshot, h5py.File(snapshot, "r") as nexus:
            entry = _first_entry(nexus, path)
            if entry is None:
                logger.warning("no NXentry in %s", path)
                return RunMetadata()
            return RunMetadata(
                experiment_ref=_read_field(entry, "experiment_identifier", path, snapshot),
                title=_read_field(entry, "title", path, snapshot),
            )
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError... all mean "unread"
        logger.warning("cannot read run metadata from %s: %s", path, error)
        return RunMetadata()
