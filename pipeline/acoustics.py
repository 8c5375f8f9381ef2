"""Propagation from sources to the two microphones.

Anechoic (the paper, eq. 1): mic 1 hears sum_i a_i s_i(t); mic 2 hears sum_i a_i s_i(t - tau_i) with
tau_i = d cos(theta_i) fs / c samples. The fractional delay is exact for the band-limited signal: a linear phase
exp(-j omega tau) applied in the frequency domain to the segment plus ``DELAY_MARGIN`` samples of real context on each
side (tapered), from which the centre is cut, so the circular wrap never reaches the kept samples.
"""

from __future__ import annotations

import numpy as np

DELAY_MARGIN = 1024  # samples of context on each side of a segment


def fractional_delay(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """Delay ``x`` by a real number of samples with an ideal (band-limited) linear-phase shift.

    Args:
        x: (S,) float, a segment with ``DELAY_MARGIN`` samples of context on each side.
        delay_samples: tau (samples), may be negative or fractional.

    Returns:
        (S,) float64, x(t - tau).
    """
    n = x.shape[-1]
    taper = np.ones(n)
    ramp = np.hanning(2 * (DELAY_MARGIN // 2))[: DELAY_MARGIN // 2]
    taper[: ramp.size] = ramp
    taper[n - ramp.size:] = ramp[::-1]
    nfft = int(2 ** np.ceil(np.log2(n + 2 * DELAY_MARGIN)))
    spec = np.fft.rfft(x * taper, nfft)
    w = 2 * np.pi * np.arange(spec.shape[-1]) / nfft
    return np.fft.irfft(spec * np.exp(-1j * w * delay_samples), nfft)[:n]


def segment_with_margin(audio: np.ndarray, offset: int, num_samples: int, margin: int = DELAY_MARGIN) -> np.ndarray:
    """``audio[offset - margin : offset + num_samples + margin]``, zero-padded where it runs past the ends."""
    out = np.zeros(num_samples + 2 * margin)
    lo, hi = offset - margin, offset + num_samples + margin
    src_lo, src_hi = max(lo, 0), min(hi, audio.shape[0])
    out[src_lo - lo: src_hi - lo] = audio[src_lo:src_hi]
    return out


def anechoic_two_mic(segments: np.ndarray, delays_samples: np.ndarray, margin: int = DELAY_MARGIN) -> np.ndarray:
    """Images of each source at the two mics of an anechoic pair.

    Args:
        segments: (N, S + 2 margin) float, leveled and gain-scaled sources with context.
        delays_samples: (N,) tau_i, arrival at mic 2 relative to mic 1 (samples).

    Returns:
        (N, 2, S) float64: [:, 0] at mic 1 (the SDR references), [:, 1] at mic 2.
    """
    n, length = segments.shape
    s = length - 2 * margin
    out = np.empty((n, 2, s))
    for i in range(n):
        out[i, 0] = segments[i, margin: margin + s]
        out[i, 1] = fractional_delay(segments[i], float(delays_samples[i]))[margin: margin + s]
    return out
