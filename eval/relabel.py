"""Relabel a dataset folder with a teacher network: bootstrapped labels (:mod:`spatialdc.eval.bootstrap`) for every
shard, written as label sidecars (:mod:`spatialdc.pipeline.label_sidecar`) without touching the shards; ``dctrain
--labels NAME`` trains on them. The library of ``dcrelabel`` (:mod:`spatialdc.eval.dcrelabel`).

Resumable shard by shard: a sidecar that is complete, made for the shard's present bytes, by the same teacher
weights and settings, is kept; a missing, damaged or stale one (the shard was rendered again) is made again; one made
by another teacher or with other settings is refused unless ``overwrite`` (its labels may feed a training run).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from spatialdc.pipeline import features
from spatialdc.pipeline.label_quality import permutation_accuracy
from spatialdc.pipeline.label_sidecar import (check_label_name, read_sidecar_attrs, shard_sha256, sidecar_path,
                                              write_sidecar)
from spatialdc.pipeline.provenance import package_versions
from spatialdc.pipeline.shard_index import read_index
from spatialdc.pipeline.shards import ShardSet

from .bootstrap import BootLabels, BootstrapSettings, bootstrap_labels
from .count import checkpoint_weights_sha256
from .separate import LoadedModel, embed, load_model

log = logging.getLogger(__name__)
FIELDS = ("magnitude", "npd", "bpd", "spec")  # what the rule reads of a mixture (and "ds" where the shard has it)


def teacher_identity(model: LoadedModel, checkpoint: str | Path) -> dict:
    """What a sidecar records of its teacher: the checkpoint as given, the SHA-256 of its weights
    (:func:`~spatialdc.trainer.lineage.weights_sha256`), its training target, label weights and steps."""
    config = model.config
    return {"checkpoint": str(checkpoint), "weights_sha256": checkpoint_weights_sha256(model.path),
            "target": model.target, "label_weights": config.get("label_weights", "silence"),
            "keep_share": config.get("keep_share"), "shards": config.get("shards")}


def label_mixtures(model: LoadedModel, data: Sequence[dict], settings: BootstrapSettings) -> list[BootLabels]:
    """Bootstrapped labels of mixtures (dicts of :data:`FIELDS`), embedded in one batch (the same batches give the
    same bits, :func:`~spatialdc.eval.separate.embed`)."""
    emb = embed(model.net, model.stats, np.stack([d["magnitude"] for d in data]))  # (B, F, T, D)
    return [bootstrap_labels(e, d["magnitude"], d["npd"], d["bpd"], d["spec"].num_speakers,
                             d["spec"].max_delay_samples, settings, d["spec"].mixture_id) for e, d in zip(emb, data)]


def mixture_measures(d: dict, boot: BootLabels) -> dict:
    """How one mixture's new labels compare, on its non-silent bins: ``agreement_spatial`` (share equal to the
    spatial labels), ``kept`` (share that kept the spatial label), ``fallback``, and where the mixture has DS labels
    ``accuracy_ds`` / ``accuracy_ds_spatial`` (best-permutation agreement of the new / the spatial labels with DS)."""
    active = features.active_bins(d["magnitude"])  # (F, T)
    n = d["spec"].num_speakers
    out = {"agreement_spatial": float((boot.labels == d["bpd"])[active].mean()),
           "kept": float(boot.confident[active].mean()), "fallback": bool(boot.fallback)}
    if "ds" in d:
        out["accuracy_ds"] = permutation_accuracy(boot.labels, d["ds"], n, active)
        out["accuracy_ds_spatial"] = permutation_accuracy(d["bpd"], d["ds"], n, active)
    return out


def label_shard(model: LoadedModel, shard: Path, settings: BootstrapSettings, batch: int = 8,
                bar: tqdm | None = None) -> tuple[np.ndarray, list[dict]]:
    """A shard's bootstrapped labels, its mixtures embedded ``batch`` at a time in order.

    Returns:
        ((M, F, T) uint8 labels, one :func:`mixture_measures` dict per mixture).
    """
    shards = ShardSet([shard])
    has_ds = "ds" not in shards.attrs[0].get("absent_fields", "")
    labels, measures = [], []
    try:
        for start in range(0, len(shards), batch):
            data = [shards.read(i, FIELDS + (("ds",) if has_ds else ()))
                    for i in range(start, min(start + batch, len(shards)))]
            for d, boot in zip(data, label_mixtures(model, data, settings)):
                labels.append(boot.labels)
                measures.append(mixture_measures(d, boot))
            if bar is not None:
                bar.update(len(data))
    finally:
        shards.close()
    return np.stack(labels), measures


@dataclass
class RelabelSummary:
    """What a relabeling did: shards labeled now and kept from before, and the measures of every mixture of the
    folder's sidecars (the kept ones' read from their files)."""

    labeled: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    measures: list[dict] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as text lines (means over mixtures)."""
        m = self.measures
        mean = lambda key: 100 * float(np.mean([x[key] for x in m if key in x]))  # noqa: E731
        out = [f"{len(m)} mixtures in {len(self.labeled) + len(self.kept)} shards ({len(self.labeled)} labeled now, "
               f"{len(self.kept)} already current)"]
        if m:
            out.append(f"spatial labels kept on {mean('kept'):.1f} % of the non-silent bins; new labels equal the "
                       f"spatial ones on {mean('agreement_spatial'):.1f} %; "
                       f"{sum(x['fallback'] for x in m)} mixtures kept all their spatial labels")
        with_ds = [x for x in m if "accuracy_ds" in x]
        if with_ds:
            out.append(f"agreement with DS ({len(with_ds)} mixtures with references): new {mean('accuracy_ds'):.1f} "
                       f"% against spatial {mean('accuracy_ds_spatial'):.1f} %")
        return out


def shard_files(dataset_dir: Path, splits: Sequence[str] | None) -> list[Path]:
    """The shards ``index.json`` lists in ``dataset_dir`` (of ``splits`` if given), sorted by name.

    Raises:
        FileNotFoundError: no index, or a listed shard missing. ValueError: no shard of those splits.
    """
    entries = [e for e in read_index(dataset_dir).shards if splits is None or e.split in splits]
    if not entries:
        raise ValueError(f"{dataset_dir} lists no shard of the splits {list(splits or [])} in its index.json")
    paths = [dataset_dir / e.file for e in sorted(entries, key=lambda e: e.file)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is listed in {dataset_dir / 'index.json'} but missing; re-run the "
                                f"`dcgen render` command that made the folder")
    return paths


def current(attrs: dict | None, shard: Path, recipe: dict) -> str:
    """``"make"`` (no sidecar, a damaged or a stale one), ``"keep"`` (current, same recipe) or ``"other"`` (current,
    made by another teacher or with other settings)."""
    if attrs is None or attrs["shard_sha256"] != shard_sha256(shard):
        return "make"
    p = attrs["provenance"]
    same = (p.get("teacher", {}).get("weights_sha256") == recipe["teacher"]["weights_sha256"]
            and p.get("settings") == recipe["settings"])
    return "keep" if same else "other"


def relabel_command(dataset_dir: str | Path, checkpoint: str | Path, name: str, settings: BootstrapSettings,
                    splits: Sequence[str] | None = None) -> list[str]:
    """The ``dcrelabel`` command that makes these labels (every setting spelled out; recorded in the sidecars, and
    what a reader's error tells to run again)."""
    out = ["dcrelabel", str(dataset_dir), "--checkpoint", str(checkpoint), "--name", name, "--rule", settings.rule,
           "--keep-share", f"{settings.keep_share:g}", "--cluster-db", f"{settings.cluster_db:g}",
           "--seed", str(settings.seed)]
    if settings.rule == "posterior":
        out += ["--concentration", f"{settings.concentration:g}"]
    for split in splits or ():
        out += ["--split", split]
    return out


def relabel_dataset(dataset_dir: str | Path, checkpoint: str | Path, name: str, settings: BootstrapSettings,
                    splits: Sequence[str] | None = None, overwrite: bool = False, device: str = "cpu",
                    progress: bool = True) -> RelabelSummary:
    """Write the sidecar of label ``name`` for every shard of ``dataset_dir`` (of ``splits``), resumable shard by
    shard (the module text).

    Args:
        dataset_dir: a dataset folder (``index.json`` lists its shards). checkpoint: the teacher (a path or a
            shipped model's name). name: the label name (``dctrain --labels NAME``). settings: the rule's.
        splits: e.g. ``("train", "valid")``; None: all. overwrite: replace current sidecars made by another
            teacher or settings. device: where the teacher computes.

    Raises:
        FileNotFoundError: no index or checkpoint. ValueError: a bad name, a teacher that does not fit the
            shards, or (without ``overwrite``) current sidecars of this name made otherwise, listed before
            anything is written.
    """
    ddir = Path(dataset_dir)
    check_label_name(name)
    paths = shard_files(ddir, splits)
    model = load_model(checkpoint, device)
    recipe = {"teacher": teacher_identity(model, checkpoint), "rule": settings.rule, "settings": settings.to_dict(),
              "command": relabel_command(ddir, checkpoint, name, settings, splits), "versions": package_versions(),
              "labels": "spatial labels on the confident bins, the teacher's clusters elsewhere"}
    plan = {p: current(read_sidecar_attrs(sidecar_path(p, name)), p, recipe) for p in paths}
    others = [p for p, state in plan.items() if state == "other"]
    if others and not overwrite:
        theirs = read_sidecar_attrs(sidecar_path(others[0], name))["provenance"].get("command", [])
        raise ValueError(f"{sidecar_path(others[0], name)} (and {len(others) - 1} more) hold labels {name!r} made "
                         f"by another teacher or with other settings (`{shlex.join(theirs)}`; this run: "
                         f"`{shlex.join(recipe['command'])}`): give another --name, or --overwrite")
    return _relabel(model, plan, name, settings, recipe, progress)


def _relabel(model: LoadedModel, plan: dict[Path, str], name: str, settings: BootstrapSettings, recipe: dict,
             progress: bool) -> RelabelSummary:
    """Label the shards ``plan`` says to make (or replace), keep the others; the summary over all."""
    summary = RelabelSummary()
    todo = [p for p, state in plan.items() if state != "keep"]
    total = sum(len(ShardSet([p])) for p in todo)
    with tqdm(total=total, desc=f"relabel {name}", unit="mixture", disable=not progress) as bar:
        for shard, state in plan.items():
            path = sidecar_path(shard, name)
            if state == "keep":
                summary.kept.append(shard.name)
                summary.measures += read_sidecar_attrs(path)["provenance"]["measures"]
                continue
            labels, measures = label_shard(model, shard, settings, bar=bar)
            specs_sha = str(ShardSet([shard]).attrs[0].get("specs_sha256", ""))
            write_sidecar(path, name, labels, shard, specs_sha, dict(recipe, measures=measures))
            summary.labeled.append(shard.name)
            summary.measures += measures
    return summary
