"""Find a run's data file from its instrument's data template.

``Settings.data_pattern(instrument, run_number)`` fills the run into the template; the result may
still hold glob wildcards (``.../data/cycle_*/WISH00044733.nxs``) because the cycle folder changes
a few times a year. Exactly one matching file is the data file; none means the instrument has not
written it yet; several are an error an operator must resolve.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


class AmbiguousDataFileError(LookupError):
    """A data template matched more than one file; ``paths`` lists them, sorted."""

    def __init__(self, pattern: str, paths: list[Path]) -> None:
        self.pattern = pattern
        self.paths = paths
        shown = ", ".join(str(path) for path in paths)
        super().__init__(f"{len(paths)} files match {pattern}: {shown}")


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
