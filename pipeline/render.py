"""Render one mixture from its spec: a pure function of the spec and the corpus audio."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from . import acoustics, features, labels
from .rng import rng_for
from .specs import ROOMS, MixtureSpec


@dataclass
class Example:
    """One rendered mixture (field shapes: N sources, S samples, F = 257 frequencies, T frames).

    Attributes:
        spec: the spec it was rendered from.
        mixture: (2, S) float32, mic 1 and mic 2.
        sources: (N, S) float32, each source as heard at mic 1 (the SDR references); they sum to ``mixture[0]``.
        magnitude: (F, T) float32, |STFT| of mic 1 (the network input).
        npd: (F, T) float32, normalized phase difference (samples), eq. 3.
        bpd: (F, T) uint8, K-means labels of the NPD, eq. 5.
        ds: (F, T) uint8, dominant-source labels, eq. 4.
    """

    spec: MixtureSpec
    mixture: np.ndarray
    sources: np.ndarray
    magnitude: np.ndarray
    npd: np.ndarray
    bpd: np.ndarray
    ds: np.ndarray


AUDIO_CACHE_BYTES = 256 * 2**20  # decoded corpus audio kept per process (float32); the bundled corpus needs ~220 MB
_audio_cache: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()  # path -> (sample rate, (frames,) float32),
# least recently used first
_audio_cache_bytes = 0


def _decoded(path: Path, sample_rate: int) -> np.ndarray | None:
    """The whole file decoded (float32, mono), from the per-process cache, or None if it is larger than the cache.

    Each corpus utterance is read by hundreds of mixtures: decoding it once instead of seeking into the compressed
    file every time removes most of the read time (RESULTS.md, render). Samples are those of ``soundfile`` reading
    the same range (int16 and 24-bit audio are exact in float32).
    """
    global _audio_cache_bytes
    key = str(path)
    if key in _audio_cache:
        _audio_cache.move_to_end(key)
        rate, data = _audio_cache[key]
    else:
        with sf.SoundFile(key) as fh:
            rate = fh.samplerate
            if rate == sample_rate and fh.frames * 4 > AUDIO_CACHE_BYTES // 4:
                return None
            data = fh.read(dtype="float32", always_2d=True)[:, 0].copy() if rate == sample_rate else None
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz, the spec says {sample_rate} Hz")
    if key in _audio_cache:
        return data
    _audio_cache[key] = (rate, data)
    _audio_cache_bytes += data.nbytes
    while _audio_cache_bytes > AUDIO_CACHE_BYTES:
        _audio_cache_bytes -= _audio_cache.popitem(last=False)[1][1].nbytes
    return data


def read_segment(path: Path, offset: int, num_samples: int, sample_rate: int,
                 margin: int = acoustics.DELAY_MARGIN) -> np.ndarray:
    """Read ``num_samples`` + 2 ``margin`` samples around ``offset`` of a mono file (zero-padded past its ends).

    Files are decoded once per process and kept in a bounded cache (:data:`AUDIO_CACHE_BYTES`); a file larger than a
    quarter of it is read by seeking instead. Returns (num_samples + 2 margin,) float64.

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable file or wrong sample rate.
    """
    if not path.is_file():
        raise FileNotFoundError(f"audio {path} not found; is --corpus the folder the specs were planned from?")
    lo = max(offset - margin, 0)
    want = num_samples + 2 * margin - (lo - (offset - margin))
    try:
        whole = _decoded(path, sample_rate)
        if whole is not None:
            data = whole[lo: lo + want]
        else:
            with sf.SoundFile(str(path)) as fh:
                fh.seek(lo)
                data = fh.read(want, dtype="float64", always_2d=True)[:, 0]
    except sf.LibsndfileError as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}. Replace the file.") from exc
    out = np.zeros(num_samples + 2 * margin)
    start = lo - (offset - margin)
    out[start: start + data.shape[0]] = data
    return out


def speed_ratio(speed: float) -> tuple[int, int]:
    """(up, down) of the polyphase resampling that plays a signal ``speed`` times faster: speed = down / up, the
    fraction nearest ``speed`` with a denominator <= 100 (factors drawn to 0.01 are exact).

    Raises:
        ValueError: speed <= 0.
    """
    if speed <= 0:
        raise ValueError(f"speed factor must be > 0, got {speed}")
    frac = Fraction(speed).limit_denominator(100)
    return frac.denominator, frac.numerator


def speed_perturbed_segment(path: Path, offset: int, num_samples: int, sample_rate: int, speed: float,
                            read: Callable = read_segment, margin: int = acoustics.DELAY_MARGIN) -> np.ndarray:
    """The segment of ``num_samples`` + 2 ``margin`` samples that :func:`read_segment` gives, played ``speed``
    times faster (speed perturbation, Ko et al., "Audio augmentation for speech recognition", Interspeech 2015):
    output sample j is the input at offset + j * speed (band-limited polyphase resampling, scipy), so pitch and
    tempo scale together and the length stays ``num_samples`` + 2 ``margin``.

    Returns:
        (num_samples + 2 margin,) float64.
    """
    from scipy.signal import resample_poly  # slow to import: only speed perturbation needs it

    up, down = speed_ratio(speed)
    if up == down:
        return read(path, offset, num_samples, sample_rate)
    k = -(-(margin + 64) // up)  # input margin k * down samples: k * up output samples, past the filter's edge
    m_in = k * down
    n_core = int(np.ceil((num_samples + margin) * down / up)) + down
    x = read(path, offset, n_core, sample_rate, margin=m_in)  # file samples [offset - m_in, offset + n_core + m_in)
    y = resample_poly(x, up, down)  # y[i] = x at input position i * down / up = i * speed
    start = k * up - margin  # output index of file sample offset - margin * speed
    return y[start: start + num_samples + 2 * margin]


def render_mixture(spec: MixtureSpec, corpus_dir: str | Path | dict,
                   read: Callable[[Path, int, int, int], np.ndarray] = read_segment,
                   outputs: tuple[str, ...] = ("bpd", "ds")) -> Example:
    """Render a spec: level, delay, mix, STFT, NPD, labels.

    Each segment (speed-perturbed first if the spec says so, :func:`speed_perturbed_segment`) is scaled to unit RMS
    over its S kept samples, then by its gain a_i. Anechoic: mic 2 gets exact fractional delays; reverberant: both
    mics get the room's impulse responses (:mod:`spatialdc.pipeline.acoustics`).

    Args:
        corpus_dir: the corpus folder, or for specs of several corpora the mapping corpus name -> folder.
        outputs: the labels to compute: ``"bpd"`` and / or ``"ds"`` (training on the fly needs only its target;
            the DS labels cost an STFT per source); the fields not asked for are None.

    Raises:
        ValueError: a silent source segment (cannot be leveled), or an unknown room.
    """
    s, m = spec.num_samples, acoustics.DELAY_MARGIN
    speeds = spec.speeds or (1.0,) * spec.num_speakers
    segs = np.stack([read(spec.source_path(i, corpus_dir), o, s, spec.sample_rate) if v == 1.0
                     else speed_perturbed_segment(spec.source_path(i, corpus_dir), o, s, spec.sample_rate, v, read)
                     for i, (o, v) in enumerate(zip(spec.offsets, speeds))])
    rms = np.sqrt(np.mean(segs[:, m: m + s] ** 2, axis=1))  # (N,)
    if np.any(rms < 1e-6):
        bad = [spec.utterance_ids[i] for i in np.flatnonzero(rms < 1e-6)]
        raise ValueError(f"mixture {spec.mixture_id}: source segment(s) of {bad} are silent; re-plan the dataset")
    segs = segs * (np.asarray(spec.gains) / rms)[:, None]
    if spec.room == "anechoic":
        images = acoustics.anechoic_two_mic(segs, spec.delays_samples)  # (N, 2, S)
    elif spec.room == "reverberant":
        images = acoustics.reverberant_two_mic(segs, spec.room_params, spec.sample_rate)  # (N, 2, S)
    else:
        raise ValueError(f"mixture {spec.mixture_id}: unknown room {spec.room!r}; expected one of {ROOMS}")
    mixture = images.sum(axis=0).astype(np.float32)  # (2, S)
    sources = images[:, 0].astype(np.float32)  # (N, S)
    with_ds = "ds" in outputs
    spectra = features.stft(np.concatenate([mixture, sources]) if with_ds else mixture)  # (2 [+ N], F, T)
    m1, m2, src = spectra[0], spectra[1], spectra[2:]
    magnitude = np.abs(m1)
    npd = features.npd(m1, m2)
    bpd = None
    if "bpd" in outputs:
        active = features.active_bins(magnitude)
        bpd = labels.spatial_labels(npd, active, spec.num_speakers, spec.max_delay_samples,
                                    rng_for(spec.seed, spec.dataset, spec.split, spec.index, "bpd"))
    return Example(spec, mixture, sources, magnitude.astype(np.float32), npd, bpd,
                   labels.ds_labels(src) if with_ds else None)
