"""Read one short text value from an HDF5 file without reading outside it or past a size bound.

A value is read only if it is one string (scalar or 1-element, HDF5 string class, fixed or
variable length) of at most :data:`MAX_TEXT_BYTES` bytes, stored in the file itself. Anything
else raises :class:`Refused` with the reason, before HDF5 reads the value:

- links other than hard links (external, soft, user-defined): never followed, so HDF5 never
  opens another file by name, nor reaches one through a soft link's path;
- external storage (a dataset whose bytes live in other files) and virtual datasets;
- fixed-length strings: the declared size (the item size) must be within the bound, and that is
  all HDF5 reads;
- compressed values: only a single deflate (gzip) filter is accepted, on a fixed-length string.
  This module reads the stored chunk itself (at most twice the bound), inflates it with ``zlib``
  asking for at most the declared size plus one byte, and refuses it if it is longer; HDF5's own
  filter pipeline, which inflates without limit, is never run;
- variable-length strings: HDF5 allocates (and zero-fills) as many bytes as the stored length
  says *before* it finds the string in the file's heap, so a 2 KB file can claim 4 GiB. This
  module first reads the 4-byte stored length itself, from the dataset's raw storage (contiguous,
  or a single unfiltered chunk), through the same :class:`~autoreduce.nexus_file.FileSnapshot`
  HDF5 then reads from, and lets HDF5 read the string only if that length is within the bound.
  Compact or compressed variable-length strings, whose length cannot be read that way, are
  refused.
- Attributes are read only if fixed-length within the bound. A variable-length attribute (what
  h5py writes for ``attrs["NX_class"] = "NXentry"``) is read by HDF5 as it is: its stored length
  lives in the object header, out of reach of this module, so it is *not* bounded.
"""

from __future__ import annotations

import string
import struct
import zlib
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5d, h5s, h5t, h5z

from autoreduce.nexus_file import FileSnapshot

#: Most bytes of one string value read from a file (title, experiment reference, NX_class).
MAX_TEXT_BYTES = 4096
#: Most bytes of a compressed chunk read: deflate never grows data by more than this.
MAX_STORED_BYTES = 2 * MAX_TEXT_BYTES


class Refused(ValueError):
    """A value this module will not read; the message says why."""


def hard_link_child(group: h5py.Group, name: str) -> h5py.Group | h5py.Dataset | None:
    """``group[name]`` if it is there as a hard link; None if absent; :class:`Refused` otherwise."""
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise Refused(f"{group.name}/{name} is a {type(link).__name__}, not followed")
    item = group[name]
    if not isinstance(item, h5py.Group | h5py.Dataset):
        raise Refused(f"{item.name} is a {type(item).__name__}")
    return item


def read_text_dataset(dataset: h5py.Dataset, snapshot: FileSnapshot) -> str:
    """The one string in ``dataset``, stripped; :class:`Refused` unless it is safe to read."""
    if dataset.is_virtual:
        raise Refused(f"{dataset.name} is a virtual dataset")
    create_plist = dataset.id.get_create_plist()
    if create_plist.get_external_count():
        raise Refused(f"{dataset.name} uses external storage")
    _check_one_string(dataset.name, dataset.id.get_space(), dataset.id.get_type())
    if dataset.id.get_type().is_variable_str():
        _check_stored_vlen_length(dataset, create_plist, snapshot)
        return as_text(dataset[()])
    if create_plist.get_nfilters():
        return as_text(np.bytes_(_inflate_single_chunk(dataset, create_plist, snapshot)))
    return as_text(dataset[()])


def read_text_attribute(item: h5py.HLObject, name: str) -> str:
    """The one-string attribute ``name`` of ``item``, stripped; "" if absent."""
    if not h5a.exists(item.id, name.encode()):
        return ""
    attribute = h5a.open(item.id, name.encode())
    _check_one_string(f"{item.name}@{name}", attribute.get_space(), attribute.get_type())
    return as_text(item.attrs[name])


def as_text(value: Any) -> str:
    """A scalar, 1-element array, bytes or str value as text, stripped of whitespace and NULs."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    return str(value).strip(string.whitespace + "\x00")


def _check_one_string(where: str, space: h5s.SpaceID, text_type: h5t.TypeID) -> None:
    """Refuse all but one string (scalar or 1 element) whose declared size is within the bound."""
    if space.get_simple_extent_type() == h5s.NULL:
        raise Refused(f"{where} holds no value (null dataspace)")
    count = space.get_simple_extent_npoints()
    if count != 1:
        raise Refused(f"{where} holds {count} values, not one")
    if text_type.get_class() != h5t.STRING:
        raise Refused(f"{where} is not a string")
    if not text_type.is_variable_str() and text_type.get_size() > MAX_TEXT_BYTES:
        raise Refused(f"{where} is {text_type.get_size()} bytes, over {MAX_TEXT_BYTES}")


def _check_stored_vlen_length(
    dataset: h5py.Dataset, create_plist: h5py.h5p.PropDCID, snapshot: FileSnapshot
) -> None:
    """Refuse a variable-length string whose stored length (first 4 bytes, LE) is over the bound."""
    if create_plist.get_nfilters():
        raise Refused(f"{dataset.name} is a compressed variable-length string")
    layout = create_plist.get_layout()
    if layout == h5d.CONTIGUOUS:
        offset = dataset.id.get_offset()
    elif layout == h5d.CHUNKED:
        offset = dataset.id.get_chunk_info(0).byte_offset if dataset.id.get_num_chunks() else None
    else:
        raise Refused(f"{dataset.name} is a variable-length string in a layout not checked")
    if offset is None:
        raise Refused(f"{dataset.name} has no value written")
    stored = snapshot.pread(offset, 4)
    if len(stored) != 4:
        raise Refused(f"{dataset.name} is stored past the end of the file")
    (length,) = struct.unpack("<I", stored)
    if length > MAX_TEXT_BYTES:
        raise Refused(f"{dataset.name} is {length} bytes, over {MAX_TEXT_BYTES}")


def _inflate_single_chunk(
    dataset: h5py.Dataset, create_plist: h5py.h5p.PropDCID, snapshot: FileSnapshot
) -> bytes:
    """The fixed-length string in a deflated dataset's one chunk, inflated with a bound."""
    filters = [create_plist.get_filter(index)[0] for index in range(create_plist.get_nfilters())]
    if filters != [h5z.FILTER_DEFLATE]:
        raise Refused(f"{dataset.name} has filters {filters}; only a single deflate is read")
    item_bytes = dataset.id.get_type().get_size()
    chunk_bytes = item_bytes * int(np.prod(create_plist.get_chunk()))
    if chunk_bytes > MAX_TEXT_BYTES:
        raise Refused(f"{dataset.name} has {chunk_bytes}-byte chunks, over {MAX_TEXT_BYTES}")
    if dataset.id.get_num_chunks() != 1:
        raise Refused(f"{dataset.name} has no value written")
    chunk = dataset.id.get_chunk_info(0)
    if chunk.size > MAX_STORED_BYTES:
        raise Refused(f"{dataset.name} stores {chunk.size} bytes, over {MAX_STORED_BYTES}")
    stored = snapshot.pread(chunk.byte_offset, chunk.size)
    if chunk.filter_mask & 1:  # deflate was skipped for this chunk: stored as is
        inflated = stored
    else:
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(stored, chunk_bytes + 1)
        except zlib.error as error:
            raise Refused(f"{dataset.name} is not valid deflate data: {error}") from None
        if len(inflated) > chunk_bytes or inflater.unconsumed_tail:
            raise Refused(f"{dataset.name} inflates past its declared {chunk_bytes} bytes")
    if len(inflated) != chunk_bytes:
        raise Refused(f"{dataset.name} inflates to {len(inflated)} bytes, not {chunk_bytes}")
    return inflated[:item_bytes]
