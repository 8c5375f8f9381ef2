"""The deep-clustering affinity loss in its low-rank form.

Hershey et al. 2016, eq. 2-3; Tzinis et al. 2019, eq. 6 (the same objective):

    |V V^T - Y Y^T|_F^2 = |V^T V|_F^2 - 2 |V^T Y|_F^2 + |Y^T Y|_F^2

with V (L, D) embeddings and Y (L, C) targets over the L bins of one mixture. The right side costs O(L D C) and
never forms the L x L affinity matrices. Silent bins get weight 0 (rows of V and Y multiplied by the weight).
Each mixture's loss is divided by (number of weighted bins)^2, so it is the mean squared affinity error per bin pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def one_hot_targets(labels: torch.Tensor, num_sources: int) -> torch.Tensor:
    """Labels (B, ...) int in 0..N-1 -> one-hot (B, ..., N) float32. N is explicit: a source that owns no bin
    still has its (empty) column.

    Raises:
        ValueError: a label outside 0..N-1.
    """
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_sources):
        raise ValueError(f"labels span {int(labels.min())}..{int(labels.max())} but num_sources is {num_sources}")
    return F.one_hot(labels.long(), num_sources).float()


def affinity_loss(embeddings: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Low-rank |VV^T - YY^T|_F^2 per mixture, averaged over the batch.

    Args:
        embeddings: V, (B, L, D) float.
        targets: Y, (B, L, C) float: one-hot (DS, BPD; C = N) or real-valued (RPD; C = 1).
        weights: (B, L) float, 0 for bins left out (silent), 1 otherwise. None: all bins count.

    Returns:
        scalar tensor: mean over the batch of |VV^T - YY^T|_F^2 / (sum of weights)^2.
    """
    if embeddings.shape[:2] != targets.shape[:2]:
        raise ValueError(f"embeddings {tuple(embeddings.shape)} and targets {tuple(targets.shape)} differ in (B, L)")
    if weights is None:
        weights = embeddings.new_ones(embeddings.shape[:2])
    v = embeddings * weights.unsqueeze(-1)  # (B, L, D)
    y = targets * weights.unsqueeze(-1)  # (B, L, C)
    vtv = torch.bmm(v.transpose(1, 2), v)  # (B, D, D)
    vty = torch.bmm(v.transpose(1, 2), y)  # (B, D, C)
    yty = torch.bmm(y.transpose(1, 2), y)  # (B, C, C)
    per_mixture = vtv.pow(2).sum((1, 2)) - 2 * vty.pow(2).sum((1, 2)) + yty.pow(2).sum((1, 2))  # (B,)
    norm = weights.sum(1).clamp_min(1.0) ** 2  # (B,)
    return (per_mixture / norm).mean()
