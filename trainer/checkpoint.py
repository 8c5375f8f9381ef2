"""Self-describing checkpoints, written atomically.

Two kinds, both a dict that alone rebuilds its model:

- a **training** checkpoint (``last.pt``): ``{model, optimizer, scheduler, config, stats, epoch, step, best_val,
  history, rng, versions, world_size}``, everything a run needs to resume;
- an **inference** checkpoint (``best.pt``, the shipped models): ``{format, model, config, stats, epoch, step,
  best_val, history, versions}`` (:func:`inference_state`): weights, input statistics, config and provenance, no
  optimizer or RNG state (about a third of the size).
"""

from __future__ import annotations

from pathlib import Path

import torch

from spatialdc.pipeline.atomic import atomic_path

from .config import TrainConfig
from .model import DeepClusteringNet, build_model

INFERENCE_FORMAT = "spatialdc-model/1"
REQUIRED = ("model", "config", "stats")
INFERENCE_KEYS = ("model", "config", "stats", "epoch", "step", "best_val", "history", "versions", "precision", "card")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (a crash never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def inference_state(state: dict) -> dict:
    """What inference needs of a training state: weights, input statistics, config and provenance (no optimizer,
    scheduler or RNG state)."""
    return {"format": INFERENCE_FORMAT, **{k: state[k] for k in INFERENCE_KEYS if k in state}}


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint (training or inference) on the CPU and check that it is one of this project's.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or not a dctrain checkpoint (the message names
            the file and what is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train one with `dctrain` (it writes RUN/best.pt) or "
                                f"use a shipped model (`dcsep --list-models`)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); it is not a file `dctrain` "
                         f"wrote, or it is truncated: give RUN/best.pt of a dctrain run") from exc
    missing = [k for k in REQUIRED if not (isinstance(state, dict) and k in state)]
    if missing:
        raise ValueError(f"{path} is not a dctrain checkpoint: it lacks {missing}; give RUN/best.pt of a dctrain run")
    return state


def model_from_checkpoint(state: dict, path: str | Path = "checkpoint") -> tuple[DeepClusteringNet, TrainConfig]:
    """Rebuild the model from the checkpoint's config and load its weights (eval mode, float32).

    Raises:
        ValueError: a config this version cannot build, or weights that do not fit the model it describes
            (a foreign or damaged checkpoint).
    """
    try:
        config = TrainConfig.from_dict(state["config"])
        model = build_model(config, num_freqs=len(state["stats"]["mean"]))
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"{path}: its weights or config do not make a deep-clustering model of this project "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from exc
    model.eval()
    return model, config


def load_model(path: str | Path) -> tuple[DeepClusteringNet, dict]:
    """Load and check a checkpoint and rebuild its model: ``(model in eval mode, the checkpoint dict)``.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_checkpoint` and :func:`model_from_checkpoint`.
    """
    state = load_checkpoint(path)
    model, _ = model_from_checkpoint(state, path)
    return model, state
