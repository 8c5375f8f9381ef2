"""How good the spatial labels of rendered mixtures are: BPD against DS labels (best-permutation accuracy and NMI
over the non-silent bins) on every mixture, and the oracle-mask SDRi of both on a sample, per shard as it is rendered
and summed up per split and gender mix (``label_quality.json`` beside the shards)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.metrics import mutual_info_score

from . import features
from .metrics import bss_eval_sets
from .render import Example

ORACLE_EVERY = 50  # oracle-mask SDRi at render time on mixtures whose index is a multiple of this (3 BSS Evals, ~0.2 s)


def contingency(labels: np.ndarray, reference: np.ndarray, num_sources: int,
                mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of (label, reference) pairs over the masked bins.

    Args:
        labels, reference: integer arrays of one shape, values in 0..N-1. mask: bool of that shape, bins to count.

    Returns:
        (N, N) int64, ``[i, j]`` = bins labelled i whose reference is j.

    Raises:
        ValueError: a value outside 0..N-1.
    """
    a = (labels[mask] if mask is not None else labels.ravel()).astype(np.intp)
    b = (reference[mask] if mask is not None else reference.ravel()).astype(np.intp)
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= num_sources):
        raise ValueError(f"labels must lie in 0..{num_sources - 1}")
    return np.bincount(a * num_sources + b, minlength=num_sources * num_sources).reshape(num_sources, num_sources)


def permutation_accuracy(labels: np.ndarray, reference: np.ndarray, num_sources: int,
                         mask: np.ndarray | None = None) -> float:
    """Fraction of bins where ``labels`` equal ``reference`` under the best relabeling (all N! permutations).

    Args:
        labels, reference: integer arrays of one shape, values in 0..N-1. mask: bool of that shape, bins to count.

    Returns:
        float in [1/N, 1] (nan if the mask is empty).
    """
    return accuracy_from_contingency(contingency(labels, reference, num_sources, mask))


def accuracy_from_contingency(counts: np.ndarray) -> float:
    """Best-permutation accuracy from an (N, N) contingency table (nan if it is empty)."""
    n, total = counts.shape[0], counts.sum()
    if total == 0:
        return float("nan")
    best = max(counts[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))
    return float(best / total)


def nmi_from_contingency(counts: np.ndarray) -> float:
    """Normalized mutual information, MI / mean(H(labels), H(reference)) (Strehl and Ghosh 2002; scikit-learn's
    ``normalized_mutual_info_score`` with ``average_method="arithmetic"``, 1.0 when both have one class), from an
    (N, N) contingency table; MI from ``sklearn.metrics.mutual_info_score``."""
    rows, cols = counts.sum(1), counts.sum(0)
    if (rows > 0).sum() <= 1 and (cols > 0).sum() <= 1:
        return 1.0
    mi = mutual_info_score(None, None, contingency=counts)

    def entropy(c: np.ndarray) -> float:
        p = c[c > 0] / c.sum()
        return float(-(p * np.log(p)).sum())

    return float(mi / max((entropy(rows) + entropy(cols)) / 2, np.finfo(np.float64).eps))


def label_agreement(ex: Example) -> tuple[float, float]:
    """(accuracy under the best permutation, NMI) of BPD against DS labels over the non-silent bins."""
    counts = contingency(ex.bpd, ex.ds, ex.spec.num_speakers, features.active_bins(ex.magnitude))
    return accuracy_from_contingency(counts), nmi_from_contingency(counts)


def oracle_sdri(ex: Example) -> tuple[float, float]:
    """Mean SDRi (dB) over the sources of the oracle DS and oracle BPD binary masks applied to mic 1 (BSS Eval v3,
    batched: the mixture and both masks scored against one factorization); NaN for a mixture with a silent reference."""
    n, mic1 = ex.spec.num_speakers, ex.mixture[0]
    masks = np.concatenate([features.binary_masks(lab, n) for lab in (ex.ds, ex.bpd)])  # (2 N, F, T)
    masked = np.split(features.apply_masks(mic1, masks), 2)  # one STFT of mic 1 for both oracles
    base, *oracles = bss_eval_sets(ex.sources, [np.tile(mic1, (n, 1))] + masked)
    return tuple(float(np.mean(s.sdr - base.sdr)) for s in oracles)


@dataclass
class ShardQuality:
    """The label measures of the mixtures of one shard, in mixture order (empty lists for a shard that was already
    complete and not rendered again).

    Attributes:
        split: the shard's split.
        genders: per mixture, its gender mix (``"f"``, ``"fm"`` or ``"m"``).
        bpd_accuracy, bpd_nmi: per mixture, :func:`label_agreement`.
        oracle_sdri: (gender mix, DS SDRi, BPD SDRi) in dB of every :data:`ORACLE_EVERY`-th mixture.
    """

    split: str
    genders: list
    bpd_accuracy: list = field(default_factory=list)
    bpd_nmi: list = field(default_factory=list)
    oracle_sdri: list = field(default_factory=list)


def measure_shard(examples: Sequence[Example]) -> ShardQuality:
    """The label measures of the rendered mixtures of one shard (same split)."""
    mixes = ["".join(sorted(set(ex.spec.genders))) for ex in examples]
    quality = ShardQuality(examples[0].spec.split, mixes)
    for ex, mix in zip(examples, mixes):
        acc, nmi = label_agreement(ex)
        quality.bpd_accuracy.append(acc)
        quality.bpd_nmi.append(nmi)
        if ex.spec.index % ORACLE_EVERY == 0:
            quality.oracle_sdri.append((mix,) + oracle_sdri(ex))
    return quality


def summarize(results: Sequence[ShardQuality]) -> dict:
    """Per split and per split/gender mix, over the shards rendered in this run: mean BPD-vs-DS accuracy (best
    permutation) and NMI over non-silent bins, and the mean oracle DS and BPD mask SDRi (dB) on every
    :data:`ORACLE_EVERY`-th mixture (the paper's oracle rows)."""
    out: dict = {}
    for r in results:
        for acc, nmi, g in zip(r.bpd_accuracy, r.bpd_nmi, r.genders):
            for key in (r.split, f"{r.split}/{g}"):
                out.setdefault(key, {"accuracy": [], "nmi": [], "ds": [], "bpd": []})
                out[key]["accuracy"].append(acc)
                out[key]["nmi"].append(nmi)
        for g, ds, bpd in r.oracle_sdri:
            for key in (r.split, f"{r.split}/{g}"):
                out[key]["ds"].append(ds)
                out[key]["bpd"].append(bpd)
    report = {}
    for k, v in sorted(out.items()):
        report[k] = {"mixtures": len(v["accuracy"]), "bpd_ds_accuracy": float(np.mean(v["accuracy"])),
                     "bpd_ds_nmi": float(np.mean(v["nmi"]))}
        if v["ds"]:
            report[k].update(oracle_mixtures=len(v["ds"]), oracle_ds_sdri=float(np.nanmean(v["ds"])),
                             oracle_bpd_sdri=float(np.nanmean(v["bpd"])))
    return report
