"""Training targets from a mixture: DS (oracle), BPD (unsupervised), RPD (raw NPD); and label agreement.

- DS (Tzinis et al. 2019, eq. 4): the source with the largest |a_i S_i| in each bin.
- BPD (eq. 5): K-means with K = N on the NPD values (:func:`kmeans_1d`, Lloyd's algorithm on sorted values, which
  gives scikit-learn's result about 50 times faster for 1-D data). Robustness: K-means is fitted only on
  non-silent bins with omega > 0, with the NPD clipped to 1.5 times the largest physical delay, because bins where
  sources overlap or nearly cancel give arbitrary phases; every bin is then assigned to the nearest center.
  Clusters are numbered by increasing delay, so labels are deterministic.
- RPD (Sec. 3.2): the NPD itself; its scaling for the loss is in :func:`rpd_target`.
"""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.metrics import mutual_info_score


def ds_labels(source_stfts: np.ndarray) -> np.ndarray:
    """Dominant-source labels, eq. 4.

    Args:
        source_stfts: (N, F, T) complex, each source as heard at mic 1 (gain included).

    Returns:
        (F, T) uint8 in 0..N-1.
    """
    return np.argmax(np.abs(source_stfts), axis=0).astype(np.uint8)


def kmeans_1d(values: np.ndarray, num_clusters: int, rng: np.random.Generator, n_init: int = 5,
              max_iter: int = 100) -> np.ndarray:
    """K-means (Lloyd's algorithm) on 1-D data, exact and vectorized.

    On sorted data each cluster is a contiguous run: assignment is a ``searchsorted`` of the midpoints between
    centers, and the update is a difference of prefix sums, so one iteration costs O(K log n) after one sort.
    Initializations: the quantiles at (k + 0.5) / K, then ``n_init - 1`` k-means++ draws from ``rng``; the solution
    with the lowest inertia (sum of squared distances) is kept, as scikit-learn does.

    Args:
        values: (n,) float. num_clusters: K >= 1. rng: the seeded generator of this mixture.

    Returns:
        (K,) float64 centers, ascending.

    Raises:
        ValueError: fewer values than clusters.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    if n < num_clusters:
        raise ValueError(f"{n} values cannot form {num_clusters} clusters")
    csum = np.concatenate([[0.0], np.cumsum(x)])
    csum2 = np.concatenate([[0.0], np.cumsum(x * x)])

    def lloyd(centers: np.ndarray) -> tuple[np.ndarray, float]:
        centers = np.sort(centers)
        for _ in range(max_iter):
            bounds = np.concatenate([[0], np.searchsorted(x, (centers[1:] + centers[:-1]) / 2), [n]])  # (K + 1,)
            counts = np.diff(bounds)
            sums = csum[bounds[1:]] - csum[bounds[:-1]]
            new = np.where(counts > 0, sums / np.maximum(counts, 1), centers)  # an empty cluster keeps its center
            if np.max(np.abs(new - centers)) <= 1e-12:
                break
            centers = np.sort(new)
        bounds = np.concatenate([[0], np.searchsorted(x, (centers[1:] + centers[:-1]) / 2), [n]])
        counts = np.diff(bounds)
        sums = csum[bounds[1:]] - csum[bounds[:-1]]
        sq = csum2[bounds[1:]] - csum2[bounds[:-1]]
        inertia = float(np.sum(sq - 2 * centers * sums + counts * centers**2))
        return centers, inertia

    inits = [np.quantile(x, (np.arange(num_clusters) + 0.5) / num_clusters)]
    for _ in range(n_init - 1):  # k-means++ seeding
        centers = [x[int(rng.integers(n))]]
        for _ in range(num_clusters - 1):
            d2 = np.min((x[:, None] - np.asarray(centers)[None]) ** 2, axis=1)  # (n,)
            total = d2.sum()
            centers.append(x[int(rng.choice(n, p=d2 / total))] if total > 0 else x[int(rng.integers(n))])
        inits.append(np.asarray(centers))
    return min((lloyd(c) for c in inits), key=lambda r: r[1])[0]


def bpd_labels(npd: np.ndarray, active: np.ndarray, num_sources: int, max_delay_samples: float,
               rng: np.random.Generator) -> np.ndarray:
    """Binary phase-difference labels, eq. 5: K-means (K = N) on the NPD.

    Args:
        npd: (F, T) float, samples.
        active: (F, T) bool, the non-silent bins (fit only on these, omega > 0 too).
        num_sources: N, the number of clusters (explicit, never inferred).
        max_delay_samples: d fs / c, the largest physical delay; NPD is clipped to 1.5 times it.
        rng: the mixture's generator for the K-means initializations (from :func:`pipeline.rng.rng_for`).

    Returns:
        (F, T) uint8 in 0..N-1, cluster 0 having the smallest delay.

    Raises:
        ValueError: fewer fit bins than sources.
    """
    limit = 1.5 * max_delay_samples
    values = np.clip(npd, -limit, limit)
    fit_mask = active.copy()
    fit_mask[0] = False  # omega = 0 carries no phase difference
    fit = values[fit_mask].reshape(-1, 1)  # (bins, 1)
    if fit.shape[0] < num_sources:
        raise ValueError(f"only {fit.shape[0]} non-silent bins for {num_sources} BPD clusters: is the mixture silent?")
    centers = kmeans_1d(fit[:, 0], num_sources, rng)  # (N,) ascending
    edges = (centers[1:] + centers[:-1]) / 2  # nearest center in 1-D = bins between midpoints
    return np.searchsorted(edges, values).astype(np.uint8)


def rpd_target(npd: np.ndarray, active: np.ndarray, max_delay_samples: float) -> np.ndarray:
    """The RPD training target (Sec. 3.2): NPD clipped to +-1.5 max delay, then z-scored over the active bins
    of the mixture (as the authors' code), so its scale does not depend on the mic spacing.

    Args:
        npd: (..., F, T) float, samples. active: (..., F, T) bool.

    Returns:
        (..., F, T) float32.
    """
    limit = 1.5 * max_delay_samples
    values = np.clip(npd, -limit, limit).astype(np.float64)
    axes = (-2, -1)
    count = np.maximum(active.sum(axis=axes, keepdims=True), 1)
    mean = (values * active).sum(axis=axes, keepdims=True) / count
    var = (((values - mean) * active) ** 2).sum(axis=axes, keepdims=True) / count
    return ((values - mean) / np.sqrt(var + 1e-12)).astype(np.float32)


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
