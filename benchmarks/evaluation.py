"""Evaluation speed: mixtures per second of dceval's scoring with each BSS Eval backend, on the same estimates, in the
same run, for 2- and 3-speaker mixtures; and the largest difference of each backend's scores from mir_eval's.

    python benchmarks/evaluation.py [--mixtures 20] [--backends batched,fast_bss_eval,mir_eval]

Each mixture is scored the way ``dceval`` scores it (``spatialdc.eval.evaluate.evaluate`` in one process, no model): the
unprocessed mixture (the baseline of SDRi) and the oracle-DS and oracle-BPD masked mixtures, on freshly rendered fm2
and fm3 test mixtures. The time includes reading shards and masking, which every backend shares.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from spatialdc.eval.evaluate import evaluate
from spatialdc.pipeline.metrics import BACKENDS
from spatialdc.pipeline import build, planner, specs
from spatialdc.pipeline.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def render(n: int, count: int, tmp: Path) -> str:
    """Render ``count`` fm test mixtures of ``n`` speakers; returns the shard pattern."""
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    by = planner.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, "fm", n, {"test": count})
    build.render_dataset(by, CORPUS, tmp, 50, 0, progress=False)
    return str(tmp / f"fm{n}" / "test-*.h5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=20)
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated; mir_eval is the reference")
    args = ap.parse_args()
    backends = args.backends.split(",")
    if "mir_eval" not in backends:
        backends.append("mir_eval")
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        for n in (2, 3):
            pattern = render(n, args.mixtures, tmp)
            timings, rows = {}, {}
            for backend in backends:
                t0 = time.perf_counter()
                rows[backend] = evaluate([pattern], None, backend, workers=0, progress=False)
                timings[backend] = time.perf_counter() - t0
            print(f"\n{n} speakers, {args.mixtures} mixtures, 3 estimate sets each (mixture, oracle DS, oracle BPD), "
                  f"one process:")
            ref = rows["mir_eval"]
            for backend in backends:
                t = timings[backend]
                diffs = {k: max(abs(a[k] - b[k]) for a, b in zip(rows[backend], ref)) for k in ("sdr", "sir", "sar",
                                                                                                  "sdri")}
                same = all(a["mixture_id"] == b["mixture_id"] and a["method"] == b["method"]
                           for a, b in zip(rows[backend], ref))
                print(f"  {backend:<14}{args.mixtures / t:7.2f} mixtures/s ({1e3 * t / args.mixtures:6.0f} ms each)"
                      f"  x{timings['mir_eval'] / t:5.1f} vs mir_eval;  largest |diff| SDR {diffs['sdr']:.1e}, "
                      f"SIR {diffs['sir']:.1e}, SAR {diffs['sar']:.1e}, SDRi {diffs['sdri']:.1e} dB"
                      + ("" if same else "  (ROWS DIFFER)"))
            mean = {b: float(np.mean([r["sdri"] for r in rows[b] if r["method"] == "oracle_ds"])) for b in backends}
            print("  oracle DS mean SDRi: " + ", ".join(f"{b} {v:.4f}" for b, v in mean.items()))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
