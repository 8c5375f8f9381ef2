"""Score a checkpoint and the oracle masks on test shards: one row per mixture, method and source."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline import features
from spatialdc.pipeline.parallel import chunked, run_tasks
from spatialdc.pipeline.shards import ShardReadError, ShardSet, expand_shards

from spatialdc.pipeline.metrics import DEFAULT_BACKEND, Scores, bss_eval_sets, silent_references
from spatialdc.trainer.device import resolve_device

from .count import CountHead, count_features, estimate_num_speakers
from .separate import DEFAULT_CLUSTER_DB, load_model, network_outputs, separate_mixture

log = logging.getLogger(__name__)
ORACLES = ("oracle_ds", "oracle_bpd")


@dataclass(frozen=True)
class EvalTask:
    """Mixtures ``indices`` of the shard set ``paths``, scored with ``checkpoint`` (or only oracles if None), its
    network on ``device`` (``"cpu"``, ``"cuda:0"``; K-means and BSS Eval on the CPU)."""

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
    device: str = "cpu"


@functools.lru_cache(maxsize=4)
def _load_head(path: str) -> CountHead:
    return CountHead.load(path)


def check_model_fits_shards(checkpoint: str, shards: ShardSet) -> None:
    """Load the checkpoint (refusing a junk or foreign file) and check its model takes the shards' spectra, before
    any work starts.

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: not a model of this project, or trained on another
            number of frequencies than the shards hold.
    """
    stats = load_model(checkpoint).stats
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
    mask_sets: list[dict[str, np.ndarray]] = [
        {m: features.binary_masks(d[m.removeprefix("oracle_")], d["spec"].num_speakers) for m in ORACLES}
        if task.oracles else {} for d in data]  # method -> (N, F, T) masks
    counts = [d["spec"].num_speakers for d in data]  # K of each mixture (estimated with auto_count)
    if task.checkpoint:
        counts = model_masks(task, data, mask_sets)
    rows = [row for d, methods, k_est in zip(data, mask_sets, counts)
            for row in score_mixture(d, methods, k_est, task.backend)]
    shards.close()
    return rows


def model_masks(task: EvalTask, data: list[dict], mask_sets: list[dict]) -> list[int]:
    """The model's masks of every mixture (:func:`~spatialdc.eval.separate.separate_mixture`, K-means keyed by
    the task's seed and the mixture id) into ``mask_sets``, with the true count or, with ``task.auto_count``, the
    count head's (or the eigenvalue rule's) estimate. The task's mixtures are embedded in one batch on
    ``task.device``. Returns the count used for each mixture."""
    model = load_model(task.checkpoint, task.device)
    head = _load_head(task.count_head) if task.auto_count and task.count_head else None
    x, h, emb = network_outputs(model.net, model.stats, np.stack([d["magnitude"] for d in data]))  # one batch
    counts = []
    for k, d in enumerate(data):
        count = d["spec"].num_speakers
        active = features.active_bins(d["magnitude"], task.cluster_db)
        if head is not None:
            head_db = head.cluster_db or task.cluster_db
            summary = active if head_db == task.cluster_db else features.active_bins(d["magnitude"], head_db)
            count = int(head.predict(count_features(x[k], h[k], emb[k], summary)[None], task.max_speakers)[0])
        elif task.auto_count:
            count = estimate_num_speakers(emb[k], active, task.max_speakers)
        sep = separate_mixture(emb[k], d["magnitude"], count, seed=task.seed, key=d["spec"].mixture_id,
                               cluster_db=task.cluster_db)
        mask_sets[k][method_name(model.target)] = sep.masks
        counts.append(count)
    return counts


def score_mixture(d: dict, methods: dict[str, np.ndarray], k_est: int, backend: str) -> list[dict]:
    """One row per method and source of a mixture ``d`` (its shard fields): BSS Eval of the mixture through each
    method's (N, F, T) masks against the references, and its improvement over the mixture itself. A model whose
    count ``k_est`` is wrong has NaN scores and ``count_error`` True (BSS Eval needs one estimate per reference)."""
    spec, refs, mix = d["spec"], d["sources"], d["mixture"][0]
    n = spec.num_speakers
    silent = bool(silent_references(refs).any())
    scored = [m for m in methods if not (m.startswith("dc_") and k_est != n)]
    t0 = time.perf_counter()
    estimates = (np.split(features.apply_masks(mix, np.concatenate([methods[m] for m in scored])), len(scored))
                 if scored else [])  # one STFT of the mixture for every method's masks
    base, *method_scores = bss_eval_sets(refs, [np.tile(mix, (n, 1))] + estimates,
                                         backend)  # the mixture itself first: the baseline of improvements
    seconds = (time.perf_counter() - t0) / (1 + len(scored))  # the references' work is shared by all sets
    by_method = dict(zip(scored, method_scores))
    cols = dict(spec_columns(spec), num_speakers_est=k_est)
    rows = []
    for method in methods:
        s = by_method.get(method) or Scores(*(np.full(n, np.nan) for _ in range(4)), np.arange(n))
        for j in range(n):
            rows.append(dict(cols, method=method, source=j, speaker=spec.speakers[j],
                             sdr=s.sdr[j], sir=s.sir[j], sar=s.sar[j], si_sdr=s.si_sdr[j],
                             sdr_mix=base.sdr[j], si_sdr_mix=base.si_sdr[j],
                             sdri=s.sdr[j] - base.sdr[j], si_sdri=s.si_sdr[j] - base.si_sdr[j],
                             silent_reference=silent, count_error=method not in by_method,
                             seconds=seconds / n))
    return rows


def unique_shards(paths: Sequence[Path]) -> tuple[str, ...]:
    """The shard files, each once (overlapping globs match some twice), in their order."""
    seen: dict[Path, str] = {}
    for p in paths:
        seen.setdefault(Path(p).resolve(), str(p))
    if len(seen) < len(paths):
        log.info("%d shard files matched more than one --shards glob: each is scored once", len(paths) - len(seen))
    return tuple(seen.values())


def check_unique_mixtures(shards: ShardSet) -> None:
    """Refuse shards of two folders that hold mixtures of the same id (two datasets of one name, e.g. two fm2
    folders rendered with other settings): one report cannot tell their rows apart.

    Raises:
        ValueError: the clashing ids, the folders and the fix.
    """
    folders: dict[str, set[str]] = {}
    for i in range(len(shards)):
        folder = str(shards.paths[shards.index[i][0]].parent)
        folders.setdefault(shards.read(i, ("spec",))["spec"].mixture_id, set()).add(folder)
    clashes = sorted(m for m, f in folders.items() if len(f) > 1)
    if clashes:
        where = sorted(set().union(*(folders[m] for m in clashes)))
        raise ValueError(
            f"the shards of {' and '.join(where)} hold mixtures of the same ids ({clashes[0]}"
            f"{f' and {len(clashes) - 1} more' if len(clashes) > 1 else ''}): datasets of one name, whose rows one "
            f"report cannot tell apart. Score each folder in a dceval run of its own, e.g. --shards "
            f"'{where[0]}/test-*.h5' --report {Path(where[0]).name}.csv")


def scored_rows(tasks: Sequence[EvalTask], workers: int, scheduler: str | None, progress: bool) -> list[dict]:
    """The rows of every task, in this process (``workers`` 0) or on Dask; a task's error is raised here as it was
    raised (e.g. a :class:`~spatialdc.pipeline.shards.ShardReadError` naming the shard).

    Raises:
        ShardReadError: also when a Dask worker process died (``KilledWorker``: a crash, e.g. in the decompression
            of a damaged shard, or out of memory); the message names the shards' folders and ``dcgen verify``.
    """
    try:
        return [r for batch in run_tasks(evaluate_task, tasks, workers, 1, scheduler, progress, desc="evaluate")
                for r in batch]
    except Exception as exc:
        if type(exc).__name__ != "KilledWorker":  # distributed's, not imported unless a cluster runs
            raise
        folders = sorted({str(Path(p).parent) for t in tasks for p in t.paths})
        raise ShardReadError(
            f"a Dask worker process died while scoring the mixtures of {', '.join(folders)} ({exc}): a damaged shard "
            f"can crash the decompression of HDF5 data, or the workers ran out of memory. "
            f"{'; '.join(f'`dcgen verify {f}`' for f in folders)} finds damaged shards (delete them and re-run the "
            f"`dcgen render` command that made them); with too little memory, give fewer --workers") from exc


def evaluate(shard_patterns: Sequence[str], checkpoint: str | None, backend: str = DEFAULT_BACKEND, workers: int = 2,
             chunk_size: int = 8, max_mixtures: int | None = None, seed: int = 0, scheduler: str | None = None,
             progress: bool = True, cluster_db: float = DEFAULT_CLUSTER_DB,
             oracles: bool = True, auto_count: bool = False, max_speakers: int = 3,
             count_head: str | None = None, device: str = "auto") -> list[dict]:
    """Score every mixture of the shards (first ``max_mixtures`` if given) with the model and the oracle masks.

    With ``auto_count``, the model's K-means uses the count estimated by the count head ``count_head`` (a path, see
    :func:`~spatialdc.eval.count.resolve_count_head`; None: the eigenvalue rule of :mod:`spatialdc.eval.count`) in
    1..``max_speakers`` instead of the true one; a mixture whose count is wrong cannot be scored by BSS Eval (one
    estimate per reference), so its model rows get NaN scores and ``count_error`` = True.

    K-means centers are fitted on the bins within ``cluster_db`` dB of the mixture's loudest bin; every bin is then
    assigned to its nearest center.

    The network computes on ``device`` (``"auto"``: a CUDA GPU where torch sees one, else the CPU), each task's
    ``chunk_size`` mixtures in one batch; K-means and BSS Eval stay on the CPU, in the workers (docs/evaluation.md
    says why).

    Returns:
        rows sorted by (mixture_id, method, source); see :func:`evaluate_task`.

    Raises:
        FileNotFoundError: no shard matches, or the checkpoint is missing. ValueError: a junk or foreign
            checkpoint, or one that does not fit the shards, or shards of two datasets whose mixture ids clash
            (checked before any mixture is scored); a shard that cannot be read, or a Dask worker that died
            (:class:`~spatialdc.pipeline.shards.ShardReadError`); CUDA asked for where torch sees none.
    """
    device = str(resolve_device(device))
    paths = unique_shards(expand_shards(shard_patterns))
    shard_set = ShardSet(paths)
    check_unique_mixtures(shard_set)
    shard_set.close()  # the workers open their own
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
                      auto_count, max_speakers, str(count_head) if count_head else None, device)
             for idx in chunked(range(count), chunk_size)]
    rows = scored_rows(tasks, workers, scheduler, progress)
    silent = {r["mixture_id"] for r in rows if r["silent_reference"]}
    if silent:
        log.warning("%d mixtures have a silent reference source: marked in the CSV and left out of the means",
                    len(silent))
    if auto_count:
        wrong = {r["mixture_id"] for r in rows if r["count_error"]}
        log.warning("speaker count estimated right for %d of %d mixtures; the others are marked count_error and "
                    "left out of the SDR means", count - len(wrong), count)
    return sorted(rows, key=lambda r: (r["mixture_id"], r["method"], r["source"]))
