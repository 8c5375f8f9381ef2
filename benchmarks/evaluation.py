"""Evaluation speed: BSS Eval with the default (fast_bss_eval) backend vs mir_eval on the same estimates, in the
same run, for 2- and 3-speaker mixtures; and the largest SDR / SIR / SAR difference between them.

    python benchmarks/evaluation.py [--mixtures 20]

Estimates are the oracle-DS and oracle-BPD masked mixtures of freshly rendered fm2 and fm3 test mixtures.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.metrics import bss_eval, mixture_scores
from eval.separate import apply_masks, binary_masks
from pipeline import build, corpus, specs
from pipeline.shards import ShardSet, expand_shards

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def cases(n: int, count: int, tmp: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(references (N, S), mixture (S,), estimates (N, S)) for oracle DS and BPD masks of ``count`` mixtures."""
    utts = corpus.read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    by = build.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, "fm", n, {"test": count})
    build.render_dataset(by, CORPUS, tmp, 50, 0, progress=False)
    data = ShardSet(expand_shards(str(tmp / f"fm{n}" / "test-*.h5")))
    out = []
    for i in range(len(data)):
        d = data.read(i, ("mixture", "sources", "ds", "bpd"))
        for lab in (d["ds"], d["bpd"]):
            out.append((d["sources"], d["mixture"][0], apply_masks(d["mixture"][0], binary_masks(lab, n))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixtures", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        for n in (2, 3):
            data = cases(n, args.mixtures, tmp)
            timings, results = {}, {}
            for backend in ("fast", "mir_eval"):
                t0 = time.perf_counter()
                results[backend] = [(bss_eval(r, e, backend), mixture_scores(r, m, backend)) for r, m, e in data]
                timings[backend] = time.perf_counter() - t0
            diff = max(float(np.max(np.abs(getattr(a[k], name) - getattr(b[k], name))))
                       for a, b in zip(results["fast"], results["mir_eval"]) for k in (0, 1)
                       for name in ("sdr", "sir"))
            diff_sar = max(float(np.max(np.abs(a[0].sar - b[0].sar)))
                           for a, b in zip(results["fast"], results["mir_eval"]))
            same_perm = all(np.array_equal(a[0].perm, b[0].perm) for a, b in zip(results["fast"], results["mir_eval"]))
            count = len(data)  # estimate sets scored (2 per mixture), each with its mixture baseline
            print(f"\n{n} speakers: {count} estimate sets (+ mixture baselines) from {args.mixtures} mixtures")
            for backend, t in timings.items():
                print(f"  {backend:<9}: {count / t:7.2f} sets/s  ({1e3 * t / count:.0f} ms each)")
            print(f"  speed-up : x{timings['mir_eval'] / timings['fast']:.1f}")
            print(f"  largest |difference|: SDR/SIR {diff:.2e} dB, SAR of estimates {diff_sar:.2e} dB; "
                  f"same permutation: {same_perm}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
