"""Estimating the number of speakers of a mixture from the deep-clustering network.

Two estimators:

- **The count head** (the default when a ``count_head.json`` exists beside the checkpoint): a small learned head on
  the frozen network, in the spirit of "Learning to Cluster" (Meier et al. 2018), which learns the cluster count from
  the network's representation instead of fixing a rule. Per mixture it reads a fixed-size summary of what the
  network computes (:func:`count_features`): the second-moment matrix C = V^T V / L of the unit embeddings of the L
  non-silent bins and its eigenvalues, the mean and standard deviation over time of the last BLSTM layer's outputs,
  and those of the normalized network input; a multinomial logistic regression (scikit-learn, on standardized
  features) maps them to a count in 1..max. It is fitted by ``dccount`` on training mixtures of known count (the
  datasets' N; single sources of them give count 1) and chosen on validation mixtures.
- **The eigenvalue rule** (:func:`estimate_num_speakers`, no training): with ideal embeddings the bins of each source
  sit at one of K orthogonal unit vectors (Hershey et al. 2016, Sec. 3: V V^T approximates Y Y^T), so C has K
  non-zero eigenvalues, each the share of bins a source owns; count those above a share threshold. With our
  30-minute models it is barely above chance (RESULTS.md): models trained on 2 speakers do not give a third speaker
  a direction of its own.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from spatialdc.pipeline import features
from spatialdc.pipeline.atomic import write_text_atomic
from spatialdc.pipeline.rng import rng_for
from spatialdc.pipeline.shard_index import file_sha256
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.lineage import weights_sha256

from .separate import network_outputs

log = logging.getLogger(__name__)
DEFAULT_SHARE = 0.12  # smallest bin share of a counted source; a rule of thumb for well-trained embeddings, NOT
# validated: with the 30-minute models of RESULTS.md no threshold exceeds 55 % accuracy (benchmarks/count.py)
COUNT_HEAD_VERSION = 1
COUNT_HEAD_NAME = "count_head.json"  # beside the checkpoint
BATCH = 16  # mixtures per forward pass of collect_features


def embedding_spectrum(embeddings: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Eigenvalues of C = V^T V / L over the active bins, descending; they sum to 1 for unit embeddings.

    Args:
        embeddings: (F, T, D) float. active: (F, T) bool.

    Returns:
        (D,) float64.

    Raises:
        ValueError: no active bin.
    """
    return np.sort(np.linalg.eigvalsh(_second_moment(embeddings, active)))[::-1]


def _second_moment(embeddings: np.ndarray, active: np.ndarray) -> np.ndarray:
    v = embeddings[active].astype(np.float64)  # (L, D)
    if v.shape[0] == 0:
        raise ValueError("no non-silent bin: cannot estimate the number of speakers of a silent mixture")
    return v.T @ v / v.shape[0]


def estimate_num_speakers(embeddings: np.ndarray, active: np.ndarray, max_speakers: int = 3,
                          share: float = DEFAULT_SHARE) -> int:
    """Number of eigenvalues of :func:`embedding_spectrum` above ``share``, clipped to 1..``max_speakers``.

    Raises:
        ValueError: no active bin, or ``max_speakers`` < 1.
    """
    if max_speakers < 1:
        raise ValueError(f"max_speakers must be >= 1, got {max_speakers}")
    ev = embedding_spectrum(embeddings, active)
    return int(np.clip(np.count_nonzero(ev > share), 1, max_speakers))


def count_features(x: np.ndarray, h: np.ndarray, embeddings: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The count head's input for one mixture (see the module docstring).

    Args:
        x: (T, F) normalized network input. h: (T, 2H) BLSTM outputs. embeddings: (F, T, D). active: (F, T) bool.

    Returns:
        (P,) float64, P = D + D (D + 1) / 2 + 4 H + 2 F + 1: eigenvalues of C, upper triangle of C, mean and std of
        h over time, mean and std of x over time, fraction of active bins.

    Raises:
        ValueError: no active bin.
    """
    c = _second_moment(embeddings, active)
    spectrum = np.sort(np.linalg.eigvalsh(c))[::-1]
    return np.concatenate([spectrum, c[np.triu_indices(c.shape[0])], h.mean(0), h.std(0), x.mean(0), x.std(0),
                           [active.mean()]]).astype(np.float64)


@dataclass
class CountHead:
    """Standardization + multinomial logistic regression over :func:`count_features`.

    Attributes:
        classes: the counts it can return, ascending (e.g. [1, 2, 3]).
        mean, scale: (P,) standardization. coef: (C, P), intercept: (C,) for C = len(classes) (or one row for two
        classes, scikit-learn's binary form).
        checkpoint_sha256: SHA-256 of the checkpoint file it was fitted on. weights_sha256: of that checkpoint's
            weights (:func:`spatialdc.trainer.lineage.weights_sha256`; empty in heads of earlier versions): a head
            is only valid with that network, and the weights' hash survives a re-shipped card.
        provenance: how it was fitted (data, sizes, regularization, validation accuracy, command).
    """

    classes: list[int]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    checkpoint_sha256: str
    weights_sha256: str = ""
    provenance: dict = field(default_factory=dict)

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        """(B, P) features -> (B, C) probabilities of each class."""
        z = ((np.atleast_2d(feats) - self.mean) / self.scale) @ self.coef.T + self.intercept  # (B, C) or (B, 1)
        if z.shape[1] == 1:  # binary: the row scores the second class
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def cluster_db(self) -> float | None:
        """The silence threshold (dB under the loudest bin) of the bins it was fitted on, if recorded."""
        return self.provenance.get("cluster_db")

    def predict(self, feats: np.ndarray, max_speakers: int | None = None) -> np.ndarray:
        """(B, P) features -> (B,) int counts (the most probable class not above ``max_speakers``)."""
        return self.most_probable(self.probabilities(feats), max_speakers)

    def most_probable(self, probs: np.ndarray, max_speakers: int | None = None) -> np.ndarray:
        """(B, C) class probabilities -> (B,) int counts, the most probable class not above ``max_speakers``.

        Raises:
            ValueError: no class is <= ``max_speakers``.
        """
        p = np.atleast_2d(probs)
        classes = np.asarray(self.classes)
        if max_speakers is not None:
            if not np.any(classes <= max_speakers):
                raise ValueError(f"the count head knows counts {self.classes}, none <= {max_speakers}")
            p = np.where(classes[None] <= max_speakers, p, -1.0)
        return classes[np.argmax(p, axis=1)]

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        write_text_atomic(path, json.dumps({
            "count_head_version": COUNT_HEAD_VERSION, "classes": list(map(int, self.classes)),
            "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(), "checkpoint_sha256": self.checkpoint_sha256,
            "weights_sha256": self.weights_sha256, "provenance": self.provenance}, indent=1))

    @classmethod
    def load(cls, path: str | Path, checkpoint: str | Path | None = None) -> "CountHead":
        """Read a head written by :meth:`save`.

        Raises:
            FileNotFoundError: no file. ValueError: not a count head, another version, or fitted on another network
            than ``checkpoint`` (when given).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"count head {path} not found; fit one with `dccount --checkpoint ...`")
        try:
            d = json.loads(path.read_text())
            head = cls([int(c) for c in d["classes"]], np.asarray(d["mean"]), np.asarray(d["scale"]),
                       np.atleast_2d(np.asarray(d["coef"])), np.asarray(d["intercept"]), d["checkpoint_sha256"],
                       weights_sha256=d.get("weights_sha256", ""), provenance=d.get("provenance", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a count head written by dccount ({exc})") from exc
        if d.get("count_head_version") != COUNT_HEAD_VERSION:
            raise ValueError(f"{path}: count head version {d.get('count_head_version')}, this code reads "
                             f"{COUNT_HEAD_VERSION}; fit it again with dccount")
        if checkpoint is not None and not head.fits(checkpoint):
            raise ValueError(f"{path} was fitted on another network than {checkpoint}; fit it again with dccount "
                             f"--checkpoint {checkpoint}")
        return head

    def fits(self, checkpoint: str | Path) -> bool:
        """Whether this head was fitted on the network of ``checkpoint``: the same weights (heads that record
        them), else the same file."""
        if self.weights_sha256:
            return checkpoint_weights_sha256(checkpoint) == self.weights_sha256
        return file_sha256(checkpoint) == self.checkpoint_sha256


@functools.lru_cache(maxsize=8)
def _weights_sha256(path: str, _mtime_ns: int) -> str:
    return weights_sha256(load_checkpoint(path)["model"])


def checkpoint_weights_sha256(checkpoint: str | Path) -> str:
    """:func:`~spatialdc.trainer.lineage.weights_sha256` of a checkpoint file's weights (cached per file)."""
    path = Path(checkpoint).resolve()
    return _weights_sha256(str(path), path.stat().st_mtime_ns)


def default_head_path(checkpoint: str | Path) -> Path:
    """Where ``dccount`` puts a checkpoint's head by default: ``count_head.json`` beside it."""
    return Path(checkpoint).with_name(COUNT_HEAD_NAME)


def head_paths(checkpoint: str | Path) -> list[Path]:
    """Where a checkpoint's count head is looked for: ``<name>.count_head.json`` beside it (how shipped models
    carry theirs: ``models/NAME.count_head.json``), then ``count_head.json`` beside it (``dccount``'s default)."""
    return [Path(checkpoint).with_suffix(".count_head.json"), default_head_path(checkpoint)]


def resolve_count_head(checkpoint: str | Path, count_head: str | Path | None) -> str | None:
    """The count head ``--speakers auto`` uses: ``count_head`` if given, else the first of :func:`head_paths` beside
    the checkpoint that exists (a shipped model's own head), else None (the eigenvalue rule, with a warning).

    Raises:
        FileNotFoundError: a given head is missing. ValueError: a head fitted on another network.
    """
    found = [p for p in head_paths(checkpoint) if p.is_file()]
    path = Path(count_head) if count_head else (found[0] if found else default_head_path(checkpoint))
    if not path.is_file():
        if count_head:
            raise FileNotFoundError(f"count head {path} not found; fit one with `dccount --checkpoint {checkpoint}`")
        log.warning("no count head beside %s: estimating the count with the eigenvalue rule, which is near chance "
                    "with our models (RESULTS.md); fit a head with `dccount --checkpoint %s ...`", checkpoint,
                    checkpoint)
        return None
    CountHead.load(path, checkpoint)  # refuses a head fitted on another network
    return str(path)


def fit_count_head(feats: np.ndarray, counts: np.ndarray, c: float, checkpoint_sha256: str,
                   provenance: dict | None = None, weights_sha256: str = "") -> CountHead:
    """Fit standardization + scikit-learn's multinomial logistic regression (L2, inverse strength ``c``).

    Args:
        feats: (M, P) from :func:`count_features`. counts: (M,) int true counts (at least two distinct).

    Raises:
        ValueError: a single class.
    """
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(counts)
    if classes.size < 2:
        raise ValueError(f"the count head needs mixtures of at least two counts, got only {classes.tolist()}")
    mean, scale = feats.mean(0), feats.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    lr = LogisticRegression(C=c, max_iter=5000).fit((feats - mean) / scale, counts)
    return CountHead([int(k) for k in lr.classes_], mean, scale, lr.coef_.copy(), lr.intercept_.copy(),
                     checkpoint_sha256, weights_sha256=weights_sha256, provenance=dict(provenance or {}, C=c))


def collect_features(model, stats: dict, patterns: list[str], limit: int, single_share: float, cluster_db: float,
                     seed: int, desc: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The count head's training examples: :func:`count_features` and true counts of the first ``limit`` mixtures of
    each shard glob, plus, for a ``single_share`` of them (drawn with ``rng_for(seed, "count-single", glob, i)``),
    one of their sources alone (count 1) scaled to the mixture's RMS (so loudness does not tell the count).

    Args:
        model: a DeepClusteringNet in eval mode. stats: its input normalization. cluster_db: the bins summarized
            are those within this many dB of the loudest. desc, progress: the progress bar.

    Returns:
        ((M, P) float64 features, (M,) int counts).

    Raises:
        FileNotFoundError: a glob matches no shard.
    """
    feats, counts = [], []
    for pattern in patterns:
        data = ShardSet(expand_shards(pattern))
        idx = list(range(min(limit, len(data))))
        for lo in tqdm(range(0, len(idx), BATCH), desc=f"{desc} {pattern}", disable=not progress, unit="batch"):
            items, mags = [], []
            for i in idx[lo: lo + BATCH]:
                d = data.read(i, ("mixture", "sources", "magnitude"))
                items.append((i, data.num_speakers(i)))
                mags.append(d["magnitude"])
                rng = rng_for(seed, "count-single", pattern, i)
                if single_share > 0 and rng.random() < single_share:
                    src = d["sources"][int(rng.integers(d["sources"].shape[0]))].astype(np.float64)
                    src *= np.sqrt(np.mean(d["mixture"][0] ** 2) / max(np.mean(src ** 2), 1e-12))
                    items.append((i, 1))
                    mags.append(np.abs(features.stft(src)).astype(np.float32))
            x, h, v = network_outputs(model, stats, np.stack(mags))
            for k, (_, n) in enumerate(items):
                active = features.active_bins(mags[k], cluster_db)
                if active.any():
                    feats.append(count_features(x[k], h[k], v[k], active))
                    counts.append(n)
        data.close()
    return np.stack(feats), np.asarray(counts)
