"""Find a run's data file in the archive, and check the ones clients name.

``Settings.data_pattern(instrument, run_number)`` fills the run into the instrument's ``data``
template; the result may still hold glob wildcards (``.../data/cycle_*/WISH00044733.nxs``)
because the cycle folder changes a few times a year. Exactly one matching file is the data
file; none means the instrument has not written it yet; several are an error an operator must
resolve. The detector and the API both find data files through :func:`locate_data_file`, so
they can never disagree about where a run's data is.

Every data file, found or named by a client, must resolve (symlinks followed) to a regular file
under the archive root: :func:`checked_data_file`. A FIFO, a device, ``/proc/self/environ`` or a
symlink out of the archive is refused before anything opens it.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from autoreduce.paths import UnsafePathError, confine
from autoreduce.settings import Settings


class AmbiguousDataFileError(LookupError):
    """A data template matched more than one file; ``paths`` lists them, sorted."""

    def __init__(self, pattern: str, paths: list[Path]) -> None:
        self.pattern = pattern
        self.paths = paths
        shown = ", ".join(str(path) for path in paths)
        super().__init__(f"{len(paths)} files match {pattern}: {shown}")


class DataFileError(ValueError):
    """A path cannot be a run's data file: outside the archive, or not a regular file."""


def find_data_file(pattern: str) -> Path | None:
    """The one regular file matching the glob ``pattern`` as an absolute path, None if none yet.

    Directories are not data files and do not count. Hidden files (``.name``) never match a
    wildcard, so an instrument's temporary ``.WISH00044733.nxs.part`` is not picked up.

    Raises:
        AmbiguousDataFileError: more than one file matches.
    """
    matches = sorted(
        Path(os.path.abspath(match)) for match in glob.glob(pattern) if os.path.isfile(match)
    )
    if not matches:
        return None
    if len(matches) > 1:
        raise AmbiguousDataFileError(pattern, matches)
    return matches[0]


def checked_data_file(settings: Settings, path: str | Path) -> Path:
    """``path`` resolved, if it is a regular file under the archive root.

    Raises:
        DataFileError: it resolves outside the archive, does not exist, or is not a regular
            file (a directory, FIFO, socket or device); the message says which.
    """
    try:
        resolved = confine(settings.archive.root, path, what="data path")
    except UnsafePathError as error:
        raise DataFileError(str(error)) from None
    try:
        mode = os.stat(resolved).st_mode  # stat never blocks, even on a FIFO
    except FileNotFoundError:
        raise DataFileError(f"data file {resolved} does not exist") from None
    except OSError as error:
        raise DataFileError(f"data file {resolved} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise DataFileError(f"data path {resolved} is not a regular file")
    return resolved


def locate_data_file(settings: Settings, instrument: str, run_number: int) -> Path | None:
    """The run's data file from its instrument's template, checked; None if not written yet.

    Raises:
        AmbiguousDataFileError: the template matches several files.
        DataFileError: the match resolves outside the archive (a symlink out of it).
    """
    found = find_data_file(settings.data_pattern(instrument, run_number))
    return None if found is None else checked_data_file(settings, found)
