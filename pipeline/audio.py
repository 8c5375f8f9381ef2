"""Reading audio files and resampling: users' recordings for ``dcsep`` (one channel) and ``dcgen ingest`` (two),
and the checks every corpus layout makes of its files."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf


def read_audio_file(path: str | Path) -> tuple[np.ndarray, int]:
    """All channels of a WAV / FLAC / any libsndfile format.

    Returns:
        ((S, C) float64 samples in [-1, 1] for integer formats, the file's sample rate in Hz).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable audio (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as audio ({exc}); give a WAV or FLAC file") from exc


def mono_file_info(path: Path) -> sf._SoundFileInfo:
    """soundfile's description of a corpus audio file (frames, sample rate), checked to be mono and not empty.

    Raises:
        ValueError: unreadable, multi-channel or empty audio (the message names the file and the fix).
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError for corrupt files
        raise ValueError(f"cannot read audio file {path}: {exc}. Replace or remove the file, then scan again.") from exc
    if info.channels != 1:
        raise ValueError(f"{path}: {info.channels} channels; corpus utterances must be mono")
    if info.frames < 1:
        raise ValueError(f"{path}: empty audio file; remove it and scan again")
    return info


def resample(x: np.ndarray, rate_in: int, rate_out: int, axis: int = -1) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``, its default Kaiser anti-aliasing filter) along
    ``axis`` from ``rate_in`` to ``rate_out`` Hz; ``x`` unchanged if the rates are equal."""
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly  # slow to import: only a rate change needs it

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(x, int(rate_out) // g, int(rate_in) // g, axis=axis)
