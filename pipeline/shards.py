"""The HDF5 shard: the contract between ``pipeline`` and ``trainer``/``eval``. This module owns its schema,
its writer and its reader.

Schema version 1. One file holds M mixtures of one dataset and split, all with N sources:

=============  ==============  =======  =============================================
dataset        shape           dtype    meaning
=============  ==============  =======  =============================================
``mixture``    (M, 2, S)       float32  mic 1 and mic 2
``sources``    (M, N, S)       float32  each source at mic 1 (SDR references)
``magnitude``  (M, F, T)       float32  abs(STFT) of mic 1
``npd``        (M, F, T)       float32  normalized phase difference (samples), eq. 3
``bpd``        (M, F, T)       uint8    K-means labels of the NPD, eq. 5
``ds``         (M, F, T)       uint8    dominant-source labels, eq. 4
``spec``       (M,)            str      the mixture spec as JSON
=============  ==============  =======  =============================================

File attributes: ``schema_version``, ``dataset``, ``split``, ``num_speakers``, ``sample_rate``, ``n_fft``, ``hop``,
``specs_sha256`` and ``provenance`` (JSON: render config, seed, package versions, command).
Files are written under a temporary name and renamed when complete. Readers open files lazily, once per process
(h5py handles survive neither fork nor pickling).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from . import features
from .atomic import atomic_path
from .render import Example
from .specs import MixtureSpec, specs_hash

SCHEMA_VERSION = 1
ARRAY_FIELDS = ("mixture", "sources", "magnitude", "npd", "bpd", "ds")


def write_shard(path: str | Path, examples: Sequence[Example], provenance: dict) -> None:
    """Write examples (same dataset, split and N) to one HDF5 shard, atomically.

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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for name in ARRAY_FIELDS:
                data = np.stack([getattr(ex, name) for ex in examples])
                h5.create_dataset(name, data=data, chunks=(1,) + data.shape[1:], compression="gzip",
                                  compression_opts=1, shuffle=True)
            h5.create_dataset("spec", data=[ex.spec.to_json() for ex in examples], dtype=h5py.string_dtype())
            h5.attrs.update({
                "schema_version": SCHEMA_VERSION, "dataset": first.dataset, "split": first.split,
                "num_speakers": first.num_speakers, "sample_rate": first.sample_rate,
                "n_fft": features.N_FFT, "hop": features.HOP,
                "specs_sha256": specs_hash(ex.spec for ex in examples),
                "provenance": json.dumps(provenance, sort_keys=True),
            })


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_matches(path: str | Path, specs: Sequence[MixtureSpec]) -> bool:
    """True if ``path`` is a complete, readable shard of exactly these specs (used to resume a render)."""
    try:
        with h5py.File(path, "r") as h5:
            return (int(h5.attrs["schema_version"]) == SCHEMA_VERSION
                    and h5.attrs["specs_sha256"] == specs_hash(specs)
                    and all(h5[name].shape[0] == len(specs) for name in ARRAY_FIELDS + ("spec",)))
    except (OSError, KeyError):
        return False


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

    Raises:
        ValueError: a file that is not a shard of this schema version.
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
            except (OSError, KeyError) as exc:
                raise ValueError(f"{p} is not a readable shard ({exc}); check it with `dcgen verify`") from exc
            if int(attrs.get("schema_version", -1)) != SCHEMA_VERSION:
                raise ValueError(f"{p}: schema version {attrs.get('schema_version')} but this reader needs "
                                 f"{SCHEMA_VERSION}; re-render it")
            self.attrs.append(attrs)
            self.index.extend((k, r) for r in range(n))
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # forked: never reuse the parent's handles
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = h5py.File(self.paths[k], "r")
        return self._files[k]

    def num_speakers(self, i: int) -> int:
        return int(self.attrs[self.index[i][0]]["num_speakers"])

    def read(self, i: int, fields: Sequence[str] = ARRAY_FIELDS) -> dict[str, np.ndarray]:
        """Arrays of mixture ``i`` (see the module table), plus ``"spec"`` if asked for (a MixtureSpec)."""
        k, row = self.index[i]
        h5 = self._file(k)
        out: dict = {}
        for name in fields:
            if name == "spec":
                out["spec"] = MixtureSpec.from_json(h5["spec"][row].decode("utf-8")
                                                    if isinstance(h5["spec"][row], bytes) else h5["spec"][row])
            else:
                out[name] = h5[name][row]
        return out

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
