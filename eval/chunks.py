"""A recording of any length separated chunk by chunk, holding one chunk at a time: the core of
:func:`~spatialdc.eval.separator.separate_recording` (arrays) and :func:`~spatialdc.eval.separator.separate_file`
(files read in blocks, ``dcsep``).

The recording (anything with ``num_samples`` and ``read(lo, hi)``: :class:`~spatialdc.eval.recording.RecordingFile`,
:class:`~spatialdc.eval.recording.ArrayRecording`) is cut into chunks of ``chunk_s`` seconds overlapping by
``overlap_s``. What needs the whole recording comes from passes that keep a number per chunk and nothing else
(:func:`plan_chunks`): the level gain, then, for an unknown count, the count head's class probabilities or the
eigenvalue rule's count. Then each chunk is embedded and separated as ``dceval`` separates a mixture
(:func:`~spatialdc.eval.separate.separate_mixture`, K-means keyed by the seed and the chunk's number,
:func:`separated_chunks`), and :class:`Stitcher` matches its stems to the previous chunk's by their correlation over
the overlap, cross-fades them there and hands on the samples no later chunk changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from spatialdc.pipeline import features

from .count import DEFAULT_SHARE, CountHead, count_features, embedding_spectrum, estimate_num_speakers
from .recording import MODEL_SAMPLE_RATE, LevelMeter
from .separate import Separation, embed, network_outputs, separate_mixture

COUNT_BATCH = 16  # count-head windows per forward pass


class Recording(Protocol):
    num_samples: int

    def read(self, lo: int, hi: int) -> np.ndarray: ...


def chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """[lo, hi) sample spans of the chunks of an ``n``-sample recording: ``chunk`` long, starting every
    ``chunk - overlap`` samples (the last one shorter); one span for a recording no longer than a chunk."""
    if n <= chunk:
        return [(0, n)]
    hop = chunk - overlap
    starts = list(range(0, n - overlap, hop))
    return [(s, min(s + chunk, n)) for s in starts if s < n]


def best_permutation(prev: np.ndarray, cur: np.ndarray) -> list[int]:
    """Order of ``cur``'s stems (N, S) that best matches ``prev`` (N, S) by correlation (Hungarian assignment)."""
    a = prev / (np.linalg.norm(prev, axis=1, keepdims=True) + 1e-12)
    b = cur / (np.linalg.norm(cur, axis=1, keepdims=True) + 1e-12)
    _, cols = linear_sum_assignment(-(a @ b.T))
    return list(cols)


@dataclass(frozen=True)
class ChunkPlan:
    """What the passes over the whole recording decided (:func:`plan_chunks`).

    Attributes:
        bounds: the chunks' [lo, hi) spans (:func:`chunk_bounds`). overlap: samples two chunks share.
        gain: the network's input gain (:class:`~spatialdc.eval.recording.LevelMeter`). num_speakers: N.
        count_method: ``"given"``, ``"count head"`` or ``"eigenvalue rule"``. count_evidence: what the estimate
            rests on, in words (empty for ``"given"``).
    """

    bounds: list[tuple[int, int]]
    overlap: int
    gain: float
    num_speakers: int
    count_method: str
    count_evidence: str


def plan_chunks(recording: Recording, model, stats: dict, num_speakers: int | None, chunk_s: float, overlap_s: float,
                max_speakers: int, cluster_db: float, count_head: CountHead | None,
                sample_rate: int = MODEL_SAMPLE_RATE) -> ChunkPlan:
    """The chunks, the level gain (a pass of STFTs) and, with ``num_speakers`` None, the count: the count head's
    (:func:`count_probabilities`) or the eigenvalue rule's (:func:`eigenvalue_count`), a pass of forward passes.

    Raises:
        ValueError: a silent recording with ``count_head``.
    """
    overlap = int(overlap_s * sample_rate)
    bounds = chunk_bounds(recording.num_samples, int(chunk_s * sample_rate), overlap)
    meter = LevelMeter()
    for lo, hi in bounds:
        meter.add(np.abs(features.stft(recording.read(lo, hi))))  # (F, T_k)
    gain = meter.gain(stats)
    if num_speakers is not None:
        return ChunkPlan(bounds, overlap, gain, num_speakers, "given", "")
    if count_head is not None:
        probs = count_probabilities(recording, model, stats, count_head, gain, cluster_db, sample_rate=sample_rate)
        evidence = ", ".join(f"P({c} speakers) = {p:.2f}" for c, p in zip(count_head.classes, probs))
        return ChunkPlan(bounds, overlap, gain, int(count_head.most_probable(probs, max_speakers)[0]), "count head",
                         evidence)
    count, evidence = eigenvalue_count(recording, bounds, model, stats, gain, max_speakers, cluster_db)
    return ChunkPlan(bounds, overlap, gain, count, "eigenvalue rule", evidence)


def _embedded(recording: Recording, lo: int, hi: int, model, stats: dict, gain: float):
    """A chunk's samples (S_k,), magnitude (F, T_k) and embeddings (F, T_k, D) at the network's level ``gain``."""
    x = recording.read(lo, hi)
    mag = np.abs(features.stft(x))
    return x, mag, embed(model, stats, gain * mag[None])[0]


def separated_chunks(recording: Recording, model, stats: dict, plan: ChunkPlan, seed: int,
                     cluster_db: float) -> Iterator[Separation]:
    """Each chunk separated, in order (stems (N, S_k)): K-means keyed by ``seed`` and the chunk's number."""
    for k, (lo, hi) in enumerate(plan.bounds):
        x, mag, emb = _embedded(recording, lo, hi, model, stats, plan.gain)
        yield separate_mixture(emb, mag, plan.num_speakers, seed=seed, key=k, cluster_db=cluster_db, mixture=x)


class Stitcher:
    """The chunks' separations as one recording's stems, handed on as soon as no later chunk changes them: each
    chunk's stems in the order that best matches the previous chunk's over their overlap, cross-faded linearly
    there. Holds the previous chunk's stems and the overlap's samples, nothing longer.

    Args:
        bounds: the chunks' spans (:func:`chunk_bounds`). overlap: samples two consecutive chunks share.
    """

    def __init__(self, bounds: list[tuple[int, int]], overlap: int):
        self.bounds, self.overlap, self.k = bounds, overlap, 0
        self.prev: np.ndarray | None = None  # the previous chunk's stems, in their matched order
        self.tail: np.ndarray | None = None  # the output over the next chunk's start .. this chunk's end

    def add(self, sep: Separation) -> tuple[Separation, int, int, np.ndarray]:
        """The next chunk's separation (stems (N, S_k)).

        Returns:
            (the separation in the matched stem order, the samples cross-faded at its start, the first sample
            of the final output handed on, that output (N, S_out) float64, up to the next chunk's start).
        """
        lo, hi = self.bounds[self.k]
        stems = sep.stems.astype(np.float64)  # (N, S_k)
        ov = min(self.overlap, hi - lo) if self.k > 0 else 0
        out = stems
        if self.prev is not None and ov > 0:
            order = best_permutation(self.prev[:, -ov:], stems[:, :ov])
            sep, stems = sep.reordered(order), stems[order]
            fade = np.linspace(0.0, 1.0, ov)
            out = stems.copy()
            out[:, :ov] = self.tail[:, :ov] * (1 - fade) + stems[:, :ov] * fade
        self.k += 1
        final = self.bounds[self.k][0] if self.k < len(self.bounds) else hi  # no later chunk reaches before
        self.prev, self.tail = stems, out[:, final - lo:]
        return sep, ov, lo, out[:, :final - lo]


def chunk_labels(labels: np.ndarray, sep: Separation, lo: int, ov: int) -> None:
    """Put a chunk's bin labels (in the matched stem order) into the recording's (F, T) ``labels``, from the
    middle of its overlap with the previous chunk on."""
    first = round((lo + ov / 2) / features.HOP)
    skip = first - round(lo / features.HOP)
    width = min(sep.labels.shape[1] - skip, labels.shape[1] - first)
    labels[:, first: first + width] = sep.labels[:, skip: skip + width]


def eigenvalue_count(recording: Recording, bounds: list[tuple[int, int]], model, stats: dict, gain: float,
                     max_speakers: int, cluster_db: float) -> tuple[int, str]:
    """The eigenvalue rule over a recording's chunks: the largest count of the chunks with a non-silent bin, and
    the decision in words (the leading eigenvalues of the first chunks)."""
    counted = []  # (chunk number, leading eigenvalues, count) of the chunks with a non-silent bin
    for k, (lo, hi) in enumerate(bounds):
        _, mag, emb = _embedded(recording, lo, hi, model, stats, gain)
        active = features.active_bins(mag, cluster_db)
        if active.any():
            counted.append((k, embedding_spectrum(emb, active)[:max_speakers + 1],
                            estimate_num_speakers(emb, active, max_speakers)))
    per_chunk = [c for _, _, c in counted]
    lines = [f"chunk {k + 1}: eigenvalues " + " ".join(f"{v:.2f}" for v in ev) + f" -> {c}"
             for k, ev, c in counted[:4]]
    if len(counted) > 4:
        lines.append(f"... {len(counted)} chunks, counts " + " ".join(map(str, per_chunk)))
    return max(per_chunk), "; ".join(lines) + (f" (a speaker per eigenvalue above the share {DEFAULT_SHARE}, "
                                               f"1..{max_speakers}; the largest count of the chunks is used)")


def count_probabilities(recording: Recording, model, stats: dict, head: CountHead, gain: float, cluster_db: float,
                        window_s: float = 2.0, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Class probabilities of the count head for a recording: the recording is cut into consecutive windows of
    ``window_s`` (the length of the mixtures the head was fitted on; a shorter recording is one window), each
    window's probabilities are computed at the network's training level (``gain``,
    :func:`~spatialdc.eval.recording.level_gain`), :data:`COUNT_BATCH` windows per forward pass, and their mean
    over the windows with a non-silent bin is returned.

    Returns:
        (C,) float64, one per ``head.classes``, summing to 1.

    Raises:
        ValueError: a silent recording.
    """
    win = int(window_s * sample_rate)
    starts = list(range(0, max(recording.num_samples - win, 0) + 1, win))
    total, count = 0.0, 0
    for b in range(0, len(starts), COUNT_BATCH):
        mags = np.stack([np.abs(features.stft(recording.read(lo, lo + win))) for lo in starts[b: b + COUNT_BATCH]])
        xin, h, v = network_outputs(model, stats, gain * mags)  # (W, F, T) windows -> (W, T, F), (W, T, 2H), ...
        active = features.active_bins(mags, head.cluster_db or cluster_db)  # (W, F, T)
        keep = [k for k in range(len(mags)) if active[k].any()]
        if keep:
            total = total + head.probabilities(np.stack([count_features(xin[k], h[k], v[k], active[k])
                                                         for k in keep])).sum(0)
            count += len(keep)
    if not count:
        raise ValueError("the recording is silent: no speaker to count")
    return total / count
