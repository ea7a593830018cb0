"""Where the shipper is in each file: persisted after every delivered batch, written atomically.

A file is known by its identity (device and inode), not its name, so a rotated file
(``api.jsonl`` renamed ``api.jsonl.1``) keeps its place and the new ``api.jsonl`` starts at 0.
The state is one small JSON document, replaced with ``os.replace`` after an ``fsync`` of the
new copy: a shipper killed at any instant finds the last complete state on restart, so it
neither loses a record nor ships one twice (a re-sent batch has the same ``_id`` s anyway).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_VERSION = 1


@dataclass(frozen=True, order=True)
class FileIdentity:
    """A file as the kernel knows it: it survives renames within the file system."""

    device: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        return cls(stat.st_dev, stat.st_ino)

    @property
    def key(self) -> str:
        return f"{self.device}:{self.inode}"

    @classmethod
    def from_key(cls, key: str) -> FileIdentity:
        device, inode = key.split(":")
        return cls(int(device), int(inode))


@dataclass
class FilePosition:
    """How far into one file every record has been delivered (bytes), and its last name seen."""

    offset: int
    path: str


class OffsetStore:
    """The persisted positions of every followed file, in ``<state_dir>/offsets.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[FileIdentity, FilePosition] = {}

    @classmethod
    def load(cls, path: Path) -> OffsetStore:
        """The store at ``path``; empty when there is none yet.

        Raises:
            ValueError: the file is not a state this version wrote (the message says where).
        """
        store = cls(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return store
        try:
            document = json.loads(text)
            for key, entry in document["files"].items():
                store.positions[FileIdentity.from_key(key)] = FilePosition(
                    int(entry["offset"]), str(entry["path"])
                )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not a ship-logs offsets file: {error}") from None
        return store

    def save(self) -> None:
        """Write the positions to a temporary sibling, fsync it, and rename it into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "version": STATE_VERSION,
            "files": {
                identity.key: {"offset": position.offset, "path": position.path}
                for identity, position in sorted(self.positions.items())
            },
        }
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(document, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
