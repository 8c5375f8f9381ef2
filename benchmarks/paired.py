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

from spatialdc.eval.report import paired_difference, per_mixture_sdri, read_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    args = ap.parse_args()
    try:
        p = paired_difference(per_mixture_sdri(read_csv(args.a)), per_mixture_sdri(read_csv(args.b)))
    except ValueError as exc:
        raise SystemExit(f"{args.a} / {args.b}: {exc}")
    print(f"{p['mixtures']} mixtures: {args.label_a} {p['mean_a']:.2f} dB, {args.label_b} {p['mean_b']:.2f} dB; "
          f"paired difference {p['diff']:+.2f} +- {p['ci95']:.2f} dB (95 %), {100 * p['gain_share']:.0f} % of "
          f"mixtures gain")


if __name__ == "__main__":
    main()
