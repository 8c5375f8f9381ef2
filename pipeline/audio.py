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


def warn_if_truncated(path: str | Path, frames: int, sample_rate: int) -> bool:
    """Log a warning when a RIFF/WAVE file holds fewer frames than its header's data chunk announces (a copy or a
    recording cut short: libsndfile reads what is there without a word). ``frames``: what the file holds. Other
    formats, and the placeholder sizes (0, 0xFFFFFFFF) of writers that stream, are not checked. Returns True if
    it warned."""
    import logging
    import struct

    announced, align = None, 0
    with open(path, "rb") as fh:
        head = fh.read(12)
        while head[:4] == b"RIFF" and head[8:12] == b"WAVE" and len(chunk := fh.read(8)) == 8:
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                announced = size // align if align and size not in (0, 0xFFFFFFFF) else None
                break
            body = fh.read(size + (size & 1))  # chunks are padded to an even size
            align = struct.unpack("<H", body[12:14])[0] if cid == b"fmt " and len(body) >= 14 else align
    if announced is None or announced <= frames:
        return False
    logging.getLogger(__name__).warning(
        "%s is truncated: its header says %.2f s (%d samples) but it holds %.2f s (%d samples); only those are "
        "used. Replace it with a complete copy if that is not what you want", path, announced / sample_rate,
        announced, frames / sample_rate, frames)
    return True
