"""What a run's NeXus file says about it: a value with no HDF5 behind it.

It lives apart from :mod:`autoreduce.nexus` so the services that only pass it around (the API,
which reads files in :mod:`autoreduce.metadata_reader`'s worker process) do not import h5py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunMetadata:
    """What the NXentry says about a run; empty strings where it says nothing readable."""

    experiment_ref: str = ""
    title: str = ""
