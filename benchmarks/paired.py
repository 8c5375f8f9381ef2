"""Paired comparison of two models scored by dceval on the same mixtures: per mixture, the mean SDRi over its
sources of the model in B minus that in A; the mean of those differences with its 95 % interval (1.96 standard
errors over mixtures), the share of mixtures that gain, and each model's mean.

    python benchmarks/paired.py A.csv B.csv [--label-a base --label-b lever]

Both reports must hold model rows (``dc_*``) for the same mixture ids (e.g. ``dceval --checkpoint ... --shards
'data/fm2/valid-*.h5' --max-mixtures 300 --no-oracles``); mixtures without a score in either (silent reference,
miscounted) are left out.
"""

from __future__ import annotations

import argparse

import numpy as np

from spatialdc.eval.report import read_csv, unscored


def per_mixture_sdri(path: str) -> dict[str, float]:
    """Mixture id -> mean SDRi (dB) of the model's sources (the report's dc_* rows)."""
    by: dict[str, list[float]] = {}
    for r in read_csv(path):
        if r["method"].startswith("dc_") and not unscored(r):
            by.setdefault(r["mixture_id"], []).append(r["sdri"])
    if not by:
        raise SystemExit(f"{path}: no scored model rows (dc_*)")
    return {k: float(np.mean(v)) for k, v in by.items()}


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Mean difference b - a over the common mixtures, its 95 % half-interval, share of mixtures with b > a."""
    common = sorted(set(a) & set(b))
    d = np.array([b[k] - a[k] for k in common])
    return {"mixtures": len(common), "mean_a": float(np.mean([a[k] for k in common])),
            "mean_b": float(np.mean([b[k] for k in common])), "diff": float(d.mean()),
            "ci95": float(1.96 * d.std(ddof=1) / np.sqrt(len(d))), "gain_share": float((d > 0).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    args = ap.parse_args()
    p = paired(per_mixture_sdri(args.a), per_mixture_sdri(args.b))
    print(f"{p['mixtures']} mixtures: {args.label_a} {p['mean_a']:.2f} dB, {args.label_b} {p['mean_b']:.2f} dB; "
          f"paired difference {p['diff']:+.2f} +- {p['ci95']:.2f} dB (95 %), {100 * p['gain_share']:.0f} % of "
          f"mixtures gain")


if __name__ == "__main__":
    main()
