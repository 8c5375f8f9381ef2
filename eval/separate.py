"""Separation by clustering embeddings (Tzinis et al. 2019, Sec. 3.3; Hershey et al. 2016, Sec. 3), the one core
that ``dceval``, its HTML report, ``dcsep`` and :class:`~spatialdc.eval.separator.Separator` call:

    model = load_model("fm2-bpd")                                   # a checkpoint path or a shipped model's name
    emb = embed(model.net, model.stats, magnitudes)                  # (B, F, T, D) unit embeddings
    sep = separate_mixture(emb[0], magnitudes[0], 2, seed=0, key="mixture id", mixture=waveform)
    sep.labels, sep.masks, sep.stems                                 # (F, T), (N, F, T), (N, S)

K-means is fitted on the embeddings of the bins within ``cluster_db`` dB of the mixture's loudest bin, every bin
then goes to its nearest centre; its ``random_state`` comes from one rule, :func:`kmeans_random_state`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from spatialdc import models
from spatialdc.pipeline import features
from spatialdc.pipeline.rng import random_state_for
from spatialdc.trainer.checkpoint import load_checkpoint, model_from_checkpoint
from spatialdc.trainer.data import network_input
from spatialdc.trainer.device import resolve_device
from spatialdc.trainer.model import DeepClusteringNet
from spatialdc.trainer.precision import dense_autocast, resolve

DEFAULT_CLUSTER_DB = 20.0  # K-means fit range below the loudest bin (dB), chosen on fm2 valid (RESULTS.md)


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint's network, ready for inference, with what the tools read beside it.

    Attributes:
        net: the network in eval mode, float32, on ``device``; shared by every caller of :func:`load_model` with
            the same file and device: do not train or modify it.
        stats: input normalization ``{"mean": (F,), "std": (F,)}`` float32. target: ``"ds"``, ``"bpd"`` or
            ``"rpd"``, what it was trained on. config: the training config (a dict, provenance only).
        card: a shipped model's card, else None. path: the file it was read from.
    """

    net: DeepClusteringNet
    stats: dict
    target: str
    config: dict
    card: dict | None
    path: Path


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint (``dctrain``'s ``RUN/best.pt``, or a shipped model by name, :mod:`spatialdc.models`) and
    rebuild its network from its model args; cached per file (resolved path, modification time and size) and
    device, so every tool and every call in a process reads a file once.

    Args:
        checkpoint: a path; a name such as ``"fm2-bpd"`` when no file of that name exists.
        device: where the network computes: ``"cpu"``, ``"auto"`` (a CUDA GPU where torch sees one), ``"cuda"``,
            ``"cuda:N"`` or a ``torch.device`` (:func:`spatialdc.trainer.device.resolve_device`).

    Raises:
        FileNotFoundError: neither a file nor a shipped model's name (the message lists the shipped models).
        ValueError: not a checkpoint of this project, or weights that do not fit its model args; CUDA asked for
            where torch sees none.
    """
    device = resolve_device(device)
    path = Path(checkpoint)
    if not path.is_file() and str(checkpoint) in models.names():
        with models.model_path(str(checkpoint)) as shipped:  # a real file in an installed or cloned package
            path = shipped
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found, and no shipped model has that name (shipped: "
                                f"{', '.join(models.names()) or 'none'}); give RUN/best.pt of a dctrain run or a "
                                f"name from `dcsep --list-models`")
    stat = path.stat()
    return _load_model(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))


@functools.lru_cache(maxsize=4)
def _load_model(path: str, _mtime_ns: int, _size: int, device: str) -> LoadedModel:
    state = load_checkpoint(path)
    net = model_from_checkpoint(state, path, device)
    config = state["config"]
    return LoadedModel(net, state["stats"], config.get("target", ""), config, state.get("card"), Path(path))


def inference_dense_bf16(device: torch.device = torch.device("cpu")) -> bool:
    """Whether embeddings are computed with the dense layer in bf16: on the CPU where it has native bf16
    instructions, as ``--precision auto`` trains (:func:`spatialdc.trainer.precision.resolve`); on a GPU never
    (float32: the forward is a small part of separating a mixture there, K-means and BSS Eval the rest)."""
    return device.type == "cpu" and resolve("auto").dense_bf16


def network_outputs(model: DeepClusteringNet, stats: dict[str, np.ndarray], magnitudes: np.ndarray,
                    device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward pass (``torch.inference_mode``; dense layer in bf16 where the CPU has native bf16) for separation
    and counting, on the device of the model's weights; the whole batch at once.

    Args:
        model: a DeepClusteringNet in eval mode. stats: the checkpoint's input normalization,
            ``{"mean": (F,), "std": (F,)}``. magnitudes: (B, F, T) float, |STFT| of mic 1.
        device: where the model is (default: where its weights are).

    Returns:
        (network input (B, T, F) float32, last BLSTM layer's outputs (B, T, 2H) float32, unit-norm embeddings
        (B, F, T, D) float32), as numpy arrays.
    """
    x = network_input(magnitudes, stats)  # (B, T, F)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    with torch.inference_mode(), dense_autocast(model, inference_dense_bf16(device), device.type):
        v, h = model.embed_with_states(torch.from_numpy(x).to(device))  # (B, T, F, D), (B, T, 2H)
    return x, h.float().cpu().numpy(), v.transpose(1, 2).cpu().numpy()


def embed(model: DeepClusteringNet, stats: dict[str, np.ndarray], magnitudes: np.ndarray,
          device: str | torch.device | None = None) -> np.ndarray:
    """Embeddings of a batch of mixtures: (B, F, T) float magnitudes -> (B, F, T, D) float32 unit-norm embeddings
    (:func:`network_outputs`). Torch's LSTM gives a mixture other low bits in a batch of one than in larger ones:
    embed mixtures in the same batches to get the same bits."""
    return network_outputs(model, stats, magnitudes, device)[2]


def kmeans_random_state(seed: int, key: object) -> int:
    """The K-means ``random_state`` of a mixture: keyed by the user's ``seed`` and the mixture's ``key`` (dceval's
    mixture id, a recording's chunk number), :func:`spatialdc.pipeline.rng.random_state_for`."""
    return random_state_for(seed, key, "kmeans")


def cluster_labels(embeddings: np.ndarray, active: np.ndarray, num_sources: int, random_state: int) -> np.ndarray:
    """K-means with K = num_sources on the embeddings of the non-silent bins, then every bin to its nearest center.

    Args:
        embeddings: (F, T, D) float. active: (F, T) bool (bins the centers are fitted on).
        num_sources: K (explicit). random_state: K-means seed.

    Returns:
        (F, T) int in 0..K-1.

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


@dataclass(frozen=True)
class Separation:
    """One mixture separated by :func:`separate_mixture`.

    Attributes:
        labels: (F, T) int, the stem of every bin, 0..N-1; all 0 for N = 1; all -1 where the mixture has fewer
            bins within ``cluster_db`` of its loudest than N (nothing to cluster: every stem gets 1/N of each bin).
        masks: (N, F, T) float32 in [0, 1] summing to 1 over N: binary (one-hot labels), or 1/N for label -1.
        stems: (N, S) float32, the mixture through each mask (STFT, mask, inverse STFT; for N = 1 or labels -1, the
            mixture divided by N without a transform), or None when no mixture waveform was given.
    """

    labels: np.ndarray
    masks: np.ndarray
    stems: np.ndarray | None

    def reordered(self, order: Sequence[int]) -> "Separation":
        """The same separation with its stems in another order: new stem i is old stem ``order[i]`` (labels -1
        stay -1)."""
        order = np.asarray(order)
        labels = np.where(self.labels >= 0, np.argsort(order)[np.maximum(self.labels, 0)], -1)  # old k -> new
        return Separation(labels, self.masks[order], None if self.stems is None else self.stems[order])


def separate_mixture(embeddings: np.ndarray, magnitude: np.ndarray, num_speakers: int, *, seed: int, key: object,
                     cluster_db: float = DEFAULT_CLUSTER_DB, mixture: np.ndarray | None = None) -> Separation:
    """Embeddings -> K-means -> binary masks -> stems: separate one mixture (Tzinis et al. 2019, Sec. 3.3).

    Args:
        embeddings: (F, T, D) float, the mixture's embeddings (:func:`embed`).
        magnitude: (F, T) float, |STFT| of mic 1 (which bins are loud enough to fit the centres on).
        num_speakers: N >= 1, the number of clusters (explicit: true, given or estimated by the caller).
        seed, key: K-means' ``random_state`` is :func:`kmeans_random_state` of them.
        cluster_db: centres are fitted on the bins within this many dB of the loudest bin.
        mixture: (S,) float mic-1 waveform whose STFT is ``magnitude``; None: no stems.

    Returns:
        :class:`Separation`.

    Raises:
        ValueError: ``num_speakers`` < 1, or ``embeddings`` and ``magnitude`` of other (F, T).
    """
    if num_speakers < 1:
        raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
    if embeddings.shape[:2] != magnitude.shape:
        raise ValueError(f"embeddings {embeddings.shape} do not match the magnitude {magnitude.shape} in (F, T)")
    active = features.active_bins(magnitude, cluster_db)  # (F, T)
    if num_speakers > 1 and active.sum() >= num_speakers:
        labels = cluster_labels(embeddings, active, num_speakers, kmeans_random_state(seed, key))
        masks = features.binary_masks(labels, num_speakers)  # (N, F, T)
        stems = None if mixture is None else features.apply_masks(mixture, masks)  # (N, S)
        return Separation(labels, masks, stems)
    labels = np.full(magnitude.shape, 0 if num_speakers == 1 else -1)  # (F, T)
    masks = np.full((num_speakers,) + magnitude.shape, 1 / num_speakers, np.float32)  # (N, F, T)
    stems = None if mixture is None else np.repeat(np.asarray(mixture)[None] / num_speakers, num_speakers,
                                                   axis=0).astype(np.float32)  # (N, S)
    return Separation(labels, masks, stems)
