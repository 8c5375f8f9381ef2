"""Bootstrapped labels: a network's embeddings label the bins where the spatial labels are not to be trusted.

In rooms the spatial labels (:func:`spatialdc.pipeline.labels.spatial_labels`) are right on the direct-path bins
(:func:`spatialdc.pipeline.label_weights.direct_path_bins`: onsets with the most confident labels) and wrong
elsewhere. A teacher network trained on those bins (``dctrain --label-weights direct-path``) embeds every bin; the
rule below turns its embeddings into labels for the other bins. The same two-stage scheme is Seetharaman, Wichern,
Le Roux and Pardo, "Bootstrapping single-channel source separation via unsupervised spatial clustering on stereo
mixtures" (ICASSP 2019: a network trained on the confident spatial labels, then used as the teacher) and Drude,
Hasenklever and Haeb-Umbach, "Unsupervised training of a deep clustering model for multichannel blind source
separation" (ICASSP 2019: a spatial mixture model as the teacher of a deep-clustering network).

Per mixture, with K its known number of sources:

1. the confident bins: :func:`~spatialdc.pipeline.label_weights.direct_path_bins` of the spatial labels with
   ``keep_share`` (the bins ``dctrain --label-weights direct-path --keep-share`` trains on);
2. the network's clusters (:data:`RULES`):

   - ``kmeans``: K-means (K clusters) on the unit embeddings of the bins within ``cluster_db`` dB of the loudest,
     every bin to its nearest centre, the clusters matched to the spatial labels by the permutation that agrees
     with them on the most confident bins (the plain rule);
   - ``seeded``: the same K-means started from the mean embedding of each spatial label's confident bins, so that
     cluster k starts as spatial label k (then matched as ``kmeans``, which almost always keeps k -> k);
   - ``nearest-mean``: no K-means; every bin to the nearest (largest dot product) of those K mean embeddings;
   - ``posterior``: the spectral and the spatial evidence together: every bin to the k maximizing
     ``concentration * <v, mu_k> + log p_spatial(k)``, i.e. the embedding v as a von Mises-Fisher draw around the
     mean mu_k of label k's confident bins, times the posterior of spatial cluster k given the bin's NPD
     (:func:`~spatialdc.pipeline.label_weights.cluster_posteriors`), as Drude and Haeb-Umbach, "Tight integration of
     spatial and spectral features for BSS with deep clustering embeddings" (Interspeech 2017) join a
     deep-clustering vMF model with a spatial mixture model. Large ``concentration``: ``nearest-mean``;

3. the label: the spatial label on the confident bins, the network's cluster elsewhere.

A mixture whose confident bins miss a spatial label (no anchor for it), or with fewer loud bins than K, keeps its
spatial labels (``fallback`` True).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from spatialdc.pipeline import features
from spatialdc.pipeline.label_quality import contingency
from spatialdc.pipeline.label_weights import bpd_confidence, cluster_posteriors, direct_path_bins

from .separate import DEFAULT_CLUSTER_DB, kmeans_random_state

RULES = ("kmeans", "seeded", "nearest-mean", "posterior")


@dataclass(frozen=True)
class BootstrapSettings:
    """How bootstrapped labels are made (recorded in every label sidecar).

    Attributes:
        rule: one of :data:`RULES` (the module text).
        keep_share: the confident bins: at most this share of the non-silent bins (``direct_path_bins``), in (0, 1].
        cluster_db: K-means centres are fitted on the bins within this many dB of the loudest (as ``dceval``).
        seed: with the mixture id, K-means' ``random_state`` (:func:`~spatialdc.eval.separate.kmeans_random_state`).
        concentration: with ``posterior``, the weight of the embeddings' dot products against the spatial
            log-posteriors (> 0).

    Raises:
        ValueError: an unknown rule, a share outside (0, 1] or a concentration <= 0 (naming the value).
    """

    rule: str = "posterior"
    keep_share: float = 0.5
    cluster_db: float = DEFAULT_CLUSTER_DB
    seed: int = 0
    concentration: float = 10.0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule {self.rule!r} is not one of {RULES}")
        if not 0 < self.keep_share <= 1:
            raise ValueError(f"keep_share must be in (0, 1], got {self.keep_share}")
        if not self.concentration > 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BootLabels:
    """One mixture's bootstrapped labels.

    Attributes:
        labels: (F, T) uint8 in 0..K-1, numbered as the spatial labels (0: the smallest delay).
        confident: (F, T) bool, the bins that kept their spatial label.
        fallback: True where the mixture kept all its spatial labels (see the module text).
    """

    labels: np.ndarray
    confident: np.ndarray
    fallback: bool


def confident_bins(magnitude: np.ndarray, npd: np.ndarray, spatial: np.ndarray, num_sources: int,
                   max_delay_samples: float, keep_share: float) -> np.ndarray:
    """The bins whose spatial label is kept: :func:`~spatialdc.pipeline.label_weights.direct_path_bins` (onsets, the
    most confident of them by :func:`~spatialdc.pipeline.label_weights.bpd_confidence`, at most ``keep_share`` of
    the non-silent bins).

    Args:
        magnitude: (F, T) float, |STFT| of mic 1. npd: (F, T) float, samples. spatial: (F, T) uint8 labels.
        num_sources: K. max_delay_samples: d fs / c. keep_share: in (0, 1].

    Returns:
        (F, T) bool.
    """
    active = features.active_bins(magnitude)  # (F, T)
    conf = bpd_confidence(npd, spatial, active, num_sources, max_delay_samples)  # (F, T) in [0, 1]
    return direct_path_bins(magnitude, conf, active, keep_share)


def match_clusters(clusters: np.ndarray, spatial: np.ndarray, confident: np.ndarray, num_sources: int) -> np.ndarray:
    """The network's clusters renumbered as the spatial labels: the permutation under which they agree on the most
    confident bins (Hungarian method on the (K, K) contingency table, the best of all K! permutations).

    Args:
        clusters: (F, T) int in 0..K-1. spatial: (F, T) int in 0..K-1. confident: (F, T) bool. num_sources: K.

    Returns:
        (F, T) uint8, cluster c renamed to the spatial label it agrees with most.
    """
    counts = contingency(clusters, spatial, num_sources, confident)  # (K, K): [cluster, spatial label]
    rows, cols = linear_sum_assignment(counts, maximize=True)
    rename = np.empty(num_sources, np.uint8)
    rename[rows] = cols
    return rename[clusters]


def anchor_means(embeddings: np.ndarray, spatial: np.ndarray, confident: np.ndarray,
                 num_sources: int) -> np.ndarray | None:
    """The mean embedding of each spatial label's confident bins, scaled to unit norm: (K, D) float64, or None when
    a label has no confident bin."""
    means = []
    for k in range(num_sources):
        sel = confident & (spatial == k)  # (F, T)
        if not sel.any():
            return None
        m = embeddings[sel].astype(np.float64).mean(axis=0)  # (D,)
        means.append(m / max(float(np.linalg.norm(m)), 1e-12))
    return np.stack(means)


def joint_labels(embeddings: np.ndarray, anchors: np.ndarray, posteriors: np.ndarray | None,
                 concentration: float) -> np.ndarray:
    """The ``posterior`` rule's label of every bin: argmax over k of concentration * <v, mu_k> + log p_spatial(k).

    Args:
        embeddings: (F, T, D) unit embeddings v. anchors: (K, D) unit means mu_k. posteriors: (K, F, T) spatial
            cluster posteriors (:func:`~spatialdc.pipeline.label_weights.cluster_posteriors`), or None (no spatial
            evidence: the nearest mean). concentration: > 0.

    Returns:
        (F, T) int in 0..K-1, numbered as the anchors.
    """
    score = concentration * np.einsum("ftd,kd->kft", embeddings.astype(np.float64), anchors)  # (K, F, T)
    if posteriors is not None:
        score += np.log(np.maximum(posteriors, 1e-12))
    return np.argmax(score, axis=0)


def network_clusters(embeddings: np.ndarray, fit: np.ndarray, anchors: np.ndarray, rule: str,
                     random_state: int) -> np.ndarray:
    """Every bin's cluster under ``rule`` (``kmeans``, ``seeded`` or ``nearest-mean``): (F, T, D) embeddings,
    (F, T) bool fit bins, (K, D) anchors -> (F, T) int. K-means runs on one OpenMP thread (the same labels in any
    process, as :func:`~spatialdc.eval.separate.cluster_labels`)."""
    f, t, d = embeddings.shape
    flat = embeddings.reshape(-1, d)  # (F T, D)
    if rule == "nearest-mean":
        return np.argmax(flat @ anchors.T, axis=1).reshape(f, t)  # (F, T): the largest dot product
    k = anchors.shape[0]
    init = anchors.astype(embeddings.dtype) if rule == "seeded" else "k-means++"
    with threadpool_limits(1, user_api="openmp"):
        km = KMeans(n_clusters=k, init=init, n_init=1 if rule == "seeded" else 3, random_state=random_state)
        return km.fit(embeddings[fit]).predict(flat).reshape(f, t)  # (F, T)


def bootstrap_labels(embeddings: np.ndarray, magnitude: np.ndarray, npd: np.ndarray, spatial: np.ndarray,
                     num_sources: int, max_delay_samples: float, settings: BootstrapSettings,
                     key: object) -> BootLabels:
    """One mixture's bootstrapped labels (the module text).

    Args:
        embeddings: (F, T, D) float unit embeddings of the teacher (:func:`~spatialdc.eval.separate.embed`).
        magnitude: (F, T) float, |STFT| of mic 1. npd: (F, T) float, samples. spatial: (F, T) uint8, the shard's
            BPD labels. num_sources: K, known. max_delay_samples: d fs / c of the mixture's mic pair.
        settings: :class:`BootstrapSettings`. key: the mixture id (K-means' seed with ``settings.seed``).

    Returns:
        :class:`BootLabels`.

    Raises:
        ValueError: embeddings and magnitude of other (F, T).
    """
    if embeddings.shape[:2] != magnitude.shape:
        raise ValueError(f"embeddings {embeddings.shape} do not match the magnitude {magnitude.shape} in (F, T)")
    confident = confident_bins(magnitude, npd, spatial, num_sources, max_delay_samples, settings.keep_share)
    fit = features.active_bins(magnitude, settings.cluster_db)  # (F, T)
    anchors = anchor_means(embeddings, spatial, confident, num_sources)
    if anchors is None or fit.sum() < num_sources or num_sources < 2:
        return BootLabels(spatial.astype(np.uint8), confident, True)
    if settings.rule == "posterior":
        post = cluster_posteriors(npd, spatial, features.active_bins(magnitude), num_sources, max_delay_samples)
        clusters = joint_labels(embeddings, anchors, post, settings.concentration)
    else:
        clusters = network_clusters(embeddings, fit, anchors, settings.rule, kmeans_random_state(settings.seed, key))
    if settings.rule in ("kmeans", "seeded"):
        clusters = match_clusters(clusters, spatial, confident, num_sources)
    labels = np.where(confident, spatial, clusters).astype(np.uint8)  # (F, T)
    return BootLabels(labels, confident, False)
