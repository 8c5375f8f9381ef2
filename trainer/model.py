"""The deep-clustering network: stacked BLSTM -> dense -> one unit-length embedding per TF bin
(Hershey et al. 2016, Sec. 4; Tzinis et al. 2019, Sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig


class DeepClusteringNet(nn.Module):
    """BLSTM embedding network.

    Args:
        num_freqs: F, input frequencies (257).
        hidden: BLSTM units per direction. layers: stacked BLSTM layers.
        embedding_dim: D. dropout: on the output of each BLSTM layer, the last included.

    Input (B, T, F) float32 normalized log magnitude; output (B, T, F, D) float32 unit-norm embeddings.
    """

    def __init__(self, num_freqs: int, hidden: int, layers: int, embedding_dim: int, dropout: float):
        super().__init__()
        # what rebuilds this network: checkpoints store it as "model_args" (DeepClusteringNet(**model_args))
        self.model_args = {"num_freqs": num_freqs, "hidden": hidden, "layers": layers, "embedding_dim": embedding_dim,
                           "dropout": dropout}
        self.num_freqs, self.embedding_dim = num_freqs, embedding_dim
        self.blstm = nn.LSTM(num_freqs, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                             dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * hidden, num_freqs * embedding_dim)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embeddings (B, T, F, D) float32: unit-norm, or with ``normalize=False`` the dense layer's raw output
        (the fused loss normalizes it itself). The arithmetic is the caller's: by default float32 throughout; within
        :func:`spatialdc.trainer.precision.dense_autocast` the dense layer's product in bfloat16, its output back in
        float32."""
        v, _ = self.embed_with_states(x, normalize)
        return v

    def embed_with_states(self, x: torch.Tensor, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, T, F, D) float32, last BLSTM layer's outputs (B, T, 2H) float32); the states feed the
        count head."""
        b, t, f = x.shape
        h, _ = self.blstm(x)  # (B, T, 2H)
        v = self.dense(self.dropout(h))  # (B, T, F * D), bfloat16 under dense_autocast
        v = v.float().view(b, t, f, self.embedding_dim)  # (B, T, F, D)
        return (nn.functional.normalize(v, dim=-1) if normalize else v), h


def build_model(config: TrainConfig, num_freqs: int = 257) -> DeepClusteringNet:
    """The model a training config describes, for spectra of ``num_freqs`` frequencies (a new or resumed run;
    inference rebuilds a checkpoint's model from its ``model_args``,
    :func:`spatialdc.trainer.checkpoint.model_from_checkpoint`)."""
    return DeepClusteringNet(num_freqs, config.hidden, config.layers, config.embedding_dim, config.dropout)
