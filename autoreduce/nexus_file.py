"""A data file opened for h5py: without blocking, only if regular, read through a bounded snapshot.

The file is opened by this module (``O_RDONLY | O_NONBLOCK | O_CLOEXEC``, so a FIFO or a device
never blocks the open), checked with ``fstat`` on the open descriptor (no check-then-open race),
and handed to h5py as a file object, so HDF5 reads only through :class:`FileSnapshot` and never
opens the path itself.

Every byte HDF5 or this package reads goes through :class:`FileSnapshot`, which reads each
:data:`PAGE_BYTES` page of the file at most once and keeps it: HDF5 and the checks made before
HDF5 reads a value (a stored string length, a compressed chunk) see the same bytes even if the file
changes meanwhile, and no more than :data:`MAX_READ_BYTES` of the file are ever read or held.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

#: Granularity of reads from the file, in bytes.
PAGE_BYTES = 4096
#: Most bytes of one file read (and held) while reading its metadata: 16 MiB.
MAX_READ_BYTES = 16 * 1024 * 1024


class FileSnapshot(io.RawIOBase):
    """A read-only, seekable view of an open file that reads each page at most once.

    Its size is the file's size when it was opened; what is appended later is not seen. Reading
    more than :data:`MAX_READ_BYTES` distinct bytes raises :class:`OSError`.
    """

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._position = 0
        self._pages: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of the file")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.pread(self._position, len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        self._position += len(data)
        return len(data)

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
        end = min(offset + size, self._size)
        if end <= offset:
            return b""
        first, last = offset // PAGE_BYTES, (end - 1) // PAGE_BYTES
        data = b"".join(self._page(index) for index in range(first, last + 1))
        start = offset - first * PAGE_BYTES
        return data[start : start + end - offset]

    def _page(self, index: int) -> bytes:
        page = self._pages.get(index)
        if page is None:
            if (len(self._pages) + 1) * PAGE_BYTES > MAX_READ_BYTES:
                raise OSError(
                    f"reading metadata needs more than {MAX_READ_BYTES} bytes of the file"
                )
            page = os.pread(self._fd, PAGE_BYTES, index * PAGE_BYTES)
            self._pages[index] = page
        return page

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_regular_file(path: Path) -> FileSnapshot:
    """Open ``path`` for reading as a :class:`FileSnapshot`; refuse anything but a regular file.

    Raises :class:`OSError` if it cannot be opened, or is a directory, FIFO, socket or device
    ("not a regular file"). Opening never blocks: ``O_NONBLOCK`` makes a FIFO without a writer
    open at once, and it is then refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{path} is not a regular file")
        return FileSnapshot(fd, status.st_size)
    except BaseException:
        os.close(fd)
        raise
