"""A user's recordings: read one (mic 1, resampled to the models' rate), check it, bring it to the level of the
training mixtures, and write the stems separated from it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from spatialdc.pipeline import features
from spatialdc.pipeline.atomic import atomic_path
from spatialdc.pipeline.audio import read_audio_file, resample

log = logging.getLogger(__name__)

MODEL_SAMPLE_RATE = 16000  # the rate the models are trained at (dcgen's default)


def read_recording(path: str | Path, sample_rate: int = MODEL_SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Channel 1 (mic 1) of a WAV / FLAC / any libsndfile format, resampled (polyphase, scipy) to ``sample_rate``.

    Returns:
        ((S,) float64 samples, the file's own sample rate).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable audio, or audio :func:`check_waveform` refuses
            (empty, non-finite samples, shorter than one STFT frame, silent).
    """
    x, sr = read_audio_file(path)
    if x.shape[1] > 1:
        log.info("%s has %d channels: separating channel 1 (mic 1)", path, x.shape[1])
    return resample(check_waveform(x[:, 0], sr, str(path)), sr, sample_rate), sr


def check_waveform(x: np.ndarray, sample_rate: int, name: str = "the waveform") -> np.ndarray:
    """Check a single-channel waveform before separation.

    Args:
        x: (S,) float samples at ``sample_rate`` (Hz). name: how messages call it (e.g. its file name).

    Returns:
        x as float64.

    Raises:
        ValueError: not one channel, empty, NaN or infinite samples (with how many and where the first is),
            shorter than one STFT frame (512 samples at 16 kHz, 32 ms), or all zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected one channel (S,), got shape {x.shape}; pass one microphone's signal")
    if x.shape[0] == 0:
        raise ValueError(f"{name} holds no samples")
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{name} has {int(bad.sum())} non-finite (NaN or infinite) samples, the first at "
                         f"{first / sample_rate:.3f} s (sample {first}); repair or re-export the recording")
    min_samples = int(np.ceil(features.N_FFT * sample_rate / MODEL_SAMPLE_RATE))
    if x.shape[0] < min_samples:
        raise ValueError(f"{name} is {x.shape[0]} samples ({1000 * x.shape[0] / sample_rate:.1f} ms) long, shorter "
                         f"than one STFT frame ({features.N_FFT} samples at {MODEL_SAMPLE_RATE} Hz, "
                         f"{1000 * features.N_FFT / MODEL_SAMPLE_RATE:.0f} ms): nothing to separate")
    if not np.any(np.abs(x) > 0):
        raise ValueError(f"{name} is silent (all samples are zero): nothing to separate")
    return x


def level_gain(magnitudes: Sequence[np.ndarray], stats: dict) -> float:
    """Gain that brings a recording to the level of the model's training mixtures: the mean log magnitude of its STFT
    bins is matched to the mean of the training input statistics (the network's input normalization is fixed per
    frequency, so a recording much quieter or louder than the training mixtures would be out of distribution).
    Only the network input is scaled; masks apply to the recording as it is.

    Args:
        magnitudes: |STFT| (F, T_k) of the recording's chunks. stats: the checkpoint's ``{"mean": (F,), ...}`` of
            log(|M1| + 1e-8).

    Returns:
        float > 0 (1.0 for an all-zero recording).
    """
    mag = np.concatenate([np.ravel(m) for m in magnitudes]).astype(np.float64)
    if not np.any(mag > 0):
        return 1.0
    # log of the non-zero bins, without the 1e-8 floor: the gain of c * x is exactly gain(x) / c
    return float(np.exp(float(np.mean(stats["mean"])) - float(np.mean(np.log(mag[mag > 0])))))


def write_stems(stems: np.ndarray, out_dir: str | Path, name: str, overwrite: bool = False) -> list[Path]:
    """Write (N, S) stems at 16 kHz as ``out_dir/<name>_speaker<k>.wav``, 16-bit PCM, scaled down together if a stem
    would clip; each file written atomically.

    Returns:
        the N paths written, in stem order.

    Raises:
        FileExistsError: a stem file exists and ``overwrite`` is False.
    """
    paths = [Path(out_dir) / f"{name}_speaker{k + 1}.wav" for k in range(stems.shape[0])]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist: pass overwrite=True (dcsep --overwrite) or "
                              f"another output folder")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    peak = max(float(np.abs(stems).max()), 1e-9)
    scale = 0.99 / peak if peak > 0.99 else 1.0  # avoid clipping in the 16-bit files
    for k, p in enumerate(paths):
        with atomic_path(p) as tmp:
            sf.write(str(tmp), stems[k] * scale, MODEL_SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return paths
