"""Follow the JSON-lines files named by glob patterns: complete lines, in order, from an offset.

Each scan globs the patterns again: a new identity is followed from its start, a name now
pointing at a new identity (rotation) is followed as well as the renamed old file, which is read
to its end while it is still open. A file shorter than its offset was truncated: it is read
again from 0. Files only ever opened read-only: the services never wait on the shipper.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass

from autoreduce.log_shipping.offsets import FileIdentity, FilePosition, OffsetStore

logger = logging.getLogger("autoreduce.ship_logs")
READ_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20  # a longer line is shipped cut, as a dead letter, never blocking


@dataclass(frozen=True)
class Line:
    """One complete line of a followed file: where it starts and where the next one starts."""

    identity: FileIdentity
    path: str
    offset: int
    end: int
    text: bytes


class Tailer:
    """Reads what the offset store has not yet delivered from every file the patterns match."""

    def __init__(self, patterns: list[str], store: OffsetStore) -> None:
        self.patterns = patterns
        self.store = store
        self._fds: dict[FileIdentity, int] = {}

    def scan(self) -> None:
        """Glob again: follow new files, forget files gone (and read to their end)."""
        seen: dict[FileIdentity, str] = {}
        for pattern in self.patterns:
            for name in sorted(glob.glob(pattern, recursive=True)):
                try:
                    stat = os.stat(name)
                except OSError:
                    continue
                if os.path.isfile(name):
                    seen.setdefault(FileIdentity.of(stat), name)
        for identity, name in seen.items():
            position = self.store.positions.get(identity)
            if position is None:
                self.store.positions[identity] = FilePosition(0, name)
            else:
                position.path = name
            if identity not in self._fds:
                self._open(identity, name)
        for identity, fd in list(self._fds.items()):
            position = self.store.positions.get(identity)
            if identity not in seen and (position is None or position.offset >= _size(fd)):
                os.close(fd)  # gone from the patterns (deleted) and read to its end
                del self._fds[identity]
        for identity in list(self.store.positions):
            if identity not in seen and identity not in self._fds:
                del self.store.positions[identity]

    def _open(self, identity: FileIdentity, name: str) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return
        if FileIdentity.of(os.fstat(fd)) != identity:  # replaced between stat and open
            os.close(fd)
            return
        self._fds[identity] = fd

    def read(self, max_lines: int) -> list[Line]:
        """Up to ``max_lines`` complete lines past the stored offsets, file by file in order."""
        lines: list[Line] = []
        for identity, fd in sorted(self._fds.items()):
            if len(lines) >= max_lines:
                break
            position = self.store.positions.get(identity)
            if position is None:
                continue
            lines.extend(self._read_file(identity, fd, position, max_lines - len(lines)))
        return lines

    def _read_file(
        self, identity: FileIdentity, fd: int, position: FilePosition, room: int
    ) -> list[Line]:
        size = os.fstat(fd).st_size
        if size < position.offset:
            logger.warning(
                "%s was truncated (%d bytes, read to %d); reading it again from its start",
                position.path,
                size,
                position.offset,
            )
            position.offset = 0
        lines: list[Line] = []
        offset = position.offset
        while len(lines) < room and offset < size:
            chunk = os.pread(fd, READ_BYTES, offset)
            if not chunk:
                break
            start = 0
            while len(lines) < room:
                newline = chunk.find(b"\n", start)
                if newline < 0:
                    break
                lines.append(
                    Line(
                        identity,
                        position.path,
                        offset + start,
                        offset + newline + 1,
                        chunk[start:newline],
                    )
                )
                start = newline + 1
            if start == 0:  # no complete line in a whole chunk
                if len(chunk) >= MAX_LINE_BYTES:
                    end = offset + len(chunk)
                    lines.append(Line(identity, position.path, offset, end, chunk))
                    start = len(chunk)
                else:
                    break  # the writer has not finished the line yet
            offset += start
        return lines

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _size(fd: int) -> int:
    return os.fstat(fd).st_size
