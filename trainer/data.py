"""Training examples from shards: network input, targets and loss weights of one mixture."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from spatialdc.pipeline import features, labels
from spatialdc.pipeline.label_sidecar import label_field
from spatialdc.pipeline.label_weights import bpd_confidence, direct_path_bins
from spatialdc.pipeline.rng import rng_for
from spatialdc.pipeline.shards import ShardReadError, ShardSet

from .config import LABEL_WEIGHTS

LOG_FLOOR = 1e-8


def log_magnitude(magnitude: np.ndarray) -> np.ndarray:
    """log(|M1| + 1e-8), float32, same shape."""
    return np.log(np.asarray(magnitude, dtype=np.float32) + LOG_FLOOR)


def input_stats(shards: ShardSet, max_mixtures: int = 200) -> dict[str, np.ndarray]:
    """Per-frequency mean and standard deviation of the log magnitude over (up to) the first ``max_mixtures``
    mixtures of the training shards. Returns ``{"mean": (F,), "std": (F,)}`` float32."""
    count = min(len(shards), max_mixtures)
    logs = np.stack([log_magnitude(shards.read(i, ("magnitude",))["magnitude"]) for i in range(count)])  # (M, F, T)
    return {"mean": logs.mean(axis=(0, 2)).astype(np.float32),
            "std": (logs.std(axis=(0, 2)) + 1e-5).astype(np.float32)}


def vtlp_source_bins(num_freqs: int, alpha: float, boundary: float = 0.6) -> np.ndarray:
    """Vocal tract length perturbation (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP) improves
    speech recognition"): the piecewise-linear frequency warp f -> alpha f below a boundary frequency, then the
    straight line that keeps the Nyquist frequency in place. Scaling the frequency axis this way mimics a speaker
    with a shorter (alpha > 1) or longer (alpha < 1) vocal tract.

    Args:
        num_freqs: F, bins from 0 Hz to Nyquist (257). alpha: warp factor, > 0 (1 = identity).
        boundary: F_hi as a fraction of Nyquist (Jaitly & Hinton: 4800 Hz of 8000, i.e. 0.6).

    Returns:
        (F,) float64: for each output bin, the (fractional) input bin it takes its value from; increasing, from 0
        to F - 1.

    Raises:
        ValueError: alpha <= 0 or boundary outside (0, 1).
    """
    if alpha <= 0 or not 0 < boundary < 1:
        raise ValueError(f"need alpha > 0 and 0 < boundary < 1, got {alpha}, {boundary}")
    nyquist = num_freqs - 1
    f = np.arange(num_freqs, dtype=np.float64)
    knee = boundary * nyquist * min(alpha, 1.0)  # F_hi min(alpha, 1): where the warped axis changes slope
    warped = np.where(f <= knee / alpha, alpha * f,
                      nyquist - (nyquist - knee) / (nyquist - knee / alpha) * (nyquist - f))  # input -> output
    return np.interp(f, warped, f)  # output -> input (the warp is increasing, so it inverts by interpolation)


def warp_frequencies(magnitude: np.ndarray, target: np.ndarray, weights: np.ndarray,
                     alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one VTLP warp (:func:`vtlp_source_bins`) to a training example: the magnitude by linear interpolation
    between bins, the targets and loss weights by the nearest bin, so every output bin keeps the label of the
    spectrum it shows.

    Args:
        magnitude: (F, T) float. target: (F, T) or (F, T, C), any dtype. weights: (F, T). alpha: warp factor.

    Returns:
        (magnitude (F, T) float32, target, weights), shapes and dtypes as given.
    """
    src = vtlp_source_bins(magnitude.shape[0], alpha)  # (F,)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, magnitude.shape[0] - 1)
    frac = (src - lo).astype(np.float32)[:, None]
    warped = magnitude[lo] * (1 - frac) + magnitude[hi] * frac
    nearest = np.rint(src).astype(np.intp)
    return warped.astype(np.float32), target[nearest], weights[nearest]


def reader_error(exc: ShardReadError) -> ShardReadError:
    """A shard reader's error with the reader's own message. Raised in a DataLoader worker, it reaches the training
    process re-raised by torch with the worker's traceback in its message ("Caught ShardReadError in DataLoader
    worker process 0. Original Traceback ..."), whose last line is the reader's message."""
    text, marker = str(exc), f"{type(exc).__name__}: "
    if "Original Traceback" not in text or marker not in text:
        return exc
    return ShardReadError(text.rsplit(marker, 1)[1].strip())


def network_input(magnitude: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Normalized log magnitude, transposed for the BLSTM. magnitude (..., F, T) -> (..., T, F) float32."""
    x = (log_magnitude(magnitude) - stats["mean"][:, None]) / stats["std"][:, None]  # (..., F, T)
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


class DeepClusteringDataset(Dataset):
    """Mixtures of a :class:`ShardSet` as training examples; HDF5 files open lazily in each worker.

    Each item is a dict: ``x`` (T, F) float32 input, ``y`` (T, F) int64 labels (ds, bpd) or (T, F, 1) float32
    RPD target, ``w`` (T, F) float32 loss weights (0 on silent bins, judged on the whole mixture), ``n`` int number
    of sources. With ``chunk_frames`` > 0, a random chunk of that many frames is cut, drawn from
    ``rng_for(seed, "chunk", epoch, i)``, before the input is normalized. With ``freq_warp`` > 0 the chunk is then
    warped in frequency (:func:`warp_frequencies`) by a factor drawn uniformly from [1 - freq_warp, 1 + freq_warp]
    with ``rng_for(seed, "warp", epoch, i)``. With ``label_weights="confidence"`` (BPD targets) each bin's loss weight
    is its silence weight times the confidence of its BPD label
    (:func:`spatialdc.pipeline.label_weights.bpd_confidence`, on the whole mixture); with
    ``label_weights="direct-path"`` it is 1 only on the bins of
    :func:`spatialdc.pipeline.label_weights.direct_path_bins` (at most ``keep_share`` of the non-silent bins), else 0.
    With ``labels`` (a name made by ``dcrelabel``) the targets are that label field of the shards' sidecars
    (``"labels:NAME"``, :mod:`spatialdc.pipeline.label_sidecar`) instead of ``bpd``, and the weights above are
    computed from them.

    An item is asked for by its index ``i`` (the chunk and warp are drawn for the epoch of :meth:`set_epoch`) or
    by an ``(epoch, i)`` pair, the key the training loader's sampler yields
    (:class:`~spatialdc.trainer.distributed.GlobalBatchSampler` with ``epoch_keys``): persistent DataLoader workers
    hold copies of the dataset that :meth:`set_epoch` in the training process never reaches.

    Decoded shard rows are kept in memory, up to ``cache_bytes`` in all (about 0.32 MB per 2-speaker mixture for DS
    or BPD targets), so that later epochs skip HDF5 decompression. The cache lives in the process that reads: each
    persistent DataLoader worker keeps its own (the training loop gives each its share of the budget).
    """

    def __init__(self, shards: ShardSet | None, target: str, stats: dict[str, np.ndarray], chunk_frames: int = 0,
                 silence_db: float = features.SILENCE_DB, seed: int = 0, cache_bytes: int = 0,
                 freq_warp: float = 0.0, label_weights: str = "silence", keep_share: float = 0.5, labels: str = ""):
        if label_weights not in LABEL_WEIGHTS:
            raise ValueError(f"label_weights {label_weights!r} is not one of {LABEL_WEIGHTS}")
        if label_weights in ("confidence", "direct-path") and target != "bpd":
            raise ValueError(f"{label_weights} weights rate BPD labels; the target is {target!r}")
        self.shards, self.target, self.stats = shards, target, stats
        self.freq_warp, self.label_weights, self.keep_share = freq_warp, label_weights, keep_share
        self.chunk_frames, self.silence_db, self.seed = chunk_frames, silence_db, seed
        if labels and target != "bpd":
            raise ValueError(f"label field {labels!r} replaces BPD labels; the target is {target!r}")
        self.epoch = 0
        self.label_key = label_field(labels) if labels else target  # the field read as y
        self.fields = ("magnitude", "npd", "spec") if target == "rpd" else ("magnitude", self.label_key)
        if label_weights in ("confidence", "direct-path"):
            self.fields += ("npd", "spec")
        self.cache_bytes = cache_bytes
        self._cache: dict[int, dict] = {}
        self._cached_bytes = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of items asked for by a plain index."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.shards)

    def _read(self, i: int, epoch: int) -> dict:
        """The mixture's stored fields: magnitude (F, T) float32, targets (F, T) uint8 or npd + spec; cached. The
        shards' mixtures are the same every epoch (dynamic mixing draws new ones per ``epoch``)."""
        if i in self._cache:
            return self._cache[i]
        data = self.shards.read(i, self.fields)
        size = sum(v.nbytes for v in data.values() if isinstance(v, np.ndarray))
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[i] = data
            self._cached_bytes += size
        return data

    def num_speakers(self, i: int) -> int:
        """N of mixture ``i``."""
        return self.shards.num_speakers(i)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        data = self._read(i, epoch)
        mag = data["magnitude"]  # (F, T)
        w = features.active_bins(mag, self.silence_db)  # (F, T), on the whole mixture
        if self.target == "rpd":
            spec = data["spec"]
            max_delay = spec.max_delay_samples
            if max_delay > 0.5:
                raise ValueError(f"{spec.mixture_id}: the RPD target is the raw NPD, which wraps at a mic spacing of "
                                 f"{spec.mic_spacing_m} m (delays up to {max_delay:.2f} samples); train BPD or DS")
            y = labels.rpd_target(data["npd"], w, max_delay)[..., None]  # (F, T, 1)
        else:
            y = data[self.label_key]  # (F, T) uint8
        if self.label_weights in ("confidence", "direct-path"):
            spec = data["spec"]
            conf = bpd_confidence(data["npd"], y, w, spec.num_speakers, spec.max_delay_samples)  # (F, T) float32
            w = (w * conf if self.label_weights == "confidence" else
                 direct_path_bins(mag, conf, w, self.keep_share).astype(np.float32))
        t = mag.shape[-1]
        if 0 < self.chunk_frames < t:  # cut first: only the chunk is normalized and converted
            start = int(rng_for(self.seed, "chunk", epoch, i).integers(t - self.chunk_frames + 1))
            sl = slice(start, start + self.chunk_frames)
            mag, y, w = mag[:, sl], y[:, sl], w[:, sl]
        if self.freq_warp > 0:
            alpha = rng_for(self.seed, "warp", epoch, i).uniform(1 - self.freq_warp, 1 + self.freq_warp)
            mag, y, w = warp_frequencies(mag, y, w, alpha)
        x = network_input(mag, self.stats)  # (T, F)
        y = np.swapaxes(y, 0, 1)  # (T, F[, 1])
        if self.target != "rpd":
            y = y.astype(np.int64)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(np.ascontiguousarray(y)),
                "w": torch.from_numpy(np.ascontiguousarray(w.T, dtype=np.float32)), "n": self.num_speakers(i)}
