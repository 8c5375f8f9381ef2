"""Score a checkpoint and the oracle masks on test shards: one row per mixture, method and source."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline import features
from spatialdc.pipeline.parallel import chunked, run_tasks
from spatialdc.pipeline.rng import random_state_for
from spatialdc.pipeline.shards import ShardSet, expand_shards

from .count import CountHead, count_features, default_head_path, estimate_num_speakers, network_outputs
from spatialdc.pipeline.metrics import DEFAULT_BACKEND, Scores, bss_eval_sets, silent_references
from .separate import apply_masks, binary_masks, cluster_labels, embed

log = logging.getLogger(__name__)
ORACLES = ("oracle_ds", "oracle_bpd")
DEFAULT_CLUSTER_DB = 20.0  # K-means fit range below the loudest bin (dB), chosen on fm2 valid (RESULTS.md)
_MODELS: dict = {}  # checkpoint path -> (model, stats, config), cached per worker process


@dataclass(frozen=True)
class EvalTask:
    """Mixtures ``indices`` of the shard set ``paths``, scored with ``checkpoint`` (or only oracles if None)."""

    paths: tuple
    indices: tuple
    checkpoint: str | None
    backend: str
    seed: int
    torch_threads: int = 1
    cluster_db: float = DEFAULT_CLUSTER_DB
    oracles: bool = True
    auto_count: bool = False
    max_speakers: int = 3
    count_head: str | None = None  # with auto_count: the head's JSON (else the eigenvalue rule)


_HEADS: dict = {}  # count-head path -> CountHead, cached per worker process


def _load_head(path: str) -> CountHead:
    if path not in _HEADS:
        _HEADS[path] = CountHead.load(path)
    return _HEADS[path]


def resolve_count_head(checkpoint: str, count_head: str | None) -> str | None:
    """The count head ``--speakers auto`` uses: ``count_head`` if given, else ``count_head.json`` beside the
    checkpoint if there is one, else None (the eigenvalue rule, with a warning).

    Raises:
        FileNotFoundError: a given head is missing. ValueError: a head fitted on another network.
    """
    path = Path(count_head) if count_head else default_head_path(checkpoint)
    if not path.is_file():
        if count_head:
            raise FileNotFoundError(f"count head {path} not found; fit one with `dccount --checkpoint {checkpoint}`")
        log.warning("no count head beside %s: estimating the count with the eigenvalue rule, which is near chance "
                    "with our models (RESULTS.md); fit a head with `dccount --checkpoint %s ...`", checkpoint,
                    checkpoint)
        return None
    CountHead.load(path, checkpoint)  # refuses a head fitted on another network
    return str(path)


def _load_model(checkpoint: str):
    if checkpoint not in _MODELS:
        from spatialdc.trainer.checkpoint import load_model

        model, state = load_model(checkpoint)
        _MODELS[checkpoint] = (model, state["stats"], state["config"]["target"])
    return _MODELS[checkpoint]


def check_model_fits_shards(checkpoint: str, shards: ShardSet) -> None:
    """Load the checkpoint (refusing a junk or foreign file) and check its model takes the shards' spectra, before
    any work starts.

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: not a model of this project, or trained on another
            number of frequencies than the shards hold.
    """
    _, stats, _ = _load_model(checkpoint)
    freqs = {int(a["n_fft"]) // 2 + 1 for a in shards.attrs}
    if freqs != {len(stats["mean"])}:
        raise ValueError(f"{checkpoint} takes spectra of {len(stats['mean'])} frequencies but the shards hold "
                         f"{sorted(freqs)}; render them with the STFT the model was trained on")


def method_name(target: str) -> str:
    """Report name of a model trained on ``target``: ``"dc_bpd"`` etc."""
    return f"dc_{target}"


def spec_columns(spec) -> dict:
    """The spec's columns in the report (genders, angles, gains, smallest angle gap)."""
    angles = np.asarray(spec.angles_deg)
    gaps = np.abs(angles[:, None] - angles[None, :])[np.triu_indices(len(angles), 1)]
    return {"mixture_id": spec.mixture_id, "dataset": spec.dataset, "split": spec.split,
            "num_speakers": spec.num_speakers, "genders": "".join(spec.genders),
            "gender_mix": "".join(sorted(set(spec.genders))),
            "angles_deg": " ".join(f"{a:.1f}" for a in spec.angles_deg),
            "gains": " ".join(f"{g:.3f}" for g in spec.gains), "min_angle_gap_deg": round(float(gaps.min()), 2)}


def evaluate_task(task: EvalTask) -> list[dict]:
    """Separate and score the task's mixtures with every method (runs in a Dask worker)."""
    import torch

    torch.set_num_threads(task.torch_threads)
    shards = ShardSet(task.paths)
    data = [shards.read(i, ("mixture", "sources", "magnitude", "bpd", "ds", "spec")) for i in task.indices]
    label_sets: list[dict[str, np.ndarray]] = [{"oracle_ds": d["ds"], "oracle_bpd": d["bpd"]} if task.oracles else {}
                                               for d in data]
    counts = [d["spec"].num_speakers for d in data]  # K of each mixture (estimated below with auto_count)
    if task.checkpoint:
        model, stats, target = _load_model(task.checkpoint)
        mags = np.stack([d["magnitude"] for d in data])
        head = _load_head(task.count_head) if task.auto_count and task.count_head else None
        if head is not None:
            x, h, emb = network_outputs(model, stats, mags)  # (B, T, F), (B, T, 2H), (B, F, T, D)
        else:
            emb = embed(model, stats, mags)  # (B, F, T, D)
        for k, d in enumerate(data):
            spec = d["spec"]
            active = features.active_bins(d["magnitude"], task.cluster_db)
            if head is not None:
                head_db = head.cluster_db or task.cluster_db
                summary = active if head_db == task.cluster_db else features.active_bins(d["magnitude"], head_db)
                counts[k] = int(head.predict(count_features(x[k], h[k], emb[k], summary)[None],
                                             task.max_speakers)[0])
            elif task.auto_count:
                counts[k] = estimate_num_speakers(emb[k], active, task.max_speakers)
            label_sets[k][method_name(target)] = cluster_labels(
                emb[k], active, counts[k], random_state_for(task.seed, spec.mixture_id, "kmeans"))
    rows = []
    for d, methods, k_est in zip(data, label_sets, counts):
        spec, refs, mix = d["spec"], d["sources"], d["mixture"][0]
        n = spec.num_speakers
        silent = bool(silent_references(refs).any())
        # a model that found the wrong count has as many estimates as clusters, but BSS Eval needs one per reference
        scored = [m for m in methods if not (m.startswith("dc_") and k_est != n)]
        t0 = time.perf_counter()
        estimates = (np.split(apply_masks(mix, np.concatenate([binary_masks(methods[m], n) for m in scored])),
                              len(scored)) if scored else [])  # one STFT of the mixture for every method's masks
        base, *method_scores = bss_eval_sets(refs, [np.tile(mix, (n, 1))] + estimates,
                                             task.backend)  # the mixture itself first: the baseline of improvements
        seconds = (time.perf_counter() - t0) / (1 + len(scored))  # the references' work is shared by all sets
        by_method = dict(zip(scored, method_scores))
        cols = dict(spec_columns(spec), num_speakers_est=k_est)
        for method in methods:
            s = by_method.get(method) or Scores(*(np.full(n, np.nan) for _ in range(4)), np.arange(n))
            for j in range(n):
                rows.append(dict(cols, method=method, source=j, speaker=spec.speakers[j],
                                 sdr=s.sdr[j], sir=s.sir[j], sar=s.sar[j], si_sdr=s.si_sdr[j],
                                 sdr_mix=base.sdr[j], si_sdr_mix=base.si_sdr[j],
                                 sdri=s.sdr[j] - base.sdr[j], si_sdri=s.si_sdr[j] - base.si_sdr[j],
                                 silent_reference=silent, count_error=method not in by_method,
                                 seconds=seconds / n))
    shards.close()
    return rows


def evaluate(shard_patterns: Sequence[str], checkpoint: str | None, backend: str = DEFAULT_BACKEND, workers: int = 2,
             chunk_size: int = 8, max_mixtures: int | None = None, seed: int = 0, scheduler: str | None = None,
             progress: bool = True, cluster_db: float = DEFAULT_CLUSTER_DB,
             oracles: bool = True, auto_count: bool = False, max_speakers: int = 3,
             count_head: str | None = None) -> list[dict]:
    """Score every mixture of the shards (first ``max_mixtures`` if given) with the model and the oracle masks.

    With ``auto_count``, the model's K-means uses the count estimated by the count head ``count_head`` (a path, see
    :func:`resolve_count_head`; None: the eigenvalue rule of :mod:`spatialdc.eval.count`) in
    1..``max_speakers`` instead of the true one; a mixture whose count is wrong cannot be scored by BSS Eval (one
    estimate per reference), so its model rows get NaN scores and ``count_error`` = True.

    K-means centers are fitted on the bins within ``cluster_db`` dB of the mixture's loudest bin; every bin is then
    assigned to its nearest center.

    Returns:
        rows sorted by (mixture_id, method, source); see :func:`evaluate_task`.

    Raises:
        FileNotFoundError: no shard matches, or the checkpoint is missing. ValueError: a junk or foreign
            checkpoint, or one that does not fit the shards (checked before any mixture is scored); a shard that
            cannot be read (:class:`~spatialdc.pipeline.shards.ShardReadError`).
    """
    paths = tuple(str(p) for p in expand_shards(shard_patterns))
    shard_set = ShardSet(paths)
    if checkpoint:
        check_model_fits_shards(str(checkpoint), shard_set)
    count = len(shard_set)
    if max_mixtures:
        count = min(count, max_mixtures)
    if not checkpoint and not oracles:
        raise ValueError("nothing to score: give --checkpoint, or keep the oracle masks")
    if auto_count and not checkpoint:
        raise ValueError("--speakers auto estimates the count from a model's embeddings: give --checkpoint")
    if auto_count and count_head:
        CountHead.load(count_head, checkpoint)  # refuses a missing head or one fitted on another network
    tasks = [EvalTask(paths, tuple(idx), str(checkpoint) if checkpoint else None, backend, seed, 1, cluster_db, oracles,
                      auto_count, max_speakers, str(count_head) if count_head else None)
             for idx in chunked(range(count), chunk_size)]
    rows = [r for batch in run_tasks(evaluate_task, tasks, workers, 1, scheduler, progress, desc="evaluate")
            for r in batch]
    silent = {r["mixture_id"] for r in rows if r["silent_reference"]}
    if silent:
        log.warning("%d mixtures have a silent reference source: marked in the CSV and left out of the means",
                    len(silent))
    if auto_count:
        wrong = {r["mixture_id"] for r in rows if r["count_error"]}
        log.warning("speaker count estimated right for %d of %d mixtures; the others are marked count_error and "
                    "left out of the SDR means", count - len(wrong), count)
    return sorted(rows, key=lambda r: (r["mixture_id"], r["method"], r["source"]))
