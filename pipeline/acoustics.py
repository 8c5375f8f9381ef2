"""Propagation from sources to the two microphones.

Anechoic (the paper, eq. 1): mic 1 hears sum_i a_i s_i(t); mic 2 hears sum_i a_i s_i(t - tau_i) with
tau_i = d cos(theta_i) fs / c samples. The fractional delay is exact for the band-limited signal: a linear phase
exp(-j omega tau) applied in the frequency domain to the segment plus ``DELAY_MARGIN`` samples of real context on each
side (tapered), from which the centre is cut, so the circular wrap never reaches the kept samples.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

DELAY_MARGIN = 1024  # samples of context on each side of a segment


def fractional_delay(x: np.ndarray, delay_samples) -> np.ndarray:
    """Delay signals by real numbers of samples with an ideal (band-limited) linear-phase shift.

    The signal is tapered over its first and last ``DELAY_MARGIN // 2`` samples and zero-padded by ``DELAY_MARGIN``
    before the FFT, so the circular wrap falls on zeros.

    Args:
        x: (..., S) float, segments with ``DELAY_MARGIN`` samples of context on each side.
        delay_samples: tau (samples), a float or an array broadcasting to x's leading shape; may be negative or
            fractional.

    Returns:
        (..., S) float64, x(t - tau).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    taper = np.ones(n)
    ramp = np.hanning(2 * (DELAY_MARGIN // 2))[: DELAY_MARGIN // 2]
    taper[: ramp.size] = ramp
    taper[n - ramp.size:] = ramp[::-1]
    nfft = scipy.fft.next_fast_len(n + 2 * DELAY_MARGIN, real=True)
    spec = scipy.fft.rfft(x * taper, nfft)  # (..., nfft // 2 + 1)
    w = 2 * np.pi * np.arange(spec.shape[-1]) / nfft
    tau = np.asarray(delay_samples, dtype=np.float64)[..., None]
    return scipy.fft.irfft(spec * np.exp(-1j * w * tau), nfft)[..., :n]


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
    s = segments.shape[1] - 2 * margin
    delayed = fractional_delay(segments, np.asarray(delays_samples, dtype=np.float64))  # all sources in one FFT
    return np.stack([segments[:, margin: margin + s], delayed[:, margin: margin + s]], axis=1)


# Reverberant rooms (an extension beyond the paper): seeded shoebox rooms simulated with pyroomacoustics' image
# source method. Ranges of the draws (metres, seconds):
ROOM_SIZE_RANGE = ((5.0, 10.0), (5.0, 10.0), (2.5, 4.0))  # length, width, height
ROOM_RT60_RANGE = (0.2, 0.6)
ROOM_SOURCE_DISTANCE_RANGE = (1.0, 2.0)  # from the array centre
ROOM_WALL_CLEARANCE = 0.5  # sources and array keep this far from the walls
ROOM_HEIGHT = 1.5  # array and sources in one horizontal plane at this height


def draw_room(rng: np.random.Generator, angles_deg: np.ndarray, mic_spacing_m: float,
              rt60_range_s: tuple[float, float] = ROOM_RT60_RANGE,
              source_distance_range_m: tuple[float, float] = ROOM_SOURCE_DISTANCE_RANGE) -> dict:
    """Draw a shoebox room, its RT60, the array centre and the source positions for given directions of arrival.

    The two mics lie on the x axis, ``mic_spacing_m`` apart around the centre; source i sits at a random distance
    in the horizontal plane, at angle ``angles_deg[i]`` from the mic axis (0..180, the +y half plane), so its
    far-field inter-mic delay matches the anechoic one. Uses only ``rng`` (never a global generator); the ranges
    change the bounds of the draws, not their number, so the default ranges give the rooms of earlier versions.

    Args:
        rt60_range_s: (low, high) of the uniform RT60 draw (s). source_distance_range_m: (low, high) of the
            source distances from the array centre (m).

    Returns:
        JSON-able dict: ``size_m`` [L, W, H], ``rt60_s``, ``mics_m`` (2 x [x, y, z]), ``sources_m`` (N x [x, y, z]).
    """
    r_max = source_distance_range_m[1]
    size = [float(rng.uniform(lo, hi)) for lo, hi in ROOM_SIZE_RANGE]
    rt60 = float(rng.uniform(*rt60_range_s))
    c = ROOM_WALL_CLEARANCE
    centre = np.array([rng.uniform(r_max + c, size[0] - r_max - c), rng.uniform(c, size[1] - r_max - c),
                       ROOM_HEIGHT])
    dist = rng.uniform(*source_distance_range_m, size=len(angles_deg))
    theta = np.deg2rad(np.asarray(angles_deg, dtype=float))
    sources = centre + np.stack([dist * np.cos(theta), dist * np.sin(theta), np.zeros_like(dist)], axis=1)
    mics = centre + np.array([[mic_spacing_m / 2, 0, 0], [-mic_spacing_m / 2, 0, 0]])
    r = lambda a: [round(float(v), 6) for v in a]  # noqa: E731
    return {"size_m": r(size), "rt60_s": round(rt60, 6), "mics_m": [r(m) for m in mics],
            "sources_m": [r(s) for s in sources]}


def room_impulse_responses(room: dict, sample_rate: int) -> list[list[np.ndarray]]:
    """RIRs of a room drawn by :func:`draw_room`: ``rirs[mic][source]`` (float64, variable lengths).

    pyroomacoustics' ``inverse_sabine`` gives the wall absorption and reflection order for the RT60 (Sabine's
    formula); the image source method is deterministic (``use_rand_ism=False``) and air absorption is off. Every
    RIR starts with pyroomacoustics' fractional-delay filter, a constant offset of ``frac_delay_length // 2``
    samples (:func:`rir_offset`), which :func:`reverberant_two_mic` removes.
    """
    import pyroomacoustics as pra  # heavy (1.5 s to import): only reverberant rooms need it

    size = np.asarray(room["size_m"])
    absorption, max_order = pra.inverse_sabine(room["rt60_s"], size)
    shoebox = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=max_order,
                          use_rand_ism=False, air_absorption=False)
    for pos in room["sources_m"]:
        shoebox.add_source(pos)
    shoebox.add_microphone_array(np.asarray(room["mics_m"]).T)
    shoebox.compute_rir()
    return [[np.asarray(h, dtype=np.float64) for h in per_mic] for per_mic in shoebox.rir]


def rir_offset() -> int:
    """Samples by which every pyroomacoustics RIR is delayed by its fractional-delay filter (40 by default)."""
    import pyroomacoustics as pra  # heavy (1.5 s to import): only reverberant rooms need it

    return int(pra.constants.get("frac_delay_length")) // 2


def reverberant_two_mic(segments: np.ndarray, room: dict, sample_rate: int, margin: int = DELAY_MARGIN) -> np.ndarray:
    """Images of each source at the two mics of a reverberant room (:func:`draw_room`).

    Each segment (with ``margin`` samples of real context on each side) is convolved with its two RIRs; the
    filter offset of :func:`rir_offset` is removed, so the images line up with the dry segment apart from the
    physical propagation delay, which is the same for the mixture and the references. Reverberation of speech
    earlier than the context is not simulated.

    Args:
        segments: (N, S + 2 margin) float, leveled and gain-scaled sources with context.
        room: the room dict of the spec.

    Returns:
        (N, 2, S) float64: [:, 0] at mic 1 (the SDR references, reverberant), [:, 1] at mic 2.
    """
    from scipy.signal import fftconvolve  # scipy.signal is slow to import: only reverberant rooms need it

    rirs = room_impulse_responses(room, sample_rate)
    n, length = segments.shape
    s = length - 2 * margin
    start = margin + rir_offset()
    out = np.empty((n, 2, s))
    for i in range(n):
        for mic in range(2):
            full = fftconvolve(segments[i], rirs[mic][i])
            seg = full[start: start + s]
            out[i, mic, : seg.shape[0]] = seg
            out[i, mic, seg.shape[0]:] = 0.0
    return out
