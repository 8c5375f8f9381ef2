"""The HDF5 shard: the contract between ``pipeline`` and ``trainer``/``eval``. This module owns its schema,
its writer and its reader.

Schema version 3. One file holds M mixtures of one dataset and split, all with N sources:

=============  ==============  =======  =============================================
dataset        shape           dtype    meaning
=============  ==============  =======  =============================================
``sources``    (M, N, S)       float16  each source at mic 1 (SDR references)
``mic2``       (M, S)          float16  mic 2
``magnitude``  (M, F, T)       float32  abs(STFT) of mic 1, mantissa rounded to 10 bits
``npd``        (M, F, T)       float32  normalized phase difference (samples), eq. 3, same rounding
``bpd``        (M, F, T)       uint8    K-means labels of the NPD, eq. 5
``ds``         (M, F, T)       uint8    dominant-source labels, eq. 4
``spec``       (M,)            str      the mixture spec as JSON
=============  ==============  =======  =============================================

Mic 1 is by construction the sum of the sources at mic 1, so it is not stored twice: the reader returns
``mixture`` (2, S) = [sum of sources, mic2]. Storage is lossy within stated bounds, to fit about 400 kB per
two-speaker mixture: audio as float16 (relative error <= 2**-11, SNR > 60 dB), features as float32 with the
mantissa rounded to ``FEATURE_MANTISSA_BITS`` bits (relative error <= 2**-11 at every magnitude, which float16 cannot
give for tiny magnitudes), labels lossless; all compressed with :data:`COMPRESSION` (bitshuffle + zstd, an HDF5
filter from ``hdf5plugin``, which this module imports so that every reader has it; other HDF5 tools need
``import hdf5plugin`` or ``HDF5_PLUGIN_PATH``). The reader returns float32.

Version 3 adds checksums (:mod:`spatialdc.pipeline.shard_checks`): every array chunk carries HDF5's ``fletcher32``
(checked before decompression), the file is HDF5 1.10 format (checksummed metadata, readable by HDF5 >= 1.10), and
the attributes and the spec column are checked against ``attrs_sha256`` and ``specs_sha256`` when a process first
opens the file; the arrays are the same as version 2's. Version 2 files (no checksums) and older ones (gzip;
version 1: float32 ``mixture`` (M, 2, S), no ``mic2``) read as before once their SHA-256 matches their
``index.json`` entry; a resumed render rewrites them as version 3. Any fault while reading raises
:class:`ShardReadError`, naming the file and ``dcgen verify``.

File attributes: ``schema_version``, ``dataset``, ``split``, ``num_speakers``, ``sample_rate``, ``n_fft``, ``hop``,
``compression``, ``specs_sha256``, ``provenance`` (JSON: render config, seed, package versions, command) and, from
version 3, ``attrs_sha256`` (of the others).

**Recordings** (``dcgen ingest``: windows of a user's two-channel recordings, no clean sources): the same schema
with ``mic1`` (M, S) float16 stored instead of ``sources`` and no ``ds``; the attribute ``absent_fields`` (JSON list:
``["sources", "ds"]``) says so, and asking the reader for an absent field raises ValueError with what to do
instead (train on ``bpd`` targets; score models on rendered shards).
One writer (:func:`write_shard`, :func:`write_recording_shard`) writes files under a temporary name and renames them
when complete. Readers open files lazily, once per process (h5py handles survive neither fork nor pickling).
Beside the shards, ``index.json`` (:class:`DatasetIndex`) lists each with its count and SHA-256 (``dcgen verify``).
Labels made later (``dcrelabel``) live in sidecar files that never touch the shard; the reader returns them as the
field ``"labels:NAME"`` (:mod:`spatialdc.pipeline.label_sidecar`).
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import hdf5plugin
import numpy as np

from . import features
from .atomic import atomic_path
from .label_sidecar import FIELD_PREFIX, label_field, open_sidecar
from .render import Example
from .shard_checks import ShardReadError, attrs_sha256, damaged, prove_shard
from .shard_index import SCHEMA_VERSION
from .specs import MixtureSpec, specs_hash

READABLE_VERSIONS = (1, 2, 3)
ARRAY_FIELDS = ("mixture", "sources", "magnitude", "npd", "bpd", "ds")  # what readers get
STORED_FIELDS = ("sources", "mic2", "magnitude", "npd", "bpd", "ds")  # what version 2-3 files hold
FEATURE_MANTISSA_BITS = 10
# Every dataset: bit-shuffle, then zstd level 3 (hdf5plugin's Bitshuffle filter). Against gzip with byte shuffle,
# the write of a 2-speaker mixture takes about 4 ms instead of 15 for the same size (398 vs 394 kB): bit planes put
# the zeroed low mantissa bits of the features and the 1-2 used bits of the labels together (RESULTS.md, render).
COMPRESSION_NAME = "bitshuffle+zstd3"
COMPRESSION = hdf5plugin.Bitshuffle(cname="zstd", clevel=3)
LIBVER = ("v110", "v110")  # HDF5 1.10 file format: checksummed metadata, and nothing only newer HDF5 can read


def round_mantissa(x: np.ndarray, bits: int = FEATURE_MANTISSA_BITS) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits (round half up on the magnitude), keeping float32 range.

    Relative error <= 2**-(bits + 1); the zeroed low bits compress to almost nothing under shuffle + gzip.

    Args:
        x: float array (any shape). Returns: float32 array of the same shape.
    """
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    drop = 23 - bits
    rounded = (u + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return rounded.view(np.float32)


def write_shard(path: str | Path, examples: Sequence[Example], provenance: dict) -> None:
    """Write rendered examples (same dataset, split and N) to one HDF5 shard, atomically (the module table).

    Raises:
        ValueError: empty list, or examples of different datasets / splits / source counts.
    """
    if not examples:
        raise ValueError("a shard needs at least one example")
    first = examples[0].spec
    for ex in examples:
        s = ex.spec
        if (s.dataset, s.split, s.num_speakers) != (first.dataset, first.split, first.num_speakers):
            raise ValueError(f"shard {path} mixes {s.mixture_id} with {first.mixture_id}")
    arrays = {"sources": np.stack([ex.sources for ex in examples]).astype(np.float16),  # (M, N, S)
              "mic2": np.stack([ex.mixture[1] for ex in examples]).astype(np.float16),  # (M, S)
              "magnitude": round_mantissa(np.stack([ex.magnitude for ex in examples])),  # (M, F, T)
              "npd": round_mantissa(np.stack([ex.npd for ex in examples])),  # (M, F, T)
              "bpd": np.stack([ex.bpd for ex in examples]),  # (M, F, T) uint8
              "ds": np.stack([ex.ds for ex in examples])}  # (M, F, T) uint8
    _write_file(path, arrays, [ex.spec for ex in examples], provenance)


RECORDING_FIELDS = ("mic1", "mic2", "magnitude", "npd", "bpd")  # what a shard of recordings holds
RECORDING_ABSENT = ("sources", "ds")


def write_recording_shard(path: str | Path, windows: Sequence[dict], provenance: dict) -> None:
    """Write windows of recordings (``dcgen ingest``) to one shard, atomically: the schema without references.

    Args:
        windows: dicts with ``mic1``, ``mic2`` (S,) float, ``magnitude``, ``npd`` (F, T) float32, ``bpd`` (F, T)
            uint8 and ``spec`` (a MixtureSpec describing the window), all with the same N.

    Raises:
        ValueError: no windows, or windows of different source counts.
    """
    if not windows:
        raise ValueError("a shard needs at least one window")
    first = windows[0]["spec"]
    if any(w["spec"].num_speakers != first.num_speakers for w in windows):
        raise ValueError(f"shard {path} mixes windows of different speaker counts")
    arrays = {"mic1": np.stack([w["mic1"] for w in windows]).astype(np.float16),  # (M, S)
              "mic2": np.stack([w["mic2"] for w in windows]).astype(np.float16),  # (M, S)
              "magnitude": round_mantissa(np.stack([w["magnitude"] for w in windows])),  # (M, F, T)
              "npd": round_mantissa(np.stack([w["npd"] for w in windows])),  # (M, F, T)
              "bpd": np.stack([w["bpd"] for w in windows]).astype(np.uint8)}  # (M, F, T)
    _write_file(path, arrays, [w["spec"] for w in windows], provenance, absent_fields=RECORDING_ABSENT)


def _write_file(path: str | Path, arrays: dict[str, np.ndarray], specs: Sequence[MixtureSpec], provenance: dict,
                absent_fields: Sequence[str] = ()) -> None:
    """The one HDF5 writer of shards: ``arrays`` (M, ...) in their order, then the M specs and the file attributes
    (``absent_fields`` only when some are absent), under a temporary name renamed when complete."""
    first = specs[0]
    attrs = {
        "schema_version": SCHEMA_VERSION, "dataset": first.dataset, "split": first.split,
        "num_speakers": first.num_speakers, "sample_rate": first.sample_rate,
        "n_fft": features.N_FFT, "hop": features.HOP, "compression": COMPRESSION_NAME,
        "specs_sha256": specs_hash(specs), "provenance": json.dumps(provenance, sort_keys=True),
    }
    if absent_fields:
        attrs["absent_fields"] = json.dumps(list(absent_fields))
    attrs["attrs_sha256"] = attrs_sha256(attrs)
    with atomic_path(path) as tmp:
        # No chunk cache: each chunk is compressed and placed in the file inside its own write call. With a
        # cache, chunks are placed when their dataset object is closed, i.e. when Python frees it, which in a
        # Dask worker thread can come late and reorder the file (same data, different bytes).
        with h5py.File(tmp, "w", rdcc_nbytes=0, libver=LIBVER) as h5:
            for name, data in arrays.items():  # fletcher32 after compression: checked first on read
                h5.create_dataset(name, data=data, chunks=(1,) + data.shape[1:], track_times=False, fletcher32=True,
                                  **COMPRESSION)
            h5.create_dataset("spec", data=[spec.to_json() for spec in specs], dtype=h5py.string_dtype(),
                              track_times=False)  # no timestamps: the same specs give byte-identical files
            h5.attrs.update(attrs)


READ_FAULTS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)  # what h5py raises on damage


def shard_matches(path: str | Path, specs: Sequence[MixtureSpec]) -> bool:
    """True if ``path`` is a shard of this schema version holding exactly these specs, counts complete (used to
    resume a render; its bytes are checked by :func:`spatialdc.pipeline.build.render_shard`)."""
    try:
        with h5py.File(path, "r") as h5:
            return (int(h5.attrs["schema_version"]) == SCHEMA_VERSION
                    and h5.attrs["specs_sha256"] == specs_hash(specs)
                    and all(h5[name].shape[0] == len(specs) for name in
                            (RECORDING_FIELDS if "absent_fields" in h5.attrs else STORED_FIELDS) + ("spec",)))
    except READ_FAULTS:
        return False


def schema_version_of(path: str | Path) -> int:
    """The ``schema_version`` attribute of a shard file; -1 for a file HDF5 cannot open or without one."""
    try:
        with h5py.File(path, "r") as h5:
            return int(h5.attrs.get("schema_version", -1))
    except READ_FAULTS:
        return -1


def expand_shards(patterns: str | Sequence[str]) -> list[Path]:
    """Expand glob patterns (or plain paths) into a sorted list of shard paths.

    Raises:
        FileNotFoundError: a pattern matches nothing (with the pattern, and how to make shards).
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [str(patterns)]
    out: list[Path] = []
    for pattern in patterns:
        hits = sorted(glob.glob(str(pattern)))
        if not hits:
            raise FileNotFoundError(f"no shard matches {pattern!r}; render some with `dcgen render`")
        out.extend(Path(h) for h in hits)
    return out


class ShardSet:
    """Read mixtures from several shards as one indexed collection; file handles open lazily per process.

    Args:
        paths: shard files (see :func:`expand_shards`).

    Every file is checked before its arrays are read (:func:`spatialdc.pipeline.shard_checks.prove_shard`).

    Raises:
        ShardReadError: a damaged or unreadable file, or an old one that cannot be checked (names it and the fix).
        ValueError: a file of a schema version this reader does not know.
    """

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        self.index: list[tuple[int, int]] = []  # (file number, row)
        self.attrs: list[dict] = []
        for k, p in enumerate(self.paths):
            try:
                with h5py.File(p, "r") as h5:
                    attrs = dict(h5.attrs)
                    n = h5["spec"].shape[0]
                    if int(attrs.get("schema_version", -1)) in READABLE_VERSIONS:
                        prove_shard(p, h5)
            except ShardReadError:
                raise
            except READ_FAULTS as exc:
                raise damaged(p, f"not a readable shard ({type(exc).__name__}: {exc})") from exc
            if int(attrs.get("schema_version", -1)) not in READABLE_VERSIONS:
                raise ValueError(f"{p}: schema version {attrs.get('schema_version')} but this reader reads "
                                 f"{READABLE_VERSIONS}; re-render it")
            self.attrs.append(attrs)
            self.index.extend((k, r) for r in range(n))
        self._files: dict[int, h5py.File] = {}
        self._sidecars: dict[tuple[int, str], h5py.File] = {}  # (file number, label name) -> its label sidecar
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"], state["_sidecars"] = {}, {}
        return state

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # forked: never reuse the parent's handles
            self._files, self._sidecars, self._pid = {}, {}, os.getpid()
        if k not in self._files:
            h5 = h5py.File(self.paths[k], "r")
            try:
                prove_shard(self.paths[k], h5)  # a no-op where this process (or its parent before a fork) did it
            except BaseException:
                h5.close()
                raise
            self._files[k] = h5
        return self._files[k]

    def _labels(self, k: int, name: str) -> h5py.Dataset:
        """The ``labels`` (M, F, T) of shard ``k``'s sidecar of label ``name``, checked against the shard when first
        opened in this process (:func:`~spatialdc.pipeline.label_sidecar.open_sidecar`)."""
        self._file(k)  # the shard proves itself first (and a fork drops the parent's handles)
        if (k, name) not in self._sidecars:
            self._sidecars[(k, name)] = open_sidecar(self.paths[k], name, self._files[k]["spec"].shape[0])
        return self._sidecars[(k, name)]["labels"]

    def require_labels(self, name: str) -> None:
        """Check up front that every shard has a current sidecar of label ``name`` (done once per process and
        file; forked loader workers inherit the checks).

        Raises:
            LabelsUnavailable: the first shard whose sidecar is missing, damaged or stale (names it and the fix).
        """
        label_field(name)
        for k in range(len(self.paths)):
            self._labels(k, name)

    def num_speakers(self, i: int) -> int:
        return int(self.attrs[self.index[i][0]]["num_speakers"])

    def read(self, i: int, fields: Sequence[str] = ARRAY_FIELDS) -> dict[str, np.ndarray]:
        """Arrays of mixture ``i`` (see the module table), plus ``"spec"`` if asked for (a MixtureSpec), and label
        fields of sidecars, ``"labels:NAME"`` ((F, T) uint8, :mod:`~spatialdc.pipeline.label_sidecar`).

        Raises:
            LabelsUnavailable: a label field whose sidecar is missing, damaged or stale (names it and the command
                that makes it).
            ShardReadError: the shard cannot be read there (corrupt or truncated file, missing field); the message
                names the file and row and says how to find and replace broken shards.
        """
        k, row = self.index[i]
        absent = set(json.loads(self.attrs[k].get("absent_fields", "[]"))) & set(fields)
        if absent:
            raise ValueError(f"shard {self.paths[k]} holds recordings without {sorted(absent)} (dcgen ingest): train "
                             f"on --target bpd, and score models on rendered shards, which have references")
        try:
            return self._read_row(k, row, fields)
        except ShardReadError:
            raise
        except READ_FAULTS as exc:
            raise damaged(self.paths[k], f"cannot read mixture {row} ({type(exc).__name__}: {exc}): the file is "
                                         f"damaged or truncated") from exc

    def _read_row(self, k: int, row: int, fields: Sequence[str]) -> dict:
        h5 = self._file(k)
        out: dict = {}
        for name in fields:
            if name == "spec":
                text = h5["spec"][row]
                out["spec"] = MixtureSpec.from_json(text.decode("utf-8") if isinstance(text, bytes) else text)
            elif name.startswith(FIELD_PREFIX):  # a label sidecar's field
                out[name] = self._labels(k, name[len(FIELD_PREFIX):])[row]  # (F, T) uint8
            elif name == "mixture" and "mic1" in h5:  # recordings: both mics stored
                out["mixture"] = np.stack([h5["mic1"][row], h5["mic2"][row]]).astype(np.float32)  # (2, S)
            elif name == "mixture" and "mic2" in h5:  # version 2: mic 1 = sum of the sources at mic 1
                sources = out["sources"] if "sources" in out else h5["sources"][row].astype(np.float32)
                out["mixture"] = np.stack([sources.sum(axis=0), h5["mic2"][row].astype(np.float32)])  # (2, S)
            else:
                data = h5[name][row]
                out[name] = data.astype(np.float32) if data.dtype == np.float16 else data
        return out

    def close(self) -> None:
        for f in [*self._sidecars.values(), *self._files.values()]:
            f.close()
        self._files, self._sidecars = {}, {}
