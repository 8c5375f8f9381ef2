"""Behaviour fingerprint of the code at this commit: run it before and after a change that must not change behaviour.

Prints (1) the SHA-256 of the weights after a tiny seeded training run (16 bundled speakers, 8 training mixtures,
2 epochs; once with ``--precision fp32`` and once with ``auto``) and (2) the SHA-256 of ``dceval``'s CSV (all columns but the timing one) on the first
20 fm2 test mixtures of a shipped model (in-process, one K-means thread). Equal hashes at two commits: the same
weights and byte-identical scores.

    python benchmarks/fingerprint.py --shards 'data/any/fm2/test-*.h5' [--model fm2-bpd] [--out runs/fingerprint]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "corpora" / "librispeech-clips"


def tiny_dataset(out: Path) -> Path:
    """The tests' fixture: 8 female + 8 male bundled speakers, fm2 specs 8 / 4 / 4, shards of 4 mixtures."""
    from spatialdc.pipeline import build, corpus, planner, specs
    from spatialdc.pipeline.layouts.librispeech import read_librispeech_speakers, scan_librispeech
    from spatialdc.pipeline.manifest import GENDERS

    src = out / "corpus"
    src.mkdir(parents=True, exist_ok=True)
    genders = read_librispeech_speakers(BUNDLED / "SPEAKERS.TXT")
    picked = []
    for g in GENDERS:
        picked += [u for u in scan_librispeech(BUNDLED) if u.gender == g and u.duration_s >= 6][:8]
    for u in picked:
        shutil.copy(BUNDLED / u.path, src / u.path)
    lines = [f"{u.speaker} | {genders[u.speaker].upper()} | train-clean-100 | 1.0 | x" for u in picked]
    (src / "SPEAKERS.TXT").write_text(";ID|SEX|SUBSET|MINUTES|NAME\n" + "\n".join(lines) + "\n")
    manifest = corpus.assign_splits(scan_librispeech(src), seed=0)
    plan = planner.plan_dataset(manifest, src, specs.RenderConfig(), 0, "fm", 2, {"train": 8, "valid": 4, "test": 4})
    build.render_dataset(plan, src, out / "data", shard_size=4, workers=0, progress=False)
    return out / "data" / "fm2"


def weights_hash(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def csv_hash(path: Path) -> str:
    """SHA-256 of a dceval CSV without its ``seconds`` column (wall-clock time, different on every run)."""
    import csv

    with path.open(newline="") as fh:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", required=True, help="fm2 test shards for the dceval fingerprint")
    parser.add_argument("--model", default="models/fm2-bpd.pt", help="checkpoint scored by dceval")
    parser.add_argument("--out", default="runs/fingerprint", help="scratch folder (replaced)")
    args = parser.parse_args()
    from spatialdc.trainer.config import TrainConfig
    from spatialdc.trainer.loop import train

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = tiny_dataset(out)
    for precision in ("fp32", "auto"):
        config = TrainConfig(shards=str(data / "train-*.h5"), valid=str(data / "valid-*.h5"), target="bpd",
                             layers=2, hidden=16, embedding_dim=4, batch_size=4, epochs=2, chunk_frames=40,
                             dropout=0.3, num_workers=0, precision=precision)
        train(config, out / f"run-{precision}", progress=False)
        print(f"tiny run --precision {precision}: weights sha256 {weights_hash(out / f'run-{precision}' / 'last.pt')}")
    csv = out / "eval.csv"
    subprocess.run([sys.executable, "-m", "spatialdc.eval.dceval", "--checkpoint", args.model, "--shards", args.shards,
                    "--max-mixtures", "20", "--workers", "0", "--no-plots", "--examples", "0", "--quiet",
                    "--report", str(csv)], check=True, stdout=subprocess.DEVNULL)
    print(f"dceval on 20 mixtures: CSV sha256 {csv_hash(csv)} (without its timing column, seconds)")


if __name__ == "__main__":
    main()
