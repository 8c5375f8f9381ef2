"""How much each bin's spatial label counts in the loss: the confidence of its BPD cluster, and the bins where a
source's direct path most likely dominates (onsets). Chosen with ``benchmarks/label_ladder.py`` (RESULTS.md); used by
the trainer's ``--label-weights confidence`` and ``direct-path``.
"""

from __future__ import annotations

import numpy as np

from .features import omega
from .labels import unaliased_bins, wrap_phase

ONSET_FRAMES = 8  # frames an onset is compared with (chosen on the label ladder's validation mixtures)


def bpd_confidence(npd: np.ndarray, bpd: np.ndarray, active: np.ndarray, num_sources: int,
                   max_delay_samples: float, min_std: float | None = None) -> np.ndarray:
    """How clearly each bin's NPD belongs to its BPD cluster, in [0, 1] (confidence weights in the spirit of
    Seetharaman, Wichern, Le Roux, Pardo, "Bootstrapping single-channel source separation via unsupervised spatial
    clustering on stereo mixtures", ICASSP 2019).

    The posterior p of a bin's own cluster (:func:`cluster_posteriors`), rescaled from chance to certainty:
    (p - 1/K) / (1 - 1/K), clipped to [0, 1]. Well-separated clusters give ~1 everywhere, bins between two
    centres ~0.

    Args:
        npd: (F, T) float, samples. bpd: (F, T) int labels in 0..K-1. active: (F, T) bool (the statistics'
            bins). num_sources: K. max_delay_samples: d fs / c (NPD clipped to 1.5 times it, as for the labels).
        min_std: floor of the clusters' standard deviations (default 2 % of the clipping range).

    Returns:
        (F, T) float32 in [0, 1].
    """
    post = cluster_posteriors(npd, bpd, active, num_sources, max_delay_samples, min_std)  # (K, F, T)
    if post is None:
        return np.zeros(npd.shape, np.float32)
    own_post = np.take_along_axis(post, bpd[None].astype(np.intp), axis=0)[0]  # (F, T)
    return np.clip((own_post - 1 / num_sources) / (1 - 1 / num_sources), 0.0, 1.0).astype(np.float32)


def cluster_posteriors(npd: np.ndarray, bpd: np.ndarray, active: np.ndarray, num_sources: int,
                       max_delay_samples: float, min_std: float | None = None) -> np.ndarray | None:
    """The posterior of every BPD cluster in every bin, under a 1-D Gaussian model of each cluster.

    Each cluster k of the labels is taken as a 1-D Gaussian of its bins' distance to its centre (share, centre and
    root-mean-square distance over its active bins, omega > 0): the clipped NPD (samples) where no phase wraps,
    else the wrapped phase (radians) around the cluster's delay (:func:`~spatialdc.pipeline.labels.wrapped_phase_labels`).

    Args: as :func:`bpd_confidence`.

    Returns:
        (K, F, T) float64 posteriors summing to 1 over K (an empty cluster gets 0), or None when no cluster has
        two active bins.
    """
    limit = 1.5 * max_delay_samples
    fit = active.copy()
    fit[0] = False
    ls = bpd[fit]
    log_p = np.empty((num_sources,) + npd.shape)  # (K, F, T)
    if not any((ls == k).sum() >= 2 for k in range(num_sources)):
        return None
    if max_delay_samples <= 0.5:  # no wrapping: distances in NPD (samples)
        min_std = 0.02 * limit if min_std is None else min_std
        x = np.clip(npd, -limit, limit).astype(np.float64)
        centres = [x[fit][ls == k].mean() if (ls == k).sum() else 0.0 for k in range(num_sources)]
        residual = [x - c for c in centres]
    else:  # wrapped phase (radians) around each cluster's delay, estimated on its unaliased bins
        min_std = 0.05 if min_std is None else min_std
        w = omega(npd.shape[0])[:, None]
        phi = npd.astype(np.float64) * w
        clean = fit & unaliased_bins(npd.shape[0], max_delay_samples)[:, None]
        centres = [float(np.median(npd[clean & (bpd == k)])) if (clean & (bpd == k)).any() else 0.0
                   for k in range(num_sources)]
        residual = [wrap_phase(phi - w * c) for c in centres]
    for k in range(num_sources):
        own = residual[k][fit][ls == k]
        if own.size < 2:  # an empty cluster: no evidence either way
            log_p[k] = -np.inf
            continue
        sd, share = max(float(np.sqrt(np.mean(own**2))), min_std), own.size / max(ls.size, 1)
        log_p[k] = np.log(share) - np.log(sd) - 0.5 * (residual[k] / sd) ** 2
    log_p -= log_p.max(axis=0, keepdims=True)
    post = np.exp(log_p)
    return post / post.sum(axis=0, keepdims=True)


def onset_bins(magnitude: np.ndarray, frames: int = ONSET_FRAMES, rise_db: float = 0.0) -> np.ndarray:
    """The bins whose power rose above the mean power of the ``frames`` frames before it (by more than ``rise_db``).

    At an onset the direct sound arrives before the room's reverberation of it, so the phase difference of these bins
    is the source's own more often than elsewhere (the precedence effect; onsets are the classic cue of direct-path
    dominance in reverberant localization).

    Args:
        magnitude: (F, T) float STFT magnitude. frames: >= 1. rise_db: dB.

    Returns:
        (F, T) bool; the first ``frames`` frames are never onsets.

    Raises:
        ValueError: ``frames`` < 1.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    p = magnitude.astype(np.float64) ** 2  # (F, T)
    csum = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=1)], axis=1)  # (F, T + 1)
    out = np.zeros(p.shape, bool)
    if p.shape[1] > frames:
        before = (csum[:, frames:-1] - csum[:, :-frames - 1]) / frames  # mean of frames t-frames .. t-1, t >= frames
        out[:, frames:] = p[:, frames:] > before * 10 ** (rise_db / 10)
    return out


def direct_path_bins(magnitude: np.ndarray, confidence: np.ndarray, active: np.ndarray, share: float = 0.5,
                     frames: int = ONSET_FRAMES) -> np.ndarray:
    """The bins whose spatial label most likely comes from a source's direct path: onset bins (:func:`onset_bins`)
    among the active ones, and of those, if there are more than ``share`` of the active bins, the ones whose label
    is the most confident (:func:`bpd_confidence`), down to ``share``.

    Chosen on validation mixtures of the label ladder (``benchmarks/label_ladder.py --split valid``, RESULTS.md):
    in mild rooms (RT60 0.2-0.3 s, 0.5-1 m) ``share`` 0.5 kept labels that agree with the dominant source on 94 % (1
    cm) and 93 % (3 cm) of the kept bins, against 85 % on all bins; in harsher rooms (RT60 0.2-0.6 s, 1-2 m)
    ``share`` 0.35 kept 83 % / 81 % against 69 %.

    Args:
        magnitude: (F, T) float STFT magnitude (mic 1). confidence: (F, T) float in [0, 1]. active: (F, T) bool.
        share: the largest share of the active bins kept, in (0, 1]. frames: see :func:`onset_bins`.

    Returns:
        (F, T) bool, a subset of ``active``.

    Raises:
        ValueError: ``share`` outside (0, 1].
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    keep = active & onset_bins(magnitude, frames)
    want = int(round(share * active.sum()))
    if keep.sum() > want:
        if want == 0:
            return np.zeros_like(keep)
        conf = np.where(keep, confidence, -1.0)
        order = np.argsort(conf, axis=None, kind="stable")[::-1][:want]  # the most confident onset bins
        keep = np.zeros(keep.size, bool)
        keep[order] = True
        keep = keep.reshape(active.shape)
    return keep
