"""Separation metrics: BSS Eval v3 (SDR, SIR, SAR) with the best permutation, and SI-SDR.

Backends, all BSS Eval v3 with 512-tap distortion filters: ``batched`` (the default, :mod:`spatialdc.pipeline.bsseval`: every
estimate set of a mixture and its baseline scored against one factorization of the references' Gram matrix),
``fast_bss_eval`` (``fast_bss_eval.bss_eval_sources``, one set at a time) and ``mir_eval``
(``mir_eval.separation.bss_eval_sources``, the reference implementation; Vincent et al. 2006).

A reference source that is silent (energy under ``SILENT_ENERGY``) cannot be scored: the whole mixture is marked and
gets NaN, instead of crashing the run (mir_eval raises ValueError on an all-zero reference).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .bsseval import bss_eval_sources_batch

BACKENDS = ("batched", "fast_bss_eval", "mir_eval")
DEFAULT_BACKEND = "batched"
SILENT_ENERGY = 1e-10


@dataclass
class Scores:
    """Per-source scores in reference order, dB, each (N,) float64; ``perm[j]`` = estimate matched to reference j."""

    sdr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    si_sdr: np.ndarray
    perm: np.ndarray


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Scale-invariant SDR (Le Roux et al. 2019, eq. 1), without mean removal.

    Args:
        reference, estimate: (..., S) float.

    Returns:
        (...) float64, dB.
    """
    r = reference.astype(np.float64)
    e = estimate.astype(np.float64)
    alpha = (e * r).sum(-1, keepdims=True) / ((r * r).sum(-1, keepdims=True) + 1e-20)
    target = alpha * r
    return 10 * np.log10((target**2).sum(-1) / (((e - target) ** 2).sum(-1) + 1e-20) + 1e-20)


def silent_references(references: np.ndarray) -> np.ndarray:
    """(N, S) -> (N,) bool, True where a reference has (near) zero energy."""
    return (references.astype(np.float64) ** 2).sum(-1) < SILENT_ENERGY


def bss_eval_sets(references: np.ndarray, estimate_sets: Sequence[np.ndarray],
                  backend: str = DEFAULT_BACKEND) -> list[Scores]:
    """BSS Eval v3 of several estimate sets of one mixture (methods, and the mixture itself as a baseline), each
    matched to the references by its best permutation.

    Args:
        references: (N, S) float.
        estimate_sets: M arrays (N, S) float.
        backend: one of ``BACKENDS``; ``batched`` shares the references' work across the sets.

    Returns:
        M :class:`Scores`; all NaN if any reference is silent (see the module docstring).

    Raises:
        ValueError: shapes differ, or an unknown backend.
    """
    if references.ndim != 2 or any(e.shape != references.shape for e in estimate_sets):
        raise ValueError(f"references {references.shape} and every estimate set "
                         f"{[e.shape for e in estimate_sets]} must be the same (N, S)")
    if backend not in BACKENDS:
        raise ValueError(f"unknown metric backend {backend!r}; choose one of {BACKENDS}")
    n = references.shape[0]
    if silent_references(references).any():
        nan = np.full(n, np.nan)
        return [Scores(nan, nan.copy(), nan.copy(), nan.copy(), np.arange(n)) for _ in estimate_sets]
    if not estimate_sets:
        return []
    ref = references.astype(np.float64)
    est = np.stack(estimate_sets).astype(np.float64)  # (M, N, S)
    if backend == "batched":
        sdr, sir, sar, perm = bss_eval_sources_batch(ref, est)
    else:
        out = [_bss_eval_one(ref, e, backend) for e in est]
        sdr, sir, sar, perm = (np.stack([o[k] for o in out]) for k in range(4))
    perm = np.asarray(perm, dtype=np.int64)
    return [Scores(np.asarray(sdr[k], float), np.asarray(sir[k], float), np.asarray(sar[k], float),
                   si_sdr(ref, est[k][perm[k]]), perm[k]) for k in range(len(est))]


def _bss_eval_one(ref: np.ndarray, est: np.ndarray, backend: str) -> tuple:
    """(sdr, sir, sar, perm) of one set from a library backend."""
    if backend == "mir_eval":
        import mir_eval  # the library backends are slow to import: only when chosen

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mir_eval.separation.bss_eval_sources(ref, est)
    import fast_bss_eval  # (as mir_eval)

    with np.errstate(divide="ignore", invalid="ignore"):  # SAR of the unprocessed mixture is +inf
        return fast_bss_eval.bss_eval_sources(ref, est)


def bss_eval(references: np.ndarray, estimates: np.ndarray, backend: str = DEFAULT_BACKEND) -> Scores:
    """BSS Eval v3 of one estimate set against references, estimates matched by the best permutation.

    Args:
        references, estimates: (N, S) float.
        backend: one of ``BACKENDS``.

    Returns:
        :class:`Scores`; all NaN if any reference is silent (see the module docstring).

    Raises:
        ValueError: shapes differ, or an unknown backend.
    """
    return bss_eval_sets(references, [estimates], backend)[0]


def mixture_scores(references: np.ndarray, mixture: np.ndarray, backend: str = DEFAULT_BACKEND) -> Scores:
    """Scores of the unprocessed mixture as the estimate of every source (the baseline of SDRi).

    Args:
        references: (N, S) float. mixture: (S,) float, mic 1.

    (Every estimate is the same signal, so the permutation does not matter; fast_bss_eval 0.1.4's
    ``compute_permutation=False`` path fails under numpy 2, so we never ask for it.)
    """
    return bss_eval(references, np.tile(mixture, (references.shape[0], 1)), backend)
