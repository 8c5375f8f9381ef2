"""Separate a user's recording with a trained deep-clustering model: the library behind ``dcsep`` and the Python
API (:class:`Separator`).

    from spatialdc.eval import Separator
    sep = Separator.from_pretrained()            # the default shipped model (spatialdc.models)
    stems = sep.separate(waveform, 44100)        # (N, S) float32 at 16 kHz
    paths = sep.separate_file("talk.wav", "stems/")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from spatialdc import models
from spatialdc.pipeline import features
from spatialdc.pipeline.audio import resample

from .count import DEFAULT_SHARE, CountHead, count_features, embedding_spectrum, estimate_num_speakers, \
    resolve_count_head
from .recording import MODEL_SAMPLE_RATE, check_waveform, level_gain, read_recording, write_stems
from .separate import DEFAULT_CLUSTER_DB, Separation, embed, load_model, network_outputs, separate_mixture


def _chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    if n <= chunk:
        return [(0, n)]
    hop = chunk - overlap
    starts = list(range(0, n - overlap, hop))
    return [(s, min(s + chunk, n)) for s in starts if s < n]


def _best_permutation(prev: np.ndarray, cur: np.ndarray) -> list[int]:
    """Order of ``cur``'s stems (N, S) that best matches ``prev`` (N, S) by correlation (Hungarian assignment)."""
    a = prev / (np.linalg.norm(prev, axis=1, keepdims=True) + 1e-12)
    b = cur / (np.linalg.norm(cur, axis=1, keepdims=True) + 1e-12)
    _, cols = linear_sum_assignment(-(a @ b.T))
    return list(cols)


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

    The recording is cut into chunks of ``chunk_s`` seconds overlapping by ``overlap_s``; each chunk is embedded and
    separated as ``dceval`` separates a mixture (:func:`~spatialdc.eval.separate.separate_mixture`, K-means keyed by
    ``seed`` and the chunk's number); the stems of each chunk are matched to the previous chunk's by their
    correlation over the overlap and cross-faded linearly. With ``num_speakers`` None the count is estimated: with
    ``count_head``, by :func:`count_probabilities` (windows as long as its training mixtures, probabilities
    averaged); without, by the eigenvalue rule per chunk, the largest estimate used for all chunks. The network
    sees the recording at the level of its training mixtures (:func:`~spatialdc.eval.recording.level_gain`), so
    the stems scale with the input.

    Args:
        x: (S,) float, at ``sample_rate``. model: a DeepClusteringNet in eval mode. stats: its input statistics.
        details: also return a :class:`SeparationDetails` (the bins' stem labels and how the count was chosen);
            the stems are the same either way.

    Returns:
        ((N, S) float32 stems, N), or ((N, S) float32 stems, N, SeparationDetails) with ``details``.

    Raises:
        ValueError: a silent recording with ``count_head``.
    """
    overlap = int(overlap_s * sample_rate)
    bounds = _chunk_bounds(x.shape[0], int(chunk_s * sample_rate), overlap)
    mags = [np.abs(features.stft(x[lo:hi])) for lo, hi in bounds]  # (F, T_k) per chunk
    gain = level_gain(mags, stats)
    embs = [embed(model, stats, gain * mag[None])[0] for mag in mags]  # (F, T_k, D) per chunk
    if num_speakers is not None:
        how, evidence = "given", ""
    elif count_head is not None:
        probs = count_probabilities(x, model, stats, count_head, gain, cluster_db)
        num_speakers = int(count_head.most_probable(probs, max_speakers)[0])
        how, evidence = "count head", ", ".join(f"P({c} speakers) = {p:.2f}" for c, p in zip(count_head.classes,
                                                                                             probs))
    else:
        num_speakers, evidence = _eigenvalue_count(embs, mags, max_speakers, cluster_db)
        how = "eigenvalue rule"
    seps = [separate_mixture(emb, mag, num_speakers, seed=seed, key=k, cluster_db=cluster_db, mixture=x[lo:hi])
            for k, ((lo, hi), mag, emb) in enumerate(zip(bounds, mags, embs))]
    out, labels = _stitch(seps, bounds, overlap, x.shape[0])
    if details:
        return out.astype(np.float32), num_speakers, SeparationDetails(labels, how, evidence)
    return out.astype(np.float32), num_speakers


def _stitch(seps: list[Separation], bounds: list[tuple[int, int]], overlap: int,
            num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The chunks' separations as one: each chunk's stems in the order that best matches the previous chunk's over
    their overlap, cross-faded linearly there; the bins' labels from the middle of each overlap on.

    Returns:
        ((N, S) float64 stems, (F, T) int8 labels, T = ``features.num_frames(S)``).
    """
    out = np.zeros((seps[0].masks.shape[0], num_samples))
    all_labels = np.full((seps[0].labels.shape[0], features.num_frames(num_samples)), -1, np.int8)  # (F, T)
    prev = None  # the previous chunk's stems, in their matched order
    for k, ((lo, hi), sep) in enumerate(zip(bounds, seps)):
        stems = sep.stems.astype(np.float64)  # (N, S_k)
        ov = min(overlap, hi - lo) if k > 0 else 0
        if prev is not None and ov > 0:
            order = _best_permutation(prev[:, -ov:], stems[:, :ov])
            sep, stems = sep.reordered(order), stems[order]
            fade = np.linspace(0.0, 1.0, ov)
            out[:, lo: lo + ov] = out[:, lo: lo + ov] * (1 - fade) + stems[:, :ov] * fade
            out[:, lo + ov: hi] = stems[:, ov:]
        else:
            out[:, lo:hi] = stems
        prev = stems
        first = round((lo + ov / 2) / features.HOP)  # this chunk's labels from the middle of the overlap on
        skip = first - round(lo / features.HOP)
        width = min(sep.labels.shape[1] - skip, all_labels.shape[1] - first)
        all_labels[:, first: first + width] = sep.labels[:, skip: skip + width]
    return out, all_labels


def _eigenvalue_count(embs: list[np.ndarray], mags: list[np.ndarray], max_speakers: int,
                      cluster_db: float) -> tuple[int, str]:
    """The eigenvalue rule over a recording's chunks: the largest count of the chunks with a non-silent bin, and
    the decision in words."""
    counted = [(k, e, features.active_bins(m, cluster_db)) for k, (e, m) in enumerate(zip(embs, mags))]
    counted = [(k, e, a) for k, e, a in counted if a.any()]
    per_chunk = [estimate_num_speakers(e, a, max_speakers) for _, e, a in counted]
    return max(per_chunk), _eigenvalue_evidence(counted, per_chunk, max_speakers)


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
    """Class probabilities of the count head for a recording: the recording is cut into consecutive windows of
    ``window_s`` (the length of the mixtures the head was fitted on; a shorter recording is one window), each
    window's probabilities are computed at the network's training level (``gain``,
    :func:`~spatialdc.eval.recording.level_gain`), and their mean is returned.

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
        device: where the network computes: ``"auto"`` (a CUDA GPU where torch sees one, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` (STFT, K-means and resynthesis stay on the CPU).

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: a junk or foreign checkpoint (checked here, before any
            recording is read); CUDA asked for where torch sees none.
    """

    sample_rate = MODEL_SAMPLE_RATE

    def __init__(self, checkpoint: str | Path, count_head: str | Path | None = None,
                 cluster_db: float = DEFAULT_CLUSTER_DB, chunk_s: float = 8.0, overlap_s: float = 2.0,
                 max_speakers: int = 3, seed: int = 0, name: str | None = None, device: str = "auto"):
        if overlap_s >= chunk_s:
            raise ValueError(f"overlap_s ({overlap_s}) must be shorter than chunk_s ({chunk_s})")
        loaded = load_model(checkpoint, device)
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
        :data:`spatialdc.models.DEFAULT_MODEL`). Other arguments (``device=`` among them) as for
        :class:`Separator`.

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
            ValueError: a bad count, or a waveform :func:`~spatialdc.eval.recording.check_waveform` refuses
                (empty, NaN or infinite samples, shorter than one STFT frame, silent).
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
        return resample(check_waveform(waveform, sample_rate), sample_rate, MODEL_SAMPLE_RATE)

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
            ValueError: unreadable or refused audio (:func:`~spatialdc.eval.recording.read_recording`), a bad count.
        """
        x, _ = read_recording(path)
        stems, _ = self._separate(x, num_speakers)
        return write_stems(stems, out_dir, Path(path).stem, overwrite)
