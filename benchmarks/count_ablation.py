"""Which parts of the count head's input carry the speaker count: logistic regression on each part of
:func:`eval.count.count_features` alone and on all of them, fitted on fm2 + fm3 training mixtures and scored on
validation mixtures (2 and 3 speakers, no single sources).

    python benchmarks/count_ablation.py --checkpoint runs/x/best.pt --data DIR [--train-mixtures 1500]
        [--valid-mixtures 450]

DIR holds the rendered fm2 and fm3 datasets (DIR/fm2/train-*.h5 ...). Prints validation accuracy per part and C.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spatialdc.eval.count import collect_features
from spatialdc.eval.separate import DEFAULT_CLUSTER_DB, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-mixtures", type=int, default=1500)
    ap.add_argument("--valid-mixtures", type=int, default=450)
    args = ap.parse_args()
    t0 = time.perf_counter()
    loaded = load_model(args.checkpoint)
    model, stats, model_args = loaded.net, loaded.stats, loaded.net.model_args
    sets = {split: collect_features(model, stats, [f"{args.data}/fm{n}/{split}-*.h5" for n in (2, 3)], limit, 0.0,
                                    DEFAULT_CLUSTER_DB, 0, split, progress=False)
            for split, limit in (("train", args.train_mixtures), ("valid", args.valid_mixtures))}
    (xtr, ytr), (xva, yva) = sets["train"], sets["valid"]
    d, h2, f = model_args["embedding_dim"], 2 * model_args["hidden"], len(stats["mean"])
    edges = np.cumsum([0, d, d * (d + 1) // 2, 2 * h2, 2 * f, 1])
    parts = {"eigenvalues of C": [0], "C (eigenvalues + entries)": [0, 1], "BLSTM states": [2],
             "network input": [3], "all": [0, 1, 2, 3, 4]}
    print(f"train {len(ytr)}, valid {len(yva)} mixtures; features {xtr.shape[1]}")
    for name, blocks in parts.items():
        cols = np.concatenate([np.arange(edges[b], edges[b + 1]) for b in blocks])
        accs = []
        for c in (0.003, 0.01, 0.03, 0.1, 1.0):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(xtr[:, cols], ytr)
            accs.append(f"C={c:g}: {100 * clf.score(xva[:, cols], yva):.1f} %")
        print(f"  {name:<28} " + ", ".join(accs))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
