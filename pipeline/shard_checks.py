"""Shards prove themselves before they are read: no damaged byte reaches a model, and none crashes a reader.

Schema version 3 shards carry HDF5's ``fletcher32`` checksum on every chunk of every array: HDF5 checks it before the
decompressor runs (a damaged chunk raises an error instead of giving wrong values or crashing bitshuffle's zstd
decoder, which a flipped block header makes read out of bounds: a segmentation fault no ``try`` catches). Their
metadata is HDF5 1.10 format (checksummed object headers and chunk indexes), the spec column (variable-length
strings, which filters do not cover) is checked against the file's ``specs_sha256`` attribute, and the attributes
(kept in a heap without checksums once there are more than 8) against ``attrs_sha256``.

Shards of versions 1 and 2 have no such checksums: the first time a process opens one, the SHA-256 of its bytes is
checked against its entry in the ``index.json`` beside it (1.9 GB/s: about 0.5 s per GB on one core, once per
process and file). :data:`_PROVEN` remembers the files proven in this process (by path, size, modification time and
inode), so that forked DataLoader workers inherit the proof and repeated opens cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping
from pathlib import Path

import h5py
import numpy as np

from .shard_index import file_sha256, read_index

FIRST_CHECKSUMMED_VERSION = 3
_PROVEN: set[tuple] = set()  # process-wide: stat signatures of the shard files proven intact in this process


class ShardReadError(ValueError):
    """A shard that cannot be read safely (damaged, truncated or unprovable); the message names it and the fix."""


def damaged(path: str | Path, what: str) -> ShardReadError:
    """The error for a damaged shard: what is wrong, and how to find and replace the broken shards."""
    path = Path(path)
    return ShardReadError(
        f"shard {path}: {what}. `dcgen verify {path.parent}` lists the damaged shards; delete them and re-run the "
        f"`dcgen render` command that made them (it renders only what is missing)")


def spec_column_sha256(h5: h5py.File) -> str:
    """SHA-256 (hex) of the ``spec`` column's JSON lines: equal to the ``specs_sha256`` attribute the writer set
    (:func:`spatialdc.pipeline.specs.specs_hash`) when the column is intact."""
    h = hashlib.sha256()
    for text in h5["spec"][()]:
        h.update((text if isinstance(text, bytes) else text.encode("utf-8")) + b"\n")
    return h.hexdigest()


def attrs_sha256(attrs: Mapping) -> str:
    """SHA-256 (hex) of a shard's attributes (all but ``attrs_sha256``) as canonical JSON: the same for the values
    the writer set and those h5py reads back (NumPy scalars)."""
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items() if k != "attrs_sha256"}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode("utf-8")).hexdigest()


def file_signature(path: str | Path) -> tuple:
    """What identifies a file's version within a process: (real path, size, modification time, inode, device)."""
    path = Path(path)
    st = path.stat()
    return os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def prove_shard(path: str | Path, h5: h5py.File) -> None:
    """Check an open shard before any of its arrays is read, once per process and file (see the module text).

    Raises:
        ShardReadError: attributes or a spec column that differ from their checksums (version 3); a version 1-2 file whose
            SHA-256 differs from its ``index.json`` entry, or that has no entry to be checked against.
    """
    path = Path(path)
    key = file_signature(path)
    if key in _PROVEN:
        return
    version = int(h5.attrs.get("schema_version", -1))
    if version >= FIRST_CHECKSUMMED_VERSION:
        attrs = dict(h5.attrs)
        if attrs_sha256(attrs) != attrs.get("attrs_sha256"):
            raise damaged(path, "its attributes do not match their checksum attrs_sha256 (damaged)")
        if spec_column_sha256(h5) != attrs.get("specs_sha256"):
            raise damaged(path, "its spec column does not match its specs_sha256 attribute (damaged)")
    else:
        expected = _indexed_sha256(path, version)
        if file_sha256(path) != expected:
            raise damaged(path, f"its SHA-256 differs from its entry in {path.parent / 'index.json'}: the file is "
                                f"damaged or was changed (a schema-{version} shard is not read unchecked: damaged "
                                f"compressed bytes can crash the reader)")
    _PROVEN.add(key)


def _indexed_sha256(path: Path, version: int) -> str:
    """The SHA-256 that ``index.json`` beside a version 1-2 shard records for it."""
    try:
        entry = read_index(path.parent).entry(path.name)
    except (FileNotFoundError, ValueError) as exc:
        entry, why = None, str(exc)
    else:
        why = f"{path.parent / 'index.json'} does not list it"
    if entry is None:
        raise ShardReadError(
            f"shard {path} is schema version {version} (no per-chunk checksums) and cannot be checked before it is "
            f"read: {why}. Keep it in its dataset folder beside the index.json `dcgen render` wrote, or re-render "
            f"it with this version (whose shards check themselves)")
    return entry.sha256


def check_arrays(path: str | Path, h5: h5py.File) -> list[str]:
    """Read every row of every array of an open shard (every chunk's checksum, for version 3) and look for
    non-finite audio and features.

    Returns:
        problems, each naming the file, the array and the row (empty when all is well).
    """
    problems = []
    name = Path(path).name
    for key in sorted(k for k in h5 if isinstance(h5[k], h5py.Dataset) and h5[k].chunks):
        ds = h5[key]
        for row in range(ds.shape[0]):
            try:
                data = ds[row]
            except Exception as exc:  # HDF5 reports a checksum or decompression failure as OSError
                problems.append(f"{name}: {key}[{row}] unreadable ({type(exc).__name__}: {exc})")
                break
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                problems.append(f"{name}: non-finite values in {key}[{row}]")
                break
    return problems
