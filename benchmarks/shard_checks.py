"""What shards that prove themselves cost (issue 25): schema 3 (fletcher32 on every chunk, HDF5 1.10 metadata,
attribute and spec checksums) against schema 2 (the same arrays without them), in the same run.

    python benchmarks/shard_checks.py [--mixtures 200] [--shard-size 50] [--repeats 5]

Renders ``--mixtures`` fm2 test mixtures of the bundled corpus once (in memory; their render time is the baseline),
then, ``--repeats`` times, interleaved so that the machine's drift hits both alike:

- **write**: the shards of those mixtures with each schema, from the arrays as the writer stores them (what it does
  but stack and round, the same for both; ms per mixture, the difference as % of a mixture's render time);
- **read**: every mixture's arrays (``ShardSet.read``, what dctrain and dceval do), in a fresh ShardSet with the
  process's proofs forgotten, so the first-open check is included: schema 2 hashes each file against index.json,
  schema 3 checks attributes and the spec column (every chunk's fletcher32 is checked as it is read);
- **resume**: ``build.resume_state`` of complete shards: their SHA-256 against index.json, and, for a shard of a run
  stopped before it wrote the index, every chunk read back.

Prints medians (min-max) and the SHA-256 rate in GB/s. Changes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py

from spatialdc.pipeline import build, planner, render, shard_checks, shard_index, shards, specs
from spatialdc.pipeline.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def stored_arrays(chunks: list[list], out: Path) -> list[tuple[dict, dict]]:
    """(arrays, attributes) of each shard as the writer stores them (read back from a written shard)."""
    out.mkdir(parents=True, exist_ok=True)
    stored = []
    for examples in chunks:
        shards.write_shard(out / "x.h5", examples, {"bench": 1})
        with h5py.File(out / "x.h5", "r") as h5:
            stored.append(({name: h5[name][()] for name in h5}, dict(h5.attrs)))
    return stored


def write_files(ddir: Path, stored: list[tuple[dict, dict]], checksums: bool) -> None:
    """Write the stored arrays as shards with schema 3's checksums (fletcher32, HDF5 1.10 format) or without them
    (schema 2), and their index.json (SHA-256 of every file): all the writer does but stack and round."""
    entries = []
    options = {"fletcher32": True} if checksums else {}
    for k, (arrays, attrs) in enumerate(stored):
        path = ddir / f"test-{k:05d}.h5"
        with h5py.File(path, "w", rdcc_nbytes=0, **({"libver": shards.LIBVER} if checksums else {})) as h5:
            for name, data in arrays.items():
                if name == "spec":
                    h5.create_dataset(name, data=data, dtype=h5py.string_dtype(), track_times=False)
                else:
                    h5.create_dataset(name, data=data, chunks=(1,) + data.shape[1:], track_times=False,
                                      **options, **shards.COMPRESSION)
            h5.attrs.update(attrs if checksums else dict({a: v for a, v in attrs.items() if a != "attrs_sha256"},
                                                         schema_version=2))
        n = len(arrays["spec"])
        entries.append(shard_index.ShardInfo.of_file(path, "test", n, k * n))
    shard_index.write_index(ddir, shard_index.DatasetIndex("fm2", {"bench": 1}, tuple(entries), 3 if checksums else 2))


def time_write(stored: list, out: Path, checksums: bool) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    write_files(out, stored, checksums)
    return time.perf_counter() - t0


def time_read(ddir: Path) -> float:
    shard_checks._PROVEN.clear()  # a new process: every file proves itself again
    t0 = time.perf_counter()
    data = shards.ShardSet(sorted(ddir.glob("test-*.h5")))
    for i in range(len(data)):
        data.read(i)
    data.close()
    return time.perf_counter() - t0


def time_resume(ddir: Path, chunks: list[list], recorded: bool) -> float:
    index = {e.file: e.sha256 for e in shard_index.read_index(ddir).shards}
    t0 = time.perf_counter()
    for k, examples in enumerate(chunks):
        name = f"test-{k:05d}.h5"
        state = build.resume_state(ddir / name, [ex.spec for ex in examples], index[name] if recorded else "")
        assert state == "complete", state
    return time.perf_counter() - t0


def summary(values: list[float], per: int, scale: float = 1e3) -> str:
    v = [x / per * scale for x in values]
    return f"{statistics.median(v):7.2f} ({min(v):.2f}-{max(v):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=200)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    planned = planner.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, "fm", 2, {"test": args.mixtures})["test"]
    t0 = time.perf_counter()
    examples = [render.render_mixture(s, CORPUS) for s in planned]
    render_s = (time.perf_counter() - t0) / len(examples)
    chunks = [examples[i: i + args.shard_size] for i in range(0, len(examples), args.shard_size)]
    out = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    t: dict[str, list[float]] = {k: [] for k in ("write 2", "write 3", "read 2", "read 3", "resume sha", "resume chunks")}
    try:
        stored = stored_arrays(chunks, out / "stored")
        for _ in range(args.repeats):
            t["write 2"].append(time_write(stored, out / "v2", False))
            t["write 3"].append(time_write(stored, out / "v3", True))
            t["read 2"].append(time_read(out / "v2"))
            t["read 3"].append(time_read(out / "v3"))
            t["resume sha"].append(time_resume(out / "v3", chunks, True))
            t["resume chunks"].append(time_resume(out / "v3", chunks, False))
        nbytes = {v: sum(p.stat().st_size for p in (out / v).glob("*.h5")) for v in ("v2", "v3")}
        blob = os.urandom(1 << 28)
        t0 = time.perf_counter()
        hashlib.sha256(blob).hexdigest()
        sha_gbps = len(blob) / (time.perf_counter() - t0) / 1e9
    finally:
        shutil.rmtree(out)
    m = len(examples)
    print(f"{m} fm2 mixtures in shards of {args.shard_size}; render {1e3 * render_s:.1f} ms per mixture "
          f"(the baseline); medians (min-max) of {args.repeats} interleaved repeats, ms per mixture")
    for v, label in (("2", "schema 2 (no checksums)"), ("3", "schema 3 (checksummed)")):
        print(f"  {label:<26} write {summary(t['write ' + v], m)}  read {summary(t['read ' + v], m)}  "
              f"{nbytes['v' + v] / m / 1e3:.1f} kB per mixture")
    dw = statistics.median(t["write 3"]) / m - statistics.median(t["write 2"]) / m
    dr = statistics.median(t["read 3"]) / m - statistics.median(t["read 2"]) / m
    print(f"  checksums cost: write {1e3 * dw:+.2f} ms per mixture ({100 * dw / render_s:+.1f} % of its render), "
          f"read {1e3 * dr:+.2f} ms per mixture")
    print(f"  resume of a complete shard: SHA-256 against index.json {summary(t['resume sha'], m)}, every chunk "
          f"read back (no index entry) {summary(t['resume chunks'], m)} ms per mixture")
    print(f"  SHA-256 {sha_gbps:.2f} GB/s: a schema-2 shard's first open costs {1 / sha_gbps:.2f} s per GB "
          f"({nbytes['v2'] / m / (sha_gbps * 1e9) * 1e3:.2f} ms per mixture) once per process")
    print(json.dumps({k: [round(x, 4) for x in v] for k, v in t.items()}))


if __name__ == "__main__":
    main()
