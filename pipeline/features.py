"""STFT, magnitude, normalized phase difference (NPD) and the silent-bin mask.

Framing (shared by render, training and evaluation): periodic Hann window of ``N_FFT`` = 512 samples, hop ``HOP``
= 128 (75 % overlap, COLA), zero padding of half a window at both ends and up to a whole hop at the end, so a signal
of S samples gives F = 257 frequencies and T = ceil(S / 128) + 1 frames (251 for 2 s at 16 kHz; the paper used
250), and :func:`istft` inverts it exactly. The coefficients are ``scipy.signal.stft``'s (same framing and scaling,
equal within float32 rounding, ``tests/test_features.py``); they are computed with ``torch.stft``, which is about
four times faster here (RESULTS.md, render), on one thread.
"""

from __future__ import annotations

import contextlib

import numpy as np

N_FFT = 512
HOP = 128
WINDOW = "hann"
SILENCE_DB = 40.0


def num_frames(num_samples: int) -> int:
    """T for a signal of ``num_samples`` samples."""
    return -(-num_samples // HOP) + 1


def _torch():
    import torch  # imported on first use: `dcgen --help` and the render planner do not need it

    return torch


_WINDOW: list = []


def _window(torch):
    """The periodic Hann window as a torch tensor, made once per process."""
    if not _WINDOW:
        _WINDOW.append(torch.hann_window(N_FFT, periodic=True, dtype=torch.float32))
    return _WINDOW[0]


def stft(x: np.ndarray) -> np.ndarray:
    """STFT of real signals (``scipy.signal.stft(x, nperseg=512, noverlap=384, window="hann")``'s coefficients).

    Args:
        x: (..., S) float array, any leading dimensions.

    Returns:
        (..., F, T) complex64, F = 257, T = ceil(S / 128) + 1. Scaling is scipy's (divided by the window sum),
        which :func:`istft` undoes.
    """
    torch = _torch()
    x = np.asarray(x, dtype=np.float32)
    lead, s = x.shape[:-1], x.shape[-1]
    flat = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, s)))
    window = _window(torch)
    with _one_thread(torch):  # every torch op of the transform on one thread
        if s % HOP:
            flat = torch.nn.functional.pad(flat, (0, (-s) % HOP))  # scipy's padded=True: whole hops
        z = torch.stft(flat, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
        z = (z / window.sum()).numpy()
    return z.reshape(lead + z.shape[-2:])


def istft(z: np.ndarray, num_samples: int) -> np.ndarray:
    """Inverse of :func:`stft` (overlap-add with the squared-window normalization, as ``scipy.signal.istft``).

    Args:
        z: (..., F, T) complex.
        num_samples: S, the length to return (zero-padded if the frames cover fewer samples).

    Returns:
        (..., S) float32.
    """
    torch = _torch()
    z = np.asarray(z)
    lead, (f, t) = z.shape[:-2], z.shape[-2:]
    window = _window(torch)
    covered = (t - 1) * HOP
    with _one_thread(torch):
        zt = torch.from_numpy(np.ascontiguousarray(z.reshape((-1, f, t)), dtype=np.complex64)) * window.sum()
        x = torch.istft(zt, N_FFT, HOP, window=window, center=True, length=covered).numpy()
    x = x[..., :num_samples]
    if x.shape[-1] < num_samples:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (num_samples - x.shape[-1],), x.dtype)], axis=-1)
    return x.reshape(lead + (num_samples,)).astype(np.float32, copy=False)


@contextlib.contextmanager
def single_threaded():
    """Hold torch and the BLAS libraries to one thread for a block of work, then restore them.

    Rendering parallelizes over processes (Dask workers, one shard each); inside one, a library that spreads a small
    operation over every core only makes the processes compete (before, a plain render loop kept 1.4-1.55 cores
    busy for no faster a loop). Dask's nanny sets OMP_NUM_THREADS=1 in its workers; this gives a plain loop the same
    behaviour. Only the BLAS pools are limited through threadpoolctl: limiting torch's OpenMP runtime that way left
    its second thread spinning at 100 % of a core (measured); torch's own ``set_num_threads`` does not.
    """
    from threadpoolctl import threadpool_limits  # imported on first use, as torch

    with threadpool_limits(1, user_api="blas"), _one_thread(_torch()):
        yield


class _one_thread:
    """Run torch on one intra-op thread (render and evaluation parallelize over processes), then restore."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.saved = self.torch.get_num_threads()
        if self.saved != 1:
            self.torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.saved != 1:
            self.torch.set_num_threads(self.saved)


def omega(num_freqs: int = N_FFT // 2 + 1) -> np.ndarray:
    """Angular frequency of each STFT bin, omega_f = 2 pi f / n_fft (radians per sample). Shape (F,) float64."""
    return 2 * np.pi * np.arange(num_freqs) / (2 * (num_freqs - 1))


def npd(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Normalized phase difference, NPD = angle(M1 / M2) / omega (Tzinis et al. 2019, eq. 3).

    With omega in radians per sample, the NPD of a bin dominated by a source that reaches mic 2 ``tau`` samples
    after mic 1 equals ``tau`` (samples); valid while |omega tau| < pi. The DC bin (omega = 0) has no phase
    difference and is set to 0.

    Args:
        m1, m2: (..., F, T) complex STFTs of mic 1 and mic 2.

    Returns:
        (..., F, T) float32, in samples.
    """
    phase = np.angle(m1 * np.conj(m2))  # (..., F, T)
    w = omega(m1.shape[-2])[:, None]  # (F, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(w > 0, phase / np.where(w > 0, w, 1.0), 0.0)
    return out.astype(np.float32)


def active_bins(magnitude: np.ndarray, silence_db: float = SILENCE_DB) -> np.ndarray:
    """Bins within ``silence_db`` dB of the loudest bin of each mixture (Hershey et al. 2016 leave the rest out).

    Args:
        magnitude: (..., F, T) non-negative float.

    Returns:
        (..., F, T) bool.
    """
    peak = magnitude.max(axis=(-2, -1), keepdims=True)
    return magnitude > peak * 10 ** (-silence_db / 20)


def binary_masks(labels: np.ndarray, num_sources: int) -> np.ndarray:
    """Labels (F, T) int -> masks (N, F, T) float32, one-hot along N."""
    return (labels[None] == np.arange(num_sources)[:, None, None]).astype(np.float32)


def apply_masks(mixture: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mask the STFT of a single-channel mixture and invert.

    Args:
        mixture: (S,) float, mic 1. masks: (N, F, T) float in [0, 1].

    Returns:
        (N, S) float32 source estimates.
    """
    spectrum = stft(mixture)  # (F, T)
    return istft(masks * spectrum[None], mixture.shape[-1])  # (N, S)
