"""Training targets from a mixture: DS (oracle), BPD (unsupervised), RPD (raw NPD).

- DS (Tzinis et al. 2019, eq. 4): the source with the largest |a_i S_i| in each bin.
- BPD (eq. 5): K-means with K = N on the NPD values (:func:`kmeans_1d`, Lloyd's algorithm on sorted values, which
  gives scikit-learn's result about 50 times faster for 1-D data). Robustness: K-means is fitted only on
  non-silent bins with omega > 0, with the NPD clipped to 1.5 times the largest physical delay, because bins where
  sources overlap or nearly cancel give arbitrary phases; every bin is then assigned to the nearest center.
  Clusters are numbered by increasing delay, so labels are deterministic.
- RPD (Sec. 3.2): the NPD itself; its scaling for the loss is in :func:`rpd_target`.

How much each bin's label counts in the loss is :mod:`spatialdc.pipeline.label_weights`'s; how well BPD agrees with
DS is :mod:`spatialdc.pipeline.label_quality`'s.
"""

from __future__ import annotations

import numpy as np

from .features import omega


def ds_labels(source_stfts: np.ndarray) -> np.ndarray:
    """Dominant-source labels, eq. 4.

    Args:
        source_stfts: (N, F, T) complex, each source as heard at mic 1 (gain included).

    Returns:
        (F, T) uint8 in 0..N-1.
    """
    power = source_stfts.real ** 2 + source_stfts.imag ** 2  # (N, F, T); same order as |.|, no square root
    best, out = power[0], np.zeros(power.shape[1:], np.uint8)
    for k in range(1, power.shape[0]):  # argmax over N (the first on ties), without a strided reduction
        wins = power[k] > best
        out[wins] = k
        best = np.where(wins, power[k], best)
    return out


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

    inits = [np.quantile(x, (np.arange(num_clusters) + 0.5) / num_clusters)]
    for _ in range(n_init - 1):  # k-means++ seeding: next center drawn with probability proportional to d^2
        centers = [x[int(rng.integers(n))]]
        d2 = (x - centers[0]) ** 2  # (n,) squared distance to the nearest center so far
        for _ in range(num_clusters - 1):
            cum = np.cumsum(d2)
            j = (min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), n - 1) if cum[-1] > 0
                 else int(rng.integers(n)))
            centers.append(x[j])
            d2 = np.minimum(d2, (x - x[j]) ** 2)
        inits.append(np.asarray(centers))
    return _lloyd_sorted(x, csum, csum2, np.stack(inits), max_iter)


def _lloyd_sorted(x: np.ndarray, csum: np.ndarray, csum2: np.ndarray, inits: np.ndarray,
                  max_iter: int) -> np.ndarray:
    """Lloyd's iterations from several initializations at once, on sorted 1-D data with its prefix sums.

    Each row runs its own Lloyd iteration (a row that has converged stays at its fixed point), so the result is
    that of running them one by one and keeping the lowest inertia (the first on ties); doing them together costs
    one ``searchsorted`` per iteration for all rows.

    Args:
        x: (n,) float64 ascending. csum, csum2: (n + 1,) prefix sums of x and x**2. inits: (I, K) centers.

    Returns:
        (K,) float64 centers, ascending.
    """
    n, rows = x.size, inits.shape[0]
    centers = np.sort(inits, axis=1)
    first, last = np.zeros((rows, 1), np.intp), np.full((rows, 1), n, np.intp)

    def runs(c: np.ndarray) -> np.ndarray:  # (I, K + 1) run boundaries: each cluster is a contiguous run
        return np.concatenate([first, np.searchsorted(x, (c[:, 1:] + c[:, :-1]) / 2), last], axis=1)

    for _ in range(max_iter):
        bounds = runs(centers)
        counts = np.diff(bounds, axis=1)
        sums = csum[bounds[:, 1:]] - csum[bounds[:, :-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centers)  # an empty cluster keeps its center
        if np.max(np.abs(new - centers)) <= 1e-12:
            break
        centers = np.sort(new, axis=1)
    bounds = runs(centers)
    counts = np.diff(bounds, axis=1)
    sums = csum[bounds[:, 1:]] - csum[bounds[:, :-1]]
    sq = csum2[bounds[:, 1:]] - csum2[bounds[:, :-1]]
    inertia = np.sum(sq - 2 * centers * sums + counts * centers**2, axis=1)  # (I,)
    return centers[int(np.argmin(inertia))]


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


UNALIASED_FRACTION = 0.9  # bins with omega tau_max below this fraction of pi count as free of phase wrapping
MIN_UNALIASED_BINS = 8  # fewer than this many unaliased frequencies: the delays cannot be estimated


def unaliased_bins(num_freqs: int, max_delay_samples: float) -> np.ndarray:
    """(F,) bool: frequencies (omega > 0) where no source's phase difference wraps, omega tau_max <
    :data:`UNALIASED_FRACTION` pi."""
    w = omega(num_freqs)
    return (w > 0) & (w * max_delay_samples < UNALIASED_FRACTION * np.pi)


def check_spacing(num_freqs: int, max_delay_samples: float, mic_spacing_m: float, sample_rate: int) -> None:
    """Refuse a spacing at which (almost) every frequency's phase difference wraps.

    Raises:
        ValueError: fewer than :data:`MIN_UNALIASED_BINS` unaliased frequencies, with the largest usable spacing.
    """
    n = int(unaliased_bins(num_freqs, max_delay_samples).sum())
    if n < MIN_UNALIASED_BINS:
        ceiling = mic_spacing_m / max_delay_samples * UNALIASED_FRACTION * (num_freqs - 1) / MIN_UNALIASED_BINS
        raise ValueError(f"mic spacing {mic_spacing_m} m at {sample_rate} Hz gives delays up to "
                         f"{max_delay_samples:.1f} samples: the phase difference wraps at all but {n} of {num_freqs} "
                         f"frequencies, too few to estimate the sources' delays; use a spacing under "
                         f"{ceiling:.2f} m (or a higher sample rate)")


def wrap_phase(phase: np.ndarray) -> np.ndarray:
    """Phases (radians, any shape) wrapped to [-pi, pi)."""
    return (phase + np.pi) % (2 * np.pi) - np.pi


def wrapped_phase_labels(npd: np.ndarray, active: np.ndarray, num_sources: int, max_delay_samples: float,
                         rng: np.random.Generator, refine_steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spatial labels for any mic spacing (DUET-style, Yilmaz & Rickard 2004): estimate the sources' delays, then
    give each bin the source whose predicted inter-mic phase, wrapped, is nearest the observed one.

    1. Delays: K-means (as :func:`bpd_labels`) on the NPD of the non-silent bins of the unaliased frequencies
       (:func:`unaliased_bins`), where NPD = delay.
    2. Refinement on all non-silent bins: each bin goes to the delay tau_k maximizing cos(phi - omega tau_k)
       (phi = omega NPD, the observed phase difference), then each tau_k moves to the maximum of the sum of
       cos(phi - omega tau) over its bins (a grid of +-0.1 sample in 0.005 steps); ``refine_steps`` times.
    3. Every bin gets the nearest delay in wrapped phase.

    Args:
        npd: (F, T) float, samples (angle(M1 / M2) / omega, wrapped where |omega tau| > pi). active: (F, T) bool.
        num_sources: K. max_delay_samples: d fs / c. rng: the mixture's generator (K-means initializations).

    Returns:
        ((F, T) uint8 labels in 0..K-1, cluster 0 having the smallest delay; (K,) float64 delays in samples).

    Raises:
        ValueError: fewer unaliased non-silent bins than sources.
    """
    f = npd.shape[0]
    w = omega(f)[:, None]  # (F, 1)
    phi = npd.astype(np.float64) * w  # (F, T) observed phase difference, wrapped to (-pi, pi]
    limit = 1.5 * max_delay_samples
    fit = active & unaliased_bins(f, max_delay_samples)[:, None]
    values = np.clip(npd[fit], -limit, limit).astype(np.float64)
    if values.size < num_sources:
        raise ValueError(f"only {values.size} non-silent unaliased bins for {num_sources} clusters")
    taus = kmeans_1d(values, num_sources, rng)  # (K,) ascending
    use = active.copy()
    use[0] = False
    phi_a, w_a = phi[use], np.broadcast_to(w, phi.shape)[use]  # (L,)
    grid = np.linspace(-0.1, 0.1, 41)
    for _ in range(refine_steps):
        nearest = np.argmax(np.cos(phi_a[None] - w_a[None] * taus[:, None]), axis=0)  # (L,)
        for k in range(num_sources):
            sel = nearest == k
            if sel.sum() < 2:
                continue
            cand = taus[k] + grid  # (G,)
            score = np.cos(phi_a[sel][None] - w_a[sel][None] * cand[:, None]).sum(axis=1)  # (G,)
            taus[k] = float(np.clip(cand[int(np.argmax(score))], -limit, limit))
    taus = np.sort(taus)
    out = np.argmax(np.cos(phi[None] - w[None] * taus[:, None, None]), axis=0)  # (F, T)
    return out.astype(np.uint8), taus


def spatial_labels(npd: np.ndarray, active: np.ndarray, num_sources: int, max_delay_samples: float,
                   rng: np.random.Generator) -> np.ndarray:
    """The BPD labels of a mixture: :func:`bpd_labels` (the paper's K-means on the NPD, eq. 5) when no phase
    difference can wrap (max delay <= 0.5 sample, e.g. 1 cm at 16 kHz: the labels of earlier versions byte for
    byte), else :func:`wrapped_phase_labels`. Returns (F, T) uint8."""
    if max_delay_samples <= 0.5:
        return bpd_labels(npd, active, num_sources, max_delay_samples, rng)
    return wrapped_phase_labels(npd, active, num_sources, max_delay_samples, rng)[0]


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
