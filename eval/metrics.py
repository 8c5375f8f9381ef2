"""Separation metrics: BSS Eval v3 (SDR, SIR, SAR) with the best permutation, and SI-SDR.

Backends: ``mir_eval`` (``mir_eval.separation.bss_eval_sources``, the reference; Vincent et al. 2006) and ``fast``
(``fast_bss_eval.bss_eval_sources``, the same BSS Eval v3 definitions with 512-tap distortion filters, solved
faster). A reference source that is silent (energy under ``SILENT_ENERGY``) cannot be scored: the whole mixture
is marked and gets NaN, instead of crashing the run (mir_eval raises ValueError on an all-zero reference).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

BACKENDS = ("fast", "mir_eval")
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


def bss_eval(references: np.ndarray, estimates: np.ndarray, backend: str = "fast") -> Scores:
    """BSS Eval v3 of estimates against references, estimates matched by the best permutation.

    Args:
        references, estimates: (N, S) float.
        backend: ``"fast"`` or ``"mir_eval"``.

    Returns:
        :class:`Scores`; all NaN if any reference is silent (see the module docstring).

    Raises:
        ValueError: shapes differ, or an unknown backend.
    """
    if references.shape != estimates.shape or references.ndim != 2:
        raise ValueError(f"references {references.shape} and estimates {estimates.shape} must both be (N, S)")
    n = references.shape[0]
    if silent_references(references).any():
        nan = np.full(n, np.nan)
        return Scores(nan, nan.copy(), nan.copy(), nan.copy(), np.arange(n))
    ref = references.astype(np.float64)
    est = estimates.astype(np.float64)
    if backend == "mir_eval":
        import mir_eval

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(ref, est)
    elif backend == "fast":
        import fast_bss_eval

        with np.errstate(divide="ignore", invalid="ignore"):  # SAR of the unprocessed mixture is +inf
            sdr, sir, sar, perm = fast_bss_eval.bss_eval_sources(ref, est)
    else:
        raise ValueError(f"unknown metric backend {backend!r}; choose one of {BACKENDS}")
    perm = np.asarray(perm, dtype=np.int64)
    return Scores(np.asarray(sdr, float), np.asarray(sir, float), np.asarray(sar, float),
                  si_sdr(ref, est[perm]), perm)


def mixture_scores(references: np.ndarray, mixture: np.ndarray, backend: str = "fast") -> Scores:
    """Scores of the unprocessed mixture as the estimate of every source (the baseline of SDRi).

    Args:
        references: (N, S) float. mixture: (S,) float, mic 1.

    (Every estimate is the same signal, so the permutation does not matter; fast_bss_eval 0.1.4's
    ``compute_permutation=False`` path fails under numpy 2, so we never ask for it.)
    """
    return bss_eval(references, np.tile(mixture, (references.shape[0], 1)), backend)
