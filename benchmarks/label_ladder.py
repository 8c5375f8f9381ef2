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

With ``--teacher CKPT`` (a ``dctrain`` checkpoint, e.g. trained with ``--label-weights direct-path`` on reverberant
mixtures) the room rungs get one more labeler, ``--teacher-name`` (default ``boot``): the bootstrapped labels that
``dcrelabel --checkpoint CKPT --rule R --keep-share S [--concentration C]`` would write (:mod:`spatialdc.eval.bootstrap`: the spatial
label on the confident bins, the teacher's matched clusters elsewhere), on every non-silent bin, with the oracle SDRi
of their full masks; its "bins kept" is the share that kept the spatial label. Anechoic rungs keep the spatial
labels. Choose the rule and share with ``--split valid``.

    python benchmarks/label_ladder.py --split valid --mixtures 100 --rungs mild-1cm,reverberant-1cm --teacher RUN/best.pt

Columns: accuracy against DS under the best permutation (mean over mixtures), the share of non-silent bins kept,
NMI (all bins), and the oracle SDRi (dB) of the full binary masks of the labels and of DS (BSS Eval, as dceval).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spatialdc.eval.bootstrap import RULES, BootstrapSettings
from spatialdc.eval.evaluate import evaluate, score_mixture
from spatialdc.eval.relabel import label_mixtures
from spatialdc.eval.separate import load_model
from spatialdc.pipeline import build, features, planner, specs
from spatialdc.pipeline.label_quality import accuracy_from_contingency, contingency, nmi_from_contingency
from spatialdc.pipeline.label_weights import bpd_confidence, direct_path_bins, onset_bins
from spatialdc.pipeline.manifest import read_manifest
from spatialdc.pipeline.metrics import DEFAULT_BACKEND
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


def teacher_quality(pattern: str, checkpoint: str, settings: BootstrapSettings, mixtures: int) -> dict[str, float]:
    """The bootstrapped labels of the first ``mixtures`` mixtures: mean accuracy against DS (best permutation, all
    non-silent bins), share of those that kept the spatial label, NMI, and the oracle SDRi (dB) of their masks."""
    model = load_model(checkpoint)
    shards = ShardSet(expand_shards(pattern))
    out: dict[str, list] = {"accuracy": [], "kept": [], "nmi": [], "sdri": []}
    count = min(len(shards), mixtures)
    for start in range(0, count, 8):  # the batches of dcrelabel: 8 mixtures embedded at a time
        data = [shards.read(i, ("mixture", "sources", "magnitude", "npd", "bpd", "ds", "spec"))
                for i in range(start, min(start + 8, count))]
        for d, boot in zip(data, label_mixtures(model, data, settings)):
            n, active = d["spec"].num_speakers, features.active_bins(d["magnitude"])
            counts = contingency(boot.labels, d["ds"], n, active)
            out["accuracy"].append(accuracy_from_contingency(counts))
            out["kept"].append(boot.confident.sum() / max(active.sum(), 1))
            out["nmi"].append(nmi_from_contingency(counts))
            rows = score_mixture(d, {"boot": features.binary_masks(boot.labels, n)}, n, DEFAULT_BACKEND)
            out["sdri"] += [r["sdri"] for r in rows if not r["silent_reference"]]
    shards.close()
    return {k: float(np.nanmean(v)) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=200, help="Mixtures per rung.")
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="Speakers of the mixtures: test, or valid (where a labeler's settings are chosen).")
    ap.add_argument("--data", type=Path, help="Where rungs are rendered (reused) [data/ladder, data/ladder-valid].")
    ap.add_argument("--rungs", default=",".join(RUNGS), help="Comma-separated rung names.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--teacher", help="A dctrain checkpoint: add its bootstrapped labels on the room rungs.")
    ap.add_argument("--teacher-name", default="boot", help="The labeler's name in the table.")
    defaults = BootstrapSettings()
    ap.add_argument("--rule", choices=RULES, default=defaults.rule, help="dcrelabel --rule.")
    ap.add_argument("--keep-share", type=float, default=defaults.keep_share, help="dcrelabel --keep-share.")
    ap.add_argument("--concentration", type=float, default=defaults.concentration, help="dcrelabel --concentration.")
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
        if args.teacher and config.room != "anechoic":
            settings = BootstrapSettings(rule=args.rule, keep_share=args.keep_share,
                                         concentration=args.concentration)
            q = teacher_quality(pattern, args.teacher, settings, args.mixtures)
            quality[args.teacher_name] = q
            lines.append(f"| {rung} | {args.teacher_name} | {100 * q['accuracy']:.1f} % | {100 * q['kept']:.0f} % | "
                         f"{q['nmi']:.3f} | {q['sdri']:.2f} / {sdri['oracle_ds']:.2f} |")
        print("\n".join(lines[-len(quality):]), flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
