"""Self-describing checkpoints, written atomically: ``{model, optimizer, config, stats, epoch, step, best_val,
history, rng, versions}``. A checkpoint alone rebuilds its model (no other file needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from spatialdc.pipeline.atomic import atomic_path

from .config import TrainConfig
from .model import DeepClusteringNet, build_model


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (a crash never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint on the CPU.

    Raises:
        FileNotFoundError: no such file. ValueError: not a checkpoint of this project.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train one with `dctrain`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or not {"model", "config", "stats"} <= set(state):
        raise ValueError(f"{path} is not a dctrain checkpoint (needs model, config and stats)")
    return state


def model_from_checkpoint(state: dict) -> tuple[DeepClusteringNet, TrainConfig]:
    """Rebuild the model from the checkpoint's config and load its weights (eval mode)."""
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config, num_freqs=len(state["stats"]["mean"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, config
