"""Check a dataset folder's shards against its index: files, counts, checksums, schema version, every chunk, NaNs.

The arrays are read in a child process: a schema-2 shard whose compressed bytes are damaged can crash the HDF5
decompression filter (a segmentation fault), and a crash there is reported as that shard's problem instead of
ending ``dcgen verify``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import h5py

from . import shard_index, shards
from .shard_checks import FIRST_CHECKSUMMED_VERSION, attrs_sha256, check_arrays, spec_column_sha256

_SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited HDF5 or Dask state


def verify_dataset(dataset_dir: str | Path) -> list[str]:
    """Re-read every shard listed in ``dataset_dir/index.json``.

    Returns:
        a list of problems, each naming the file and what is wrong (empty when all is well).

    Raises:
        FileNotFoundError: no ``index.json`` in the folder. ValueError: an ``index.json`` that is not an index.
    """
    ddir = Path(dataset_dir)
    index = shard_index.read_index(ddir)
    problems = []
    listed = {e.file for e in index.shards}
    for extra in sorted(p.name for p in ddir.glob("*.h5") if p.name not in listed):
        problems.append(f"{extra}: not in index.json (left from another render?)")
    present = []
    for entry in index.shards:
        path = ddir / entry.file
        if not path.is_file():
            problems.append(f"{entry.file}: missing")
            continue
        if shard_index.file_sha256(path) != entry.sha256:
            problems.append(f"{entry.file}: checksum differs from index.json (modified or truncated)")
        present.append((str(path), entry.num_mixtures))
    return problems + [p for found in read_isolated(present) for p in found]


def read_isolated(files: list[tuple[str, int]]) -> list[list[str]]:
    """:func:`check_shard` of each (path, number of mixtures) in a child process, restarted after a crash.

    Returns:
        the problems of each file, in order; a file that crashed the reader gets that as its problem.
    """
    done: list[list[str]] = []
    while len(done) < len(files):
        with ProcessPoolExecutor(max_workers=1, mp_context=_SPAWN) as pool:
            futures = [pool.submit(check_shard, path, n) for path, n in files[len(done):]]
            for (path, n), future in zip(files[len(done):], futures):
                try:
                    done.append(future.result())
                except BrokenProcessPool:  # one worker, tasks in order: most likely this one crashed it
                    done.append(_check_alone(path, n))
                    break
    return done


def _check_alone(path: str, n: int) -> list[str]:
    """:func:`check_shard` of one file in a child process of its own: a crash there is this file's."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_SPAWN) as pool:
        try:
            return pool.submit(check_shard, path, n).result()
        except BrokenProcessPool:
            return [f"{Path(path).name}: the HDF5 reader crashed on it (damaged compressed data)"]


def check_shard(path: str, num_mixtures: int) -> list[str]:
    """The problems of one shard file: schema version, counts against ``num_mixtures``, spec column against its
    checksum, every chunk of every array (:func:`spatialdc.pipeline.shard_checks.check_arrays`)."""
    name = Path(path).name
    problems = []
    try:
        with h5py.File(path, "r") as h5:
            version = int(h5.attrs.get("schema_version", -1))
            if version not in shards.READABLE_VERSIONS:
                problems.append(f"{name}: schema version {version}, this version reads {shards.READABLE_VERSIONS}")
            stored = shards.RECORDING_FIELDS if "absent_fields" in h5.attrs else shards.STORED_FIELDS
            for key in stored + ("spec",):
                if h5[key].shape[0] != num_mixtures:
                    problems.append(f"{name}: {key} holds {h5[key].shape[0]} mixtures, index says {num_mixtures}")
            if version >= FIRST_CHECKSUMMED_VERSION:
                attrs = dict(h5.attrs)
                if attrs_sha256(attrs) != attrs.get("attrs_sha256"):
                    problems.append(f"{name}: attributes do not match their checksum attrs_sha256")
                if spec_column_sha256(h5) != attrs.get("specs_sha256"):
                    problems.append(f"{name}: spec column does not match its specs_sha256 attribute")
            problems += check_arrays(path, h5)
    except shards.READ_FAULTS as exc:
        problems.append(f"{name}: unreadable ({type(exc).__name__}: {exc})")
    return problems
