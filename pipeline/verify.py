"""Check rendered shards against their index: counts, checksums, schema version, NaNs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from . import shards


def verify_dataset(dataset_dir: str | Path) -> list[str]:
    """Re-read every shard listed in ``dataset_dir/index.json``.

    Returns:
        a list of problems, each naming the file and what is wrong (empty when all is well).

    Raises:
        FileNotFoundError: no ``index.json`` in the folder. ValueError: an ``index.json`` that is not an index.
    """
    ddir = Path(dataset_dir)
    index = shards.read_index(ddir)
    problems = []
    listed = {e.file for e in index.shards}
    for extra in sorted(p.name for p in ddir.glob("*.h5") if p.name not in listed):
        problems.append(f"{extra}: not in index.json (left from another render?)")
    for entry in index.shards:
        path = ddir / entry.file
        if not path.is_file():
            problems.append(f"{entry.file}: missing")
            continue
        if shards.file_sha256(path) != entry.sha256:
            problems.append(f"{entry.file}: checksum differs from index.json (modified or truncated)")
        try:
            with h5py.File(path, "r") as h5:
                version = int(h5.attrs.get("schema_version", -1))
                if version != shards.SCHEMA_VERSION:
                    problems.append(f"{entry.file}: schema version {version}, expected {shards.SCHEMA_VERSION}")
                stored = shards.RECORDING_FIELDS if "absent_fields" in h5.attrs else shards.STORED_FIELDS
                for name in stored + ("spec",):
                    if h5[name].shape[0] != entry.num_mixtures:
                        problems.append(f"{entry.file}: {name} holds {h5[name].shape[0]} mixtures, index says "
                                        f"{entry.num_mixtures}")
                for name in [n for n in ("sources", "mic1", "mic2", "magnitude", "npd") if n in h5]:
                    for row in range(h5[name].shape[0]):
                        if not np.isfinite(h5[name][row]).all():
                            problems.append(f"{entry.file}: non-finite values in {name}[{row}]")
                            break
        except (OSError, KeyError) as exc:
            problems.append(f"{entry.file}: unreadable ({exc})")
    return problems
