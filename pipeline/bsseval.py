"""BSS Eval v3 ``bss_eval_sources`` for many estimate sets of one mixture at once, sharing the work that depends only
on the references.

The definitions are mir_eval's (``mir_eval.separation.bss_eval_sources``; Vincent, Gribonval, Fevotte, "Performance
measurement in blind audio source separation", IEEE TASLP 2006, eqs. 3-5 and 9-11, with time-invariant distortion
filters of ``filter_len`` = 512 taps). For an estimate e and a reference s_j, let P_j be the orthogonal projection on
the delayed copies s_j(t - tau), 0 <= tau < 512, and P the projection on the delayed copies of all references. Then

    s_target + e_spat = P_j e,   e_interf = P e - P_j e,   e_artif = e - P e,
    SDR = 10 log10(|P_j e|^2 / |e - P_j e|^2),  SIR = 10 log10(|P_j e|^2 / |P e - P_j e|^2),
    SAR = 10 log10(|P e|^2 / |e - P e|^2),

and the estimates are matched to the references by the permutation with the largest mean SIR, as mir_eval does.

What is shared: the Gram matrix G of the delayed references ((N L) x (N L), L = 512), its Cholesky factor and those of
its N diagonal blocks depend only on the references, so they are computed once per mixture, and every estimate of
every method (and the unprocessed mixture, the baseline of SDRi) is one more right-hand side. Since the projections
are orthogonal, the energies follow from the normal equations, |P e|^2 = D^T G^-1 D with D the correlations of e with
the delayed references, and |e - P e|^2 = |e|^2 - |P e|^2: no signal is rebuilt. mir_eval instead refactors G for
every (estimate, reference) pair and rebuilds each projected signal by convolution; the results agree to within
1e-6 dB on speech (``tests/test_metrics.py``, ``benchmarks/evaluation.py``).
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.fft
import scipy.linalg

FILTER_LEN = 512  # distortion filter taps of BSS Eval v3 (mir_eval's default)


def _solve_psd(g: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Solve g x = d for a symmetric positive (semi-)definite g: Cholesky, or least squares if g is singular."""
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(g, check_finite=False), d, check_finite=False)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(g, d, rcond=None)[0]


def _db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """10 log10(num / den), +inf where den <= 0 (as mir_eval's ``_safe_db`` for a zero denominator)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 10 * np.log10(num / np.where(den > 0, den, 1.0)), np.inf)


def bss_eval_sources_batch(references: np.ndarray, estimates: np.ndarray,
                           filter_len: int = FILTER_LEN) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BSS Eval v3 of M estimate sets of one mixture against its N references (see the module docstring).

    Args:
        references: (N, S) float, non-silent (the caller checks; a silent one makes G singular).
        estimates: (M, N, S) float, M sets of N estimates each.
        filter_len: L, distortion filter taps.

    Returns:
        ``(sdr, sir, sar, perm)``: sdr, sir, sar (M, N) float64 dB in reference order, perm (M, N) int64 with
        ``perm[m, j]`` the estimate of set m matched to reference j. An all-zero estimate gets NaN SDR and SIR.

    Raises:
        ValueError: shapes that do not match.
    """
    ref = np.asarray(references, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    if ref.ndim != 2 or est.ndim != 3 or est.shape[1:] != ref.shape:
        raise ValueError(f"references must be (N, S) and estimates (M, N, S); got {ref.shape} and {est.shape}")
    n, s = ref.shape
    m = est.shape[0]
    nl = n * filter_len
    nfft = int(2 ** np.ceil(np.log2(s + filter_len - 1)))  # linear correlations up to lag S + L - 2, as mir_eval
    rf = scipy.fft.rfft(ref, nfft)  # (N, nfft/2 + 1)
    ef = scipy.fft.rfft(est, nfft)  # (M, N, nfft/2 + 1)

    # G[(i, a), (j, b)] = <s_i(t - a), s_j(t - b)> = r_ij[b - a], r_ij[k] = sum_t s_i(t + k) s_j(t)
    r = scipy.fft.irfft(rf[:, None] * rf[None].conj(), nfft)  # (N, N, nfft)
    lag = (np.arange(filter_len)[None, :] - np.arange(filter_len)[:, None]) % nfft  # (L, L): b - a
    gram = r[:, :, lag].transpose(0, 2, 1, 3).reshape(nl, nl)
    # D[m, k, (i, a)] = <s_i(t - a), e_mk(t)> = c_ik[-a], c_ik[q] = sum_t s_i(t + q) e_mk(t)
    c = scipy.fft.irfft(rf[None, None] * ef[:, :, None].conj(), nfft)  # (M, N est, N ref, nfft)
    d = c[..., (-np.arange(filter_len)) % nfft]  # (M, N est, N ref, L)

    rhs = d.reshape(m * n, nl).T  # (N L, M N): one column per estimate
    p_all = np.einsum("ik,ik->k", rhs, _solve_psd(gram, rhs)).reshape(m, n)  # |P e|^2, (M, N est)
    p_one = np.empty((m, n, n))  # |P_j e|^2, (M, N est, N ref)
    for j in range(n):
        blk = slice(j * filter_len, (j + 1) * filter_len)
        rj = d[:, :, j].reshape(m * n, filter_len).T  # (L, M N)
        p_one[:, :, j] = np.einsum("ik,ik->k", rj, _solve_psd(gram[blk, blk], rj)).reshape(m, n)
    energy = np.einsum("mks,mks->mk", est, est)  # |e|^2, (M, N est)

    with np.errstate(divide="ignore", invalid="ignore"):
        sdr = _db(p_one, energy[:, :, None] - p_one)  # (M, N est, N ref)
        sir = _db(p_one, p_all[:, :, None] - p_one)
        sar = _db(p_all, energy - p_all)  # (M, N est)
    silent = energy <= 0
    sdr[silent] = np.nan
    sir[silent] = np.nan

    perms = np.array(list(itertools.permutations(range(n))))  # (P, N), perms[p, j] = estimate for reference j
    cols = np.arange(n)
    mean_sir = np.nan_to_num(sir[:, perms, cols], nan=-np.inf).mean(axis=-1)  # (M, P)
    perm = perms[np.argmax(mean_sir, axis=1)]  # (M, N), the first best as mir_eval's argmax
    rows = np.arange(m)[:, None]
    return sdr[rows, perm, cols], sir[rows, perm, cols], sar[rows, perm], perm.astype(np.int64)
