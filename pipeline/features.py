"""STFT, magnitude, normalized phase difference (NPD) and the silent-bin mask.

Framing (shared by render, training and evaluation): Hann window of ``N_FFT`` = 512 samples, hop ``HOP`` = 128
(75 % overlap, COLA), ``scipy.signal.stft`` with zero padding of half a window at both ends, so a signal of
S samples gives F = 257 frequencies and T = S // 128 + 1 frames (251 for 2 s at 16 kHz; the paper used 250),
and :func:`istft` inverts it exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

N_FFT = 512
HOP = 128
WINDOW = "hann"
SILENCE_DB = 40.0


def num_frames(num_samples: int) -> int:
    """T for a signal of ``num_samples`` samples."""
    return num_samples // HOP + 1


def stft(x: np.ndarray) -> np.ndarray:
    """STFT of real signals.

    Args:
        x: (..., S) float array, any leading dimensions.

    Returns:
        (..., F, T) complex64, F = 257, T = S // 128 + 1. Scaling is scipy's (window sum), which :func:`istft` undoes.
    """
    _, _, z = scipy.signal.stft(np.asarray(x, dtype=np.float32), nperseg=N_FFT, noverlap=N_FFT - HOP,
                                window=WINDOW, axis=-1)
    return z.astype(np.complex64, copy=False)


def istft(z: np.ndarray, num_samples: int) -> np.ndarray:
    """Inverse of :func:`stft`.

    Args:
        z: (..., F, T) complex.
        num_samples: S, the length to return.

    Returns:
        (..., S) float32.
    """
    _, x = scipy.signal.istft(z, nperseg=N_FFT, noverlap=N_FFT - HOP, window=WINDOW, time_axis=-1, freq_axis=-2)
    x = x[..., :num_samples]
    if x.shape[-1] < num_samples:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (num_samples - x.shape[-1],), x.dtype)], axis=-1)
    return x.astype(np.float32, copy=False)


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
