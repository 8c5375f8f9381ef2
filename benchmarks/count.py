"""Speaker-count estimation from embeddings (eval/count.py): pick the share threshold on validation mixtures of 2
and 3 speakers, then report the accuracy and confusion matrix on test mixtures of 2 and 3 speakers.

    python benchmarks/count.py --checkpoint runs/x/best.pt \
        --valid 'data/fm2/valid-*.h5' 'data/fm3/valid-*.h5' --test 'data/fm2/test-*.h5' 'data/fm3/test-*.h5' \
        [--mixtures 300] [--max-speakers 3]

Counts 1..max are possible answers; each glob contributes its first ``--mixtures`` mixtures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spatialdc.eval.count import embedding_spectrum
from spatialdc.eval.separate import DEFAULT_CLUSTER_DB, embed, load_model
from spatialdc.pipeline import features
from spatialdc.pipeline.shards import ShardSet, expand_shards

SHARES = np.round(np.arange(0.02, 0.40, 0.01), 3)


def spectra(checkpoint: str, patterns: list[str], limit: int, cluster_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(true counts (M,), eigenvalue spectra (M, D)) of the first ``limit`` mixtures of each glob."""
    loaded = load_model(checkpoint)
    model, stats = loaded.net, loaded.stats
    counts, specs = [], []
    for pattern in patterns:
        data = ShardSet(expand_shards(pattern))
        idx = list(range(min(limit, len(data))))
        for lo in range(0, len(idx), 16):
            batch = [data.read(i, ("magnitude",)) for i in idx[lo: lo + 16]]
            mags = np.stack([b["magnitude"] for b in batch])
            emb = embed(model, stats, mags)
            for k, i in enumerate(idx[lo: lo + 16]):
                specs.append(embedding_spectrum(emb[k], features.active_bins(mags[k], cluster_db)))
                counts.append(data.num_speakers(i))
        data.close()
    return np.array(counts), np.stack(specs)


def predict(spec: np.ndarray, share: float, max_speakers: int) -> np.ndarray:
    return np.clip((spec > share).sum(axis=1), 1, max_speakers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--valid", nargs="+", required=True)
    ap.add_argument("--test", nargs="+", required=True)
    ap.add_argument("--mixtures", type=int, default=300)
    ap.add_argument("--max-speakers", type=int, default=3)
    ap.add_argument("--cluster-db", type=float, default=DEFAULT_CLUSTER_DB)
    args = ap.parse_args()
    t0 = time.perf_counter()
    yv, sv = spectra(args.checkpoint, args.valid, args.mixtures, args.cluster_db)
    acc = [(float(np.mean(predict(sv, s, args.max_speakers) == yv)), s) for s in SHARES]
    best_acc, best = max(acc)
    print(f"validation: {len(yv)} mixtures; accuracy by share threshold:")
    print("  " + "  ".join(f"{s:.2f}:{100 * a:.0f}%" for a, s in acc))
    print(f"  chosen share {best:.2f} (validation accuracy {100 * best_acc:.1f} %)")
    yt, st = spectra(args.checkpoint, args.test, args.mixtures, args.cluster_db)
    pred = predict(st, best, args.max_speakers)
    print(f"test: {len(yt)} mixtures, accuracy {100 * np.mean(pred == yt):.1f} % at share {best:.2f}")
    labels = list(range(1, args.max_speakers + 1))
    print("confusion (rows: true count, columns: estimated)")
    print("      " + "".join(f"{k:>6}" for k in labels))
    for t in sorted(set(yt.tolist())):
        print(f"  {t:>3} " + "".join(f"{int(np.sum((yt == t) & (pred == k))):>6}" for k in labels))
    print(f"mean spectrum, top 4 eigenvalues: " + "; ".join(
        f"N={t}: " + " ".join(f"{v:.3f}" for v in st[yt == t].mean(0)[:4]) for t in sorted(set(yt.tolist()))))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
