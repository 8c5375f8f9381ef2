"""Spatial label quality on a ladder of rooms and mic spacings: how well the unsupervised labels agree with the
dominant source (DS), on all non-silent bins and on the bins a labeler keeps, and the oracle SDRi of their masks.

    python benchmarks/label_ladder.py [--mixtures 200] [--data data/ladder] [--rungs anechoic-1cm,mild-3cm,...]
    python benchmarks/label_ladder.py --split valid --mixtures 100 --rungs mild-1cm,...   # where choices are made

Rungs (fm2 test mixtures of the bundled corpus, rendered into ``--data/<rung>/`` unless already there):
anechoic at 1, 3 and 5 cm; mild rooms (RT60 0.2-0.3 s, sources 0.5-1 m away) and today's reverberant rooms (RT60
0.2-0.6 s, 1-2 m) at 1 and 3 cm. Labelers, all from the rendered NPD:

- ``spatial``: the labels of the shards (:func:`spatialdc.pipeline.labels.spatial_labels`: K-means on the NPD where
  no phase wraps, wrapped-phase labels otherwise), on every non-silent bin;
- ``confidence>=0.5``: the same labels on the bins whose confidence
  (:func:`~spatialdc.pipeline.label_weights.bpd_confidence`, the loss weight of ``dctrain --label-weights
  confidence``) is at least 0.5;
- ``onsets``: the same labels on the bins whose power rose more than 3 dB over the mean of the 4 frames before
  (the direct sound leads the reverberation at onsets);
- ``direct-path <share>``: the same labels on :func:`~spatialdc.pipeline.label_weights.direct_path_bins` (onsets
  over 8 frames, then the most confident of them, at most ``share`` of the non-silent bins), the loss weights of ``dctrain
  --label-weights direct-path --keep-share <share>``. Its frames and shares were chosen on validation mixtures
  (``--split valid``, rendered into ``data/ladder-valid``), not on the test mixtures.

Columns: accuracy against DS under the best permutation (mean over mixtures), the share of non-silent bins kept,
NMI (all bins), and the oracle SDRi (dB) of the full binary masks of the labels and of DS (BSS Eval, as dceval).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spatialdc.eval.evaluate import evaluate
from spatialdc.pipeline import build, features, planner, specs
from spatialdc.pipeline.label_quality import accuracy_from_contingency, contingency, nmi_from_contingency
from spatialdc.pipeline.label_weights import bpd_confidence, direct_path_bins, onset_bins
from spatialdc.pipeline.manifest import read_manifest
from spatialdc.pipeline.provenance import config_provenance
from spatialdc.pipeline.shards import ShardSet, expand_shards

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"
RUNGS = {
    "anechoic-1cm": dict(mic_spacing_m=0.01),
    "anechoic-3cm": dict(mic_spacing_m=0.03),
    "anechoic-5cm": dict(mic_spacing_m=0.05),
    "mild-1cm": dict(mic_spacing_m=0.01, room="reverberant", rt60_range_s=(0.2, 0.3), source_distance_range_m=(0.5, 1)),
    "mild-3cm": dict(mic_spacing_m=0.03, room="reverberant", rt60_range_s=(0.2, 0.3), source_distance_range_m=(0.5, 1)),
    "reverberant-1cm": dict(mic_spacing_m=0.01, room="reverberant"),
    "reverberant-3cm": dict(mic_spacing_m=0.03, room="reverberant"),
}


DIRECT_PATH_SHARES = (0.5, 0.35)


def label_quality(pattern: str) -> dict[str, dict[str, float]]:
    """Per labeler: mean accuracy on kept bins, mean share kept, mean NMI (all bins)."""
    shards = ShardSet(expand_shards(pattern))
    out: dict[str, dict[str, list]] = {}
    for i in range(len(shards)):
        d = shards.read(i, ("magnitude", "npd", "bpd", "ds", "spec"))
        spec, n = d["spec"], d["spec"].num_speakers
        active = features.active_bins(d["magnitude"])
        conf = bpd_confidence(d["npd"], d["bpd"], active, n, spec.max_delay_samples)
        kept = {"spatial": active, "confidence>=0.5": active & (conf >= 0.5),
                "onsets": active & onset_bins(d["magnitude"], frames=4, rise_db=3.0)}
        for share in DIRECT_PATH_SHARES:
            kept[f"direct-path {share:g}"] = direct_path_bins(d["magnitude"], conf, active, share)
        for name, mask in kept.items():
            counts = contingency(d["bpd"], d["ds"], n, mask)
            r = out.setdefault(name, {"accuracy": [], "kept": [], "nmi": []})
            r["accuracy"].append(accuracy_from_contingency(counts))
            r["kept"].append(mask.sum() / max(active.sum(), 1))
            r["nmi"].append(nmi_from_contingency(contingency(d["bpd"], d["ds"], n, active)))
    shards.close()
    return {name: {k: float(np.nanmean(v)) for k, v in r.items()} for name, r in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=200, help="Mixtures per rung.")
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="Speakers of the mixtures: test, or valid (where a labeler's settings are chosen).")
    ap.add_argument("--data", type=Path, help="Where rungs are rendered (reused) [data/ladder, data/ladder-valid].")
    ap.add_argument("--rungs", default=",".join(RUNGS), help="Comma-separated rung names.")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data = args.data or Path("data/ladder" if args.split == "test" else "data/ladder-valid")
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    lines = ["| rung | labeler | accuracy vs DS (kept bins) | bins kept | NMI | oracle SDRi, labels / DS (dB) |",
             "|---|---|---|---|---|---|"]
    for rung in args.rungs.split(","):
        config = specs.RenderConfig(**RUNGS[rung])
        out = data / rung
        pattern = str(out / "fm2" / f"{args.split}-*.h5")
        if not list((out / "fm2").glob(f"{args.split}-*.h5")):
            by = planner.plan_dataset(utts, CORPUS, config, 0, "fm", 2, {args.split: args.mixtures})
            build.render_dataset(by, CORPUS, out, 100, args.workers, progress=False,
                                 provenance=config_provenance(config, 0, CORPUS))
        rows = evaluate([pattern], None, workers=args.workers, max_mixtures=args.mixtures, progress=False)
        sdri = {m: np.mean([r["sdri"] for r in rows if r["method"] == m and not r["silent_reference"]])
                for m in ("oracle_bpd", "oracle_ds")}
        quality = label_quality(pattern)
        for name, q in quality.items():
            lines.append(f"| {rung} | {name} | {100 * q['accuracy']:.1f} % | {100 * q['kept']:.0f} % | "
                         f"{q['nmi']:.3f} | " + (f"{sdri['oracle_bpd']:.2f} / {sdri['oracle_ds']:.2f}"
                                                  if name == "spatial" else "") + " |")
        print("\n".join(lines[-len(quality):]), flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
