"""Separation by clustering embeddings (Tzinis et al. 2019, Sec. 3.3; Hershey et al. 2016, Sec. 3)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from spatialdc.pipeline import features
from spatialdc.pipeline.features import apply_masks, binary_masks  # noqa: F401  (re-exported: eval's API)
from spatialdc.trainer.data import network_input
from spatialdc.trainer.precision import dense_autocast, resolve


def inference_dense_bf16() -> bool:
    """Whether embeddings are computed with the dense layer in bf16: where the CPU has native bf16 instructions, as
    ``--precision auto`` trains (:func:`spatialdc.trainer.precision.resolve`)."""
    return resolve("auto").dense_bf16


def embed(model: torch.nn.Module, stats: dict[str, np.ndarray], magnitudes: np.ndarray) -> np.ndarray:
    """Embeddings of a batch of mixtures (``torch.inference_mode``; dense layer in bf16 where the CPU has native bf16).

    Args:
        model: a DeepClusteringNet in eval mode.
        stats: input normalization (``{"mean": (F,), "std": (F,)}``) from the checkpoint.
        magnitudes: (B, F, T) float, |STFT| of mic 1.

    Returns:
        (B, F, T, D) float32, unit-norm embeddings.
    """
    x = torch.from_numpy(network_input(magnitudes, stats))  # (B, T, F)
    with torch.inference_mode(), dense_autocast(model, inference_dense_bf16()):
        return model(x).transpose(1, 2).numpy()  # (B, F, T, D)


def cluster_labels(embeddings: np.ndarray, active: np.ndarray, num_sources: int, random_state: int) -> np.ndarray:
    """K-means with K = num_sources on the embeddings of the non-silent bins, then every bin to its nearest center.

    Args:
        embeddings: (F, T, D) float. active: (F, T) bool (bins the centers are fitted on).
        num_sources: K (explicit). random_state: K-means seed.

    Returns:
        (F, T) int64 in 0..K-1.

    Raises:
        ValueError: fewer active bins than sources.
    """
    f, t, d = embeddings.shape
    fit = embeddings[active]  # (bins, D)
    if fit.shape[0] < num_sources:
        raise ValueError(f"{fit.shape[0]} non-silent bins cannot form {num_sources} clusters")
    # one OpenMP thread: scikit-learn's K-means sums in a different order on more threads, which moves a few bins and
    # the SDR by hundredths of a dB; one thread gives the same labels in a Dask worker, in-process and in dcsep
    with threadpool_limits(1, user_api="openmp"):
        km = KMeans(n_clusters=num_sources, n_init=3, random_state=random_state).fit(fit)
        return km.predict(embeddings.reshape(-1, d)).reshape(f, t)  # (F, T)
