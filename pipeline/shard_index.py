"""A dataset folder's ``index.json``: every shard with its count and the SHA-256 of its bytes (``dcgen verify``, a
resumed ``dcgen render`` and the readers of shards older than schema version 3 check files against it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .atomic import write_text_atomic

INDEX_FILE = "index.json"
SCHEMA_VERSION = 3  # of the shards the writer makes now (the table of :mod:`spatialdc.pipeline.shards`)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes (1.9 GB/s on one core of the project machine)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ShardInfo:
    """One shard of a dataset folder as ``index.json`` lists it: its file name (``<split>-NNNNN.h5``), split, number
    of mixtures M, the index in its split of its first mixture, its size (bytes) and the SHA-256 (hex) of its bytes."""

    file: str
    split: str
    num_mixtures: int
    first_index: int
    bytes: int
    sha256: str

    @classmethod
    def of_file(cls, path: str | Path, split: str, num_mixtures: int, first_index: int) -> "ShardInfo":
        """The entry of a shard just written (its size and checksum read from the file)."""
        path = Path(path)
        return cls(path.name, split, num_mixtures, first_index, path.stat().st_size, file_sha256(path))


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset folder's ``index.json``: the dataset's name (``fm2``, ``rec2``), how its shards were made (render or
    ingest settings, package versions, command), the shards and their schema version."""

    dataset: str
    provenance: dict
    shards: tuple[ShardInfo, ...]
    schema_version: int = SCHEMA_VERSION

    def entry(self, file: str) -> ShardInfo | None:
        """The entry of shard file name ``file``, or None if the index does not list it."""
        return next((s for s in self.shards if s.file == file), None)


def write_index(dataset_dir: str | Path, index: DatasetIndex) -> None:
    """Write ``dataset_dir/index.json`` atomically, its shards sorted by file name."""
    entries = [asdict(s) for s in sorted(index.shards, key=lambda s: s.file)]
    write_text_atomic(Path(dataset_dir) / INDEX_FILE, json.dumps(
        {"schema_version": index.schema_version, "dataset": index.dataset, "provenance": index.provenance,
         "shards": entries}, indent=1))


def read_index(dataset_dir: str | Path) -> DatasetIndex:
    """Read ``dataset_dir/index.json`` (as :func:`write_index` writes it).

    Raises:
        FileNotFoundError: no index in the folder. ValueError: a file that is not a dataset index (names it).
    """
    path = Path(dataset_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {dataset_dir} a dataset folder written by `dcgen render`?")
    try:
        d = json.loads(path.read_text())
        return DatasetIndex(d["dataset"], d["provenance"], tuple(ShardInfo(**e) for e in d["shards"]),
                            int(d["schema_version"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a dataset index ({type(exc).__name__}: {exc}); delete it and re-run the "
                         f"command that wrote the dataset") from exc
