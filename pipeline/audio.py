"""Reading audio files and resampling: users' recordings for ``dcsep`` (one channel) and ``dcgen ingest`` (two),
and the checks every corpus layout makes of its files."""

from __future__ import annotations

import logging
import struct
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)


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
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as audio ({exc}); give a WAV or FLAC file") from exc
    warn_if_truncated(path, x.shape[0], sr)
    return x, sr


class UnreadableAudio(ValueError):
    """An audio file libsndfile cannot open or decode; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read audio file {path}: {reason}. Replace or remove the file, then scan again")
        self.path, self.reason = Path(path), reason


def mono_file_info(path: Path, unreadable: list[str] | None = None) -> sf._SoundFileInfo | None:
    """soundfile's description of a corpus audio file (frames, sample rate), checked to be mono and not empty.

    Args:
        unreadable: if a list, a file libsndfile cannot open is noted there (``"PATH: why"``) and None returned
            instead of raising (``dcgen manifest`` lists them all at once).

    Raises:
        UnreadableAudio (a ValueError): a file libsndfile cannot open. ValueError: multi-channel or empty audio (the
            message names the file and the fix).
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError for corrupt files
        if unreadable is None:
            raise UnreadableAudio(path, str(exc)) from exc
        unreadable.append(f"{path}: {exc}")
        return None
    if info.channels != 1:
        raise ValueError(f"{path}: {info.channels} channels; corpus utterances must be mono")
    if info.frames < 1:
        raise ValueError(f"{path}: empty audio file; remove it and scan again")
    warn_if_truncated(path, info.frames, info.samplerate)
    return info


def decode_problem(path: str | Path) -> str | None:
    """Decode a whole audio file (in blocks, nothing kept) and say what is wrong with it: a decoder error (a corrupt
    FLAC passes ``sf.info``, which reads only its header) or fewer frames than its header announces; None if it
    decodes to the end. About 4000x real time for LibriSpeech FLAC on one core (0.9 s per hour of audio)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            expected, got = fh.frames, 0
            while block := len(fh.read(1 << 16, dtype="int16")):
                got += block
    except Exception as exc:
        return str(exc)
    return None if got >= expected else f"decodes to {got} of the {expected} frames its header announces"


def wav_header_frames(path: str | Path) -> int | None:
    """The length (frames) that a RIFF/WAVE file's header gives its data chunk; None for other formats and for
    the placeholder sizes (0, 0xFFFFFFFF) of writers that stream (libsndfile then reads what is there)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while len(chunk := fh.read(8)) == 8:
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            body = fh.read(size + (size & 1))  # chunks are padded to an even size
            if cid == b"fmt " and len(body) >= 14:
                block_align = struct.unpack("<H", body[12:14])[0]  # bytes per frame
    return None


def warn_if_truncated(path: str | Path, frames: int, sample_rate: int) -> bool:
    """Log a warning when a WAV file holds fewer frames than its header says (a copy or a recording cut short:
    libsndfile reads what is there without a word). Returns True if it warned."""
    announced = wav_header_frames(path)
    if announced is None or announced <= frames:
        return False
    log.warning("%s is truncated: its header says %.2f s (%d samples) but it holds %.2f s (%d samples); only "
                "those are used. Replace it with a complete copy if that is not what you want", path,
                announced / sample_rate, announced, frames / sample_rate, frames)
    return True


def resample(x: np.ndarray, rate_in: int, rate_out: int, axis: int = -1) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``, its default Kaiser anti-aliasing filter) along
    ``axis`` from ``rate_in`` to ``rate_out`` Hz; ``x`` unchanged if the rates are equal.

    Raises:
        ValueError: a rate that is not a whole number >= 1 Hz (names it).
    """
    for name, rate in (("input", rate_in), ("output", rate_out)):
        if isinstance(rate, bool) or int(rate) != rate or rate < 1:
            raise ValueError(f"cannot resample: the {name} sample rate must be a whole number of Hz >= 1, got {rate}")
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly  # slow to import: only a rate change needs it

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(x, int(rate_out) // g, int(rate_in) // g, axis=axis)

