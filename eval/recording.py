"""A user's recordings: read one (mic 1, resampled to the models' rate) whole or in blocks, check it, bring it to the
level of the training mixtures, and write the stems separated from it as they come."""

from __future__ import annotations

import logging
import os
import tempfile
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from spatialdc.pipeline import features
from spatialdc.pipeline.atomic import atomic_path
from spatialdc.pipeline.audio import read_audio_file, resample, warn_if_truncated

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


class RecordingFile:
    """Channel 1 (mic 1) of an audio file, read in blocks and resampled to ``rate``: what ``dcsep`` separates
    without holding the recording (or anything as long as it) in memory.

    :meth:`read` gives any span of the resampled signal: the file's samples of that span and ``margin`` more on
    each side (enough for the resampling filter, :func:`spatialdc.pipeline.audio.resample`) are read, resampled and
    cut, so a span equals the same span of the whole file resampled at once, bit for bit (polyphase filtering
    sums the same products for every output sample; checked from 8 to 48 kHz). Use it in a ``with`` block (the file
    stays open).

    Raises:
        FileNotFoundError: no such file. ValueError: audio libsndfile cannot open.
    """

    def __init__(self, path: str | Path, rate: int = MODEL_SAMPLE_RATE):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} not found")
        try:
            self.file = sf.SoundFile(str(self.path))
        except Exception as exc:
            raise ValueError(f"cannot read {self.path} as audio ({exc}); give a WAV or FLAC file") from exc
        self.file_rate, self.frames, self.rate = self.file.samplerate, self.file.frames, rate
        g = gcd(rate, self.file_rate)
        self.up, self.down = rate // g, self.file_rate // g
        self.num_samples = -(-self.frames * self.up // self.down)  # what resample_poly gives: ceil(S up / down)
        self.margin = 10 * max(self.up, self.down) // self.up + 2  # the resampling filter's half length, in input

    def __enter__(self) -> "RecordingFile":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def _raw(self, start: int, stop: int) -> np.ndarray:
        """Channel 1 of file frames [start, stop), float64."""
        self.file.seek(start)
        return self.file.read(stop - start, dtype="float64", always_2d=True)[:, 0]

    def check(self, block_frames: int = 1 << 16) -> None:
        """Read the file once, in blocks: :class:`WaveformScan`'s checks, a note when it has several channels, and
        a warning when a WAV holds fewer samples than its header says.

        Raises:
            ValueError: audio :func:`check_waveform` would refuse (named by its path).
        """
        if self.file.channels > 1:
            log.info("%s has %d channels: separating channel 1 (mic 1)", self.path, self.file.channels)
        warn_if_truncated(self.path, self.frames, self.file_rate)
        scan = WaveformScan(self.file_rate, str(self.path))
        for start in range(0, self.frames, block_frames):
            scan.add(self._raw(start, min(start + block_frames, self.frames)))
        scan.verdict()

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Samples [lo, hi) of the recording at ``rate``: (hi - lo,) float64."""
        if self.up == self.down:
            return self._raw(lo, hi)
        start = max(0, (lo * self.down // self.up - self.margin) // self.down * self.down)  # whole output samples
        stop = min(self.frames, -(-hi * self.down // self.up) + self.margin)
        first = start * self.up // self.down  # the output sample the block's first sample makes
        return resample(self._raw(start, stop), self.file_rate, self.rate)[lo - first: hi - first]


class ArrayRecording:
    """A waveform in memory at the model's rate, read like a :class:`RecordingFile`: ``num_samples``,
    ``read(lo, hi)``."""

    def __init__(self, x: np.ndarray):
        self.x, self.num_samples = x, x.shape[0]

    def read(self, lo: int, hi: int) -> np.ndarray:
        return self.x[lo:hi]


def check_sample_rate(sample_rate, name: str = "sample_rate") -> int:
    """``sample_rate`` as an int, checked to be a whole number of Hz >= 1.

    Raises:
        ValueError: 0, negative, fractional, not a number (the message names the value).
    """
    ok = isinstance(sample_rate, (int, float, np.integer, np.floating)) and not isinstance(sample_rate, bool)
    if not ok or not np.isfinite(sample_rate) or sample_rate != int(sample_rate) or sample_rate < 1:
        raise ValueError(f"{name} must be a whole number of Hz >= 1, the rate the waveform was sampled at (e.g. "
                         f"16000), got {sample_rate!r}")
    return int(sample_rate)


class WaveformScan:
    """The checks of :func:`check_waveform` over a waveform seen in consecutive blocks (a file read in blocks):
    :meth:`add` each block, then :meth:`verdict`.

    Args:
        sample_rate: Hz (:func:`check_sample_rate`). name: how messages call the waveform (e.g. its file name).

    Raises:
        ValueError: a sample rate :func:`check_sample_rate` refuses.
    """

    def __init__(self, sample_rate: int, name: str = "the waveform"):
        self.sample_rate, self.name = check_sample_rate(sample_rate), name
        self.samples = self.bad = 0
        self.first_bad: int | None = None
        self.audible = False

    def add(self, block: np.ndarray) -> None:
        """One block (S_b,) float of samples, the next after the previous one."""
        bad = ~np.isfinite(block)
        if bad.any():
            if self.first_bad is None:
                self.first_bad = self.samples + int(np.argmax(bad))
            self.bad += int(bad.sum())
        self.audible = self.audible or bool(np.any(np.abs(block) > 0))
        self.samples += block.shape[0]

    def verdict(self) -> None:
        """Raises ValueError: no samples, NaN or infinite samples (with how many and where the first is), fewer
        than one STFT frame (512 samples at 16 kHz, 32 ms), or all zeros."""
        name, rate = self.name, self.sample_rate
        if self.samples == 0:
            raise ValueError(f"{name} holds no samples")
        if self.bad:
            first = self.first_bad
            raise ValueError(f"{name} has {self.bad} non-finite (NaN or infinite) samples, the first at "
                             f"{first / rate:.3f} s (sample {first}); repair or re-export the recording")
        min_samples = int(np.ceil(features.N_FFT * rate / MODEL_SAMPLE_RATE))
        if self.samples < min_samples:
            raise ValueError(f"{name} is {self.samples} samples ({1000 * self.samples / rate:.1f} ms) long, shorter "
                             f"than one STFT frame ({features.N_FFT} samples at {MODEL_SAMPLE_RATE} Hz, "
                             f"{1000 * features.N_FFT / MODEL_SAMPLE_RATE:.0f} ms): nothing to separate")
        if not self.audible:
            raise ValueError(f"{name} is silent (all samples are zero): nothing to separate")


def check_waveform(x: np.ndarray, sample_rate: int, name: str = "the waveform") -> np.ndarray:
    """Check a single-channel waveform before separation (:class:`WaveformScan`'s checks).

    Args:
        x: (S,) float samples at ``sample_rate`` (Hz). name: how messages call it (e.g. its file name).

    Returns:
        x as float64.

    Raises:
        ValueError: a sample rate that is not a whole number >= 1, not one channel, empty, NaN or infinite samples
            (with how many and where the first is), shorter than one STFT frame (512 samples at 16 kHz, 32 ms), or
            all zeros.
    """
    scan = WaveformScan(sample_rate, name)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected one channel (S,), got shape {x.shape}; pass one microphone's signal")
    scan.add(x)
    scan.verdict()
    return x


class LevelMeter:
    """The mean log magnitude of a recording's STFT bins, gathered chunk by chunk, and the gain it asks for
    (:func:`level_gain`)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, magnitude: np.ndarray) -> None:
        """|STFT| (F, T_k) of one chunk; zero bins do not count."""
        mag = np.ravel(magnitude).astype(np.float64)
        logs = np.log(mag[mag > 0])  # without the 1e-8 floor: the gain of c * x is exactly gain(x) / c
        self.total += float(np.sum(logs))
        self.count += logs.size

    def gain(self, stats: dict) -> float:
        """The gain for the checkpoint's input statistics ``stats``; 1.0 if every bin was zero."""
        if not self.count:
            return 1.0
        return float(np.exp(float(np.mean(stats["mean"])) - self.total / self.count))


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
    meter = LevelMeter()
    for magnitude in magnitudes:
        meter.add(magnitude)
    return meter.gain(stats)


def write_stems(stems: np.ndarray, out_dir: str | Path, name: str, overwrite: bool = False) -> list[Path]:
    """Write (N, S) stems at 16 kHz as ``out_dir/<name>_speaker<k>.wav`` (:class:`StemFiles`).

    Returns:
        the N paths written, in stem order.

    Raises:
        FileExistsError: a stem file exists and ``overwrite`` is False.
    """
    with StemFiles(out_dir, name, stems.shape[0], overwrite) as files:
        files.write(stems)
        return files.finish()


class StemFiles:
    """Stems written as they come: ``out_dir/<name>_speaker<k>.wav``, 16-bit PCM at 16 kHz, scaled down together if
    a stem would clip. The blocks go to temporary float32 files beside the stems; :meth:`finish` (when the peak is
    known) converts each into its WAV under a temporary name and renames it into place. Leaving the ``with``
    block deletes the temporary files: an error or Ctrl-C leaves no stem half written and none replaced.

    Raises:
        FileExistsError: a stem file exists and ``overwrite`` is False (before anything is written).
    """

    def __init__(self, out_dir: str | Path, name: str, num_stems: int, overwrite: bool = False):
        self.paths = [Path(out_dir) / f"{name}_speaker{k + 1}.wav" for k in range(num_stems)]
        existing = [str(p) for p in self.paths if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{', '.join(existing)} exist: pass overwrite=True (dcsep --overwrite) or "
                                  f"another output folder")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.peak = 1e-9
        self.parts = []
        for p in self.paths:
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".f32.tmp", dir=p.parent)
            os.close(fd)
            self.parts.append(Path(tmp))

    def __enter__(self) -> "StemFiles":
        return self

    def __exit__(self, *exc) -> None:
        for part in self.parts:
            part.unlink(missing_ok=True)

    def write(self, block: np.ndarray) -> None:
        """The next (N, S_b) samples of the stems."""
        block = np.asarray(block, dtype=np.float32)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        for part, samples in zip(self.parts, block):
            with part.open("ab") as fh:
                fh.write(samples.tobytes())

    def finish(self, block_samples: int = 1 << 18) -> list[Path]:
        """Write the WAVs, each atomically. Returns their paths, in stem order."""
        scale = 0.99 / self.peak if self.peak > 0.99 else 1.0  # avoid clipping in the 16-bit files
        for part, path in zip(self.parts, self.paths):
            with atomic_path(path) as tmp, sf.SoundFile(str(tmp), "w", MODEL_SAMPLE_RATE, 1, "PCM_16",
                                                        format="WAV") as out:
                for start in range(0, part.stat().st_size // 4, block_samples):
                    out.write(np.fromfile(part, np.float32, block_samples, offset=4 * start) * scale)
        return self.paths
