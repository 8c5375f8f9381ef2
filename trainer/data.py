"""Training examples from shards: network input, targets and loss weights of one mixture."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline import features, labels
from pipeline.rng import rng_for
from pipeline.shards import ShardSet

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


def network_input(magnitude: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Normalized log magnitude, transposed for the BLSTM. magnitude (..., F, T) -> (..., T, F) float32."""
    x = (log_magnitude(magnitude) - stats["mean"][:, None]) / stats["std"][:, None]  # (..., F, T)
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


class DeepClusteringDataset(Dataset):
    """Mixtures of a :class:`ShardSet` as training examples; HDF5 files open lazily in each worker.

    Each item is a dict: ``x`` (T, F) float32 input, ``y`` (T, F) int64 labels (ds, bpd) or (T, F, 1) float32
    RPD target, ``w`` (T, F) float32 loss weights (0 on silent bins), ``n`` int number of sources.
    With ``chunk_frames`` > 0, a random chunk of that many frames is cut, drawn from
    ``rng_for(seed, "chunk", epoch, i)``.
    """

    def __init__(self, shards: ShardSet, target: str, stats: dict[str, np.ndarray], chunk_frames: int = 0,
                 silence_db: float = features.SILENCE_DB, seed: int = 0):
        self.shards, self.target, self.stats = shards, target, stats
        self.chunk_frames, self.silence_db, self.seed = chunk_frames, silence_db, seed
        self.epoch = 0
        self.fields = ("magnitude", "npd", "spec") if target == "rpd" else ("magnitude", target)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> dict:
        data = self.shards.read(i, self.fields)
        mag = data["magnitude"]  # (F, T)
        w = features.active_bins(mag, self.silence_db)  # (F, T)
        if self.target == "rpd":
            spec = data["spec"]
            max_delay = spec.mic_spacing_m * spec.sample_rate / spec.sound_speed_m_s
            y = labels.rpd_target(data["npd"], w, max_delay)[..., None]  # (F, T, 1)
        else:
            y = data[self.target].astype(np.int64)  # (F, T)
        x = network_input(mag, self.stats)  # (T, F)
        y, w = np.swapaxes(y, 0, 1), w.T.astype(np.float32)  # (T, F[, 1])
        t = x.shape[0]
        if 0 < self.chunk_frames < t:
            start = int(rng_for(self.seed, "chunk", self.epoch, i).integers(t - self.chunk_frames + 1))
            sl = slice(start, start + self.chunk_frames)
            x, y, w = x[sl], y[sl], w[sl]
        return {"x": torch.from_numpy(np.ascontiguousarray(x)), "y": torch.from_numpy(np.ascontiguousarray(y)),
                "w": torch.from_numpy(np.ascontiguousarray(w)), "n": self.shards.num_speakers(i)}
