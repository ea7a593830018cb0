"""Read a run's metadata (experiment reference and title) from its NeXus file.

Recording a run must never fail because of its data file: whatever is missing or unreadable
comes back as an empty string, with the reason logged as a warning.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunMetadata:
    """What the NXentry says about a run; empty strings where it says nothing readable."""

    experiment_ref: str = ""
    title: str = ""


def _as_text(value: Any) -> str:
    """A scalar, 1-element array, bytes or str dataset value as stripped text."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected one value, found {value.size}")
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    return str(value).strip(string.whitespace + "\x00")


def _first_entry(nexus: h5py.File) -> h5py.Group | None:
    """The first group whose NX_class is NXentry (in name order), else a group named entry."""
    for name in sorted(nexus):
        item = nexus.get(name)
        if isinstance(item, h5py.Group) and _as_text(item.attrs.get("NX_class", "")) == "NXentry":
            return item
    fallback = nexus.get("entry")
    return fallback if isinstance(fallback, h5py.Group) else None


def _read_field(entry: h5py.Group, name: str, path: Path) -> str:
    item = entry.get(name)
    if not isinstance(item, h5py.Dataset):
        logger.warning("no %s in %s's %s", name, path, entry.name)
        return ""
    try:
        return _as_text(item[()])
    except (OSError, ValueError, TypeError) as error:
        logger.warning("cannot read %s%s: %s", path, item.name, error)
        return ""


def read_run_metadata(path: Path) -> RunMetadata:
    """Read ``experiment_identifier`` and ``title`` from the first NXentry of ``path``.

    Never raises: a missing, unreadable or corrupt file, or a missing field, gives empty strings
    and a warning naming the reason.
    """
    try:
        with h5py.File(path, "r") as nexus:
            entry = _first_entry(nexus)
            if entry is None:
                logger.warning("no NXentry in %s", path)
                return RunMetadata()
            return RunMetadata(
                experiment_ref=_read_field(entry, "experiment_identifier", path),
                title=_read_field(entry, "title", path),
            )
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError... all mean "unread"
        logger.warning("cannot read run metadata from %s: %s", path, error)
        return RunMetadata()
