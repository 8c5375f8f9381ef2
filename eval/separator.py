"""Separate a user's recording with a trained deep-clustering model: the library behind ``dcsep`` and the Python
API (:class:`Separator`).

    from spatialdc.eval import Separator
    sep = Separator.from_pretrained()            # the default shipped model (spatialdc.models)
    stems = sep.separate(waveform, 44100)        # (N, S) float32 at 16 kHz
    paths = sep.separate_file("talk.wav", "stems/")
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from spatialdc import models
from spatialdc.pipeline import features
from spatialdc.pipeline.audio import read_audio_file, resample
from spatialdc.pipeline.atomic import atomic_path

from .count import DEFAULT_SHARE, CountHead, count_features, embedding_spectrum, estimate_num_speakers, \
    resolve_count_head
from .separate import DEFAULT_CLUSTER_DB, embed, load_model, network_outputs, separate_mixture

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
    return to_model_rate(check_waveform(x[:, 0], sr, str(path)), sr, sample_rate), sr


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


def to_model_rate(x: np.ndarray, sample_rate: int, model_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Resample (polyphase, scipy) a (S,) waveform from ``sample_rate`` to ``model_rate``; unchanged if equal."""
    return resample(x, sample_rate, model_rate)


def _chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    if n <= chunk:
        return [(0, n)]
    hop = chunk - overlap
    starts = list(range(0, n - overlap, hop))
    return [(s, min(s + chunk, n)) for s in starts if s < n]


def _best_permutation(prev: np.ndarray, cur: np.ndarray) -> list[int]:
    """Order of ``cur``'s stems (N, S) that best matches ``prev`` (N, S) by correlation (Hungarian assignment)."""
    from scipy.optimize import linear_sum_assignment

    a = prev / (np.linalg.norm(prev, axis=1, keepdims=True) + 1e-12)
    b = cur / (np.linalg.norm(cur, axis=1, keepdims=True) + 1e-12)
    _, cols = linear_sum_assignment(-(a @ b.T))
    return list(cols)


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


@dataclass(frozen=True)
class SeparationDetails:
    """What :func:`separate_recording` decided on the way, for a person to look at (``dcsep --report``).

    Attributes:
        labels: (F, T) int8, the stem each STFT bin of the recording went to (K-means of its chunk's embeddings,
            in the stems' order; from the middle of each chunk overlap on, the later chunk's); -1 where a chunk had
            fewer non-silent bins than stems (every stem got an equal share of it). T = ``features.num_frames(S)``.
        count_method: how N was chosen: ``"given"``, ``"count head"`` or ``"eigenvalue rule"``.
        count_evidence: what the estimate rests on, in words (class probabilities of the head, or the eigenvalues
            of the embeddings' second-moment matrix against the share threshold); empty for ``"given"``.
    """

    labels: np.ndarray
    count_method: str
    count_evidence: str


def separate_recording(x: np.ndarray, model, stats: dict, num_speakers: int | None, chunk_s: float = 8.0,
                       overlap_s: float = 2.0, max_speakers: int = 3, cluster_db: float = DEFAULT_CLUSTER_DB,
                       sample_rate: int = MODEL_SAMPLE_RATE, seed: int = 0,
                       count_head: CountHead | None = None, details: bool = False):
    """Separate a single-channel recording of any length.

    The recording is cut into chunks of ``chunk_s`` seconds overlapping by ``overlap_s``; each chunk is embedded,
    clustered into binary masks and resynthesized (as ``dceval`` does); the stems of each chunk are matched to the
    previous chunk's by their correlation over the overlap and cross-faded linearly. With ``num_speakers`` None the
    count is estimated: with ``count_head``, by :func:`estimate_count_with_head` (windows as long as its training
    mixtures, probabilities averaged); without, by the eigenvalue rule per chunk, the largest estimate used for all
    chunks. The network
    sees the recording at the level of its training mixtures (:func:`level_gain`), so the stems scale with the input.

    Args:
        x: (S,) float, at ``sample_rate``.
        details: also return a :class:`SeparationDetails` (the bins' stem labels and how the count was chosen);
            the stems are the same either way.

    Returns:
        ((N, S) float32 stems, N), or ((N, S) float32 stems, N, SeparationDetails) with ``details``.
    """
    chunk, overlap = int(chunk_s * sample_rate), int(overlap_s * sample_rate)
    bounds = _chunk_bounds(x.shape[0], chunk, overlap)
    mags = [np.abs(features.stft(x[lo:hi])) for lo, hi in bounds]  # (F, T_k) per chunk
    gain = level_gain(mags, stats)
    embs = [(embed(model, stats, gain * mag[None])[0], features.active_bins(mag, cluster_db)) for mag in mags]
    how, evidence = "given", ""
    if num_speakers is None and count_head is not None:
        probs = count_probabilities(x, model, stats, count_head, gain, cluster_db)
        num_speakers = int(count_head.most_probable(probs, max_speakers)[0])
        how, evidence = "count head", ", ".join(f"P({c} speakers) = {p:.2f}" for c, p in zip(count_head.classes,
                                                                                             probs))
    elif num_speakers is None:
        counted = [(k, e, a) for k, (e, a) in enumerate(embs) if a.any()]
        per_chunk = [estimate_num_speakers(e, a, max_speakers) for _, e, a in counted]
        num_speakers = max(per_chunk)
        how, evidence = "eigenvalue rule", _eigenvalue_evidence(counted, per_chunk, max_speakers)
    out = np.zeros((num_speakers, x.shape[0]))
    all_labels = np.full((mags[0].shape[0], features.num_frames(x.shape[0])), -1, np.int8)  # (F, T)
    prev_tail = None
    for k, ((lo, hi), mag, (emb, _)) in enumerate(zip(bounds, mags, embs)):
        sep = separate_mixture(emb, mag, num_speakers, seed=seed, key=k, cluster_db=cluster_db, mixture=x[lo:hi])
        ov = min(overlap, hi - lo) if k > 0 else 0
        if prev_tail is not None and ov > 0:
            sep = sep.reordered(_best_permutation(prev_tail[:, -ov:], sep.stems[:, :ov].astype(np.float64)))
        stems, labels = sep.stems.astype(np.float64), sep.labels  # (N, S_k), (F, T_k)
        if prev_tail is not None and ov > 0:
            fade = np.linspace(0.0, 1.0, ov)
            out[:, lo: lo + ov] = out[:, lo: lo + ov] * (1 - fade) + stems[:, :ov] * fade
            out[:, lo + ov: hi] = stems[:, ov:]
        else:
            out[:, lo:hi] = stems
        prev_tail = stems
        first = round((lo + ov / 2) / features.HOP)  # this chunk's labels from the middle of the overlap on
        skip = first - round(lo / features.HOP)
        width = min(labels.shape[1] - skip, all_labels.shape[1] - first)
        all_labels[:, first: first + width] = labels[:, skip: skip + width]
    if details:
        return out.astype(np.float32), num_speakers, SeparationDetails(all_labels, how, evidence)
    return out.astype(np.float32), num_speakers


def _eigenvalue_evidence(counted: list, per_chunk: list[int], max_speakers: int, shown: int = 4) -> str:
    """The eigenvalue rule's decision in words: the leading eigenvalues and count of the first ``shown`` chunks."""
    lines = [f"chunk {k + 1}: eigenvalues " + " ".join(f"{v:.2f}" for v in embedding_spectrum(e, a)[:max_speakers + 1])
             + f" -> {c}" for (k, e, a), c in zip(counted[:shown], per_chunk)]
    if len(counted) > shown:
        lines.append(f"... {len(counted)} chunks, counts " + " ".join(map(str, per_chunk)))
    return "; ".join(lines) + (f" (a speaker per eigenvalue above the share {DEFAULT_SHARE}, 1..{max_speakers}; "
                               f"the largest count of the chunks is used)")


def count_probabilities(x: np.ndarray, model, stats: dict, head: CountHead, gain: float, cluster_db: float,
                        window_s: float = 2.0, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Class probabilities of the count head for a recording: the mean over consecutive windows of ``window_s``
    (see :func:`estimate_count_with_head`).

    Returns:
        (C,) float64, one per ``head.classes``, summing to 1.

    Raises:
        ValueError: a silent recording.
    """
    win = int(window_s * sample_rate)
    starts = range(0, max(x.shape[0] - win, 0) + 1, win)
    mags = np.stack([np.abs(features.stft(x[lo: lo + win])) for lo in starts])  # (W, F, T)
    xin, h, v = network_outputs(model, stats, gain * mags)
    active = features.active_bins(mags, head.cluster_db or cluster_db)  # (W, F, T)
    keep = [k for k in range(len(mags)) if active[k].any()]
    if not keep:
        raise ValueError("the recording is silent: no speaker to count")
    return head.probabilities(np.stack([count_features(xin[k], h[k], v[k], active[k]) for k in keep])).mean(0)


def estimate_count_with_head(x: np.ndarray, model, stats: dict, head: CountHead, gain: float, max_speakers: int,
                             cluster_db: float, window_s: float = 2.0, sample_rate: int = MODEL_SAMPLE_RATE) -> int:
    """Speaker count of a recording with the count head: the recording is cut into consecutive windows of
    ``window_s`` (the length of the mixtures the head was fitted on; a shorter recording is one window), each window's
    class probabilities are computed at the network's training level (``gain``), and the most probable count of
    their mean is returned.

    Args:
        x: (S,) float recording. gain: :func:`level_gain` of the recording.

    Returns:
        int in the head's classes, at most ``max_speakers``.

    Raises:
        ValueError: a silent recording.
    """
    probs = count_probabilities(x, model, stats, head, gain, cluster_db, window_s, sample_rate)
    return int(head.most_probable(probs, max_speakers)[0])


class Separator:
    """Separate single-channel recordings of several talkers with a trained deep-clustering model.

    The model sees mic 1's magnitude spectrogram at 16 kHz (:data:`MODEL_SAMPLE_RATE`); a recording at another
    rate is resampled to 16 kHz and the stems come out at 16 kHz. Long recordings are separated in overlapping
    chunks whose stems are matched and cross-faded (:func:`separate_recording`).

    Args:
        checkpoint: a ``dctrain`` checkpoint (``RUN/best.pt``) or a shipped model file.
        count_head: count head for ``num_speakers="auto"`` (default: ``count_head.json`` beside the checkpoint if
            there is one, else the eigenvalue rule).
        cluster_db: K-means fit range below the loudest bin (dB). chunk_s, overlap_s: chunking of long
            recordings (s). max_speakers: the largest count ``"auto"`` returns. seed: K-means seed.

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: a junk or foreign checkpoint (checked here, before any
            recording is read).
    """

    sample_rate = MODEL_SAMPLE_RATE

    def __init__(self, checkpoint: str | Path, count_head: str | Path | None = None,
                 cluster_db: float = DEFAULT_CLUSTER_DB, chunk_s: float = 8.0, overlap_s: float = 2.0,
                 max_speakers: int = 3, seed: int = 0, name: str | None = None):
        if overlap_s >= chunk_s:
            raise ValueError(f"overlap_s ({overlap_s}) must be shorter than chunk_s ({chunk_s})")
        loaded = load_model(checkpoint)
        self.checkpoint = loaded.path
        self.name = name or str(checkpoint)
        self.model, self.stats, self.config, self.card = loaded.net, loaded.stats, loaded.config, loaded.card
        self._count_head_arg = count_head
        self._count_head: CountHead | None = None
        self.cluster_db, self.chunk_s, self.overlap_s = cluster_db, chunk_s, overlap_s
        self.max_speakers, self.seed = max_speakers, seed

    @classmethod
    def from_pretrained(cls, name: str | None = None, **kwargs) -> "Separator":
        """A separator with a model shipped in the package (:mod:`spatialdc.models`; ``None``: the default,
        :data:`spatialdc.models.DEFAULT_MODEL`). Other arguments as for :class:`Separator`.

        Raises:
            ValueError: no shipped model of that name (the message lists them).
        """
        name = name or models.DEFAULT_MODEL
        with models.model_path(name) as path:
            return cls(path, name=name, **kwargs)

    def _head(self) -> CountHead | None:
        if self._count_head is None:
            path = resolve_count_head(str(self.checkpoint), self._count_head_arg)
            self._count_head = CountHead.load(path) if path else None
        return self._count_head

    def separate(self, waveform: np.ndarray, sample_rate: int, num_speakers: int | str = 2) -> np.ndarray:
        """Separate one recording.

        Args:
            waveform: (S,) float, one microphone, at ``sample_rate`` Hz, any level.
            sample_rate: Hz; resampled to 16 kHz if different.
            num_speakers: N >= 1, or ``"auto"`` to estimate it (count head or eigenvalue rule).

        Returns:
            (N, S16) float32 stems at 16 kHz (S16 = S at 16 kHz), scaled like the input: binary masks partition
            the spectrogram, so the stems add up to the (resampled) recording.

        Raises:
            ValueError: a bad count, or a waveform :func:`check_waveform` refuses (empty, NaN or infinite
                samples, shorter than one STFT frame, silent).
        """
        x = self._prepare(waveform, sample_rate, num_speakers)
        return self._separate(x, num_speakers)[0]

    def separate_detailed(self, waveform: np.ndarray, sample_rate: int,
                          num_speakers: int | str = 2) -> tuple[np.ndarray, SeparationDetails]:
        """:meth:`separate`, with what was decided on the way (for ``dcsep --report``).

        Returns:
            ((N, S16) float32 stems at 16 kHz, exactly :meth:`separate`'s; :class:`SeparationDetails`: the stem of
            every STFT bin and how the count was chosen).

        Raises:
            ValueError: as :meth:`separate`.
        """
        x = self._prepare(waveform, sample_rate, num_speakers)
        stems, _, details = self._separate(x, num_speakers, details=True)
        return stems, details

    @staticmethod
    def _prepare(waveform: np.ndarray, sample_rate: int, num_speakers: int | str) -> np.ndarray:
        if num_speakers != "auto" and not (isinstance(num_speakers, (int, np.integer)) and num_speakers >= 1):
            raise ValueError(f"num_speakers must be an int >= 1 or 'auto', got {num_speakers!r}")
        return to_model_rate(check_waveform(waveform, sample_rate), sample_rate)

    def _separate(self, x: np.ndarray, num_speakers: int | str, details: bool = False):
        head = self._head() if num_speakers == "auto" else None
        return separate_recording(x, self.model, self.stats, None if num_speakers == "auto" else int(num_speakers),
                                  self.chunk_s, self.overlap_s, self.max_speakers, self.cluster_db,
                                  seed=self.seed, count_head=head, details=details)

    def separate_file(self, path: str | Path, out_dir: str | Path = "stems", num_speakers: int | str = 2,
                      overwrite: bool = False) -> list[Path]:
        """Separate a WAV / FLAC file (any rate; channel 1 of several) into ``out_dir/<name>_speaker<k>.wav``,
        16-bit PCM at 16 kHz, scaled down together if a stem would clip; each file written atomically.

        Returns:
            the N paths written, in stem order.

        Raises:
            FileNotFoundError: no such file. FileExistsError: a stem file exists and ``overwrite`` is False.
            ValueError: unreadable or refused audio (:func:`read_recording`), a bad count.
        """
        x, _ = read_recording(path)
        stems, _ = self._separate(x, num_speakers)
        return write_stems(stems, out_dir, Path(path).stem, overwrite)


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
