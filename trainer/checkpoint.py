"""Self-describing checkpoints, written atomically.

Two kinds, both a dict that alone rebuilds its model:

- a **training** checkpoint (``last.pt``, :func:`training_state`): ``{model, model_args, optimizer, scheduler,
  config, stats, epoch, step, best_val, history, rng, versions, world_size, precision, device[, lineage]}``,
  everything a run needs to resume (``lineage``: what came before a run started with ``--init-from``, :mod:`.lineage`);
- an **inference** checkpoint (``best.pt``, the shipped models, :func:`inference_state`): ``{format, model,
  model_args, config, stats, epoch, step, best_val, history, versions, precision, device[, lineage, card]}``: weights,
  what builds the
  network, input statistics, the training config as provenance, no optimizer or RNG state (about a third of the
  size).

``model_args`` (``num_freqs, hidden, layers, embedding_dim, dropout``) is what builds the network; inference rebuilds
it from them alone (:func:`model_from_checkpoint`), never from the training config. Checkpoints written before
``model_args`` existed (e.g. the shipped ``fm2-bpd``) are read through one conversion, :func:`model_args`.

Every tensor of a checkpoint is stored on the CPU, whatever device trained it (``device`` records which one), and
:func:`load_checkpoint` maps a file's tensors to the CPU: a checkpoint loads on any machine, and a run saved on one
device resumes on another.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spatialdc.pipeline.atomic import atomic_path
from spatialdc.pipeline.provenance import package_versions

from .config import TrainConfig
from .device import describe_device, on_cpu
from .model import DeepClusteringNet

INFERENCE_FORMAT = "spatialdc-model/1"
REQUIRED = ("model", "config", "stats")
INFERENCE_KEYS = ("model", "model_args", "config", "stats", "epoch", "step", "best_val", "history", "versions",
                  "precision", "device", "lineage", "card")
MODEL_ARGS = ("num_freqs", "hidden", "layers", "embedding_dim", "dropout")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (a crash never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def training_state(model: DeepClusteringNet, optimizer: torch.optim.Optimizer, scheduler, config: TrainConfig,
                   stats: dict, *, epoch: int, step: int, best_val: float, history: list[dict], world_size: int,
                   precision: str, device: torch.device = torch.device("cpu"), lineage: dict | None = None) -> dict:
    """The training checkpoint after an epoch: everything a resume needs (see the module docstring).

    Args:
        model: the network (not its DDP wrapper). scheduler: the learning-rate scheduler or None.
        stats: input statistics ``{"mean": (F,), "std": (F,)}`` float32. epoch, step: counted so far.
        best_val: the best validation loss so far. history: one dict per epoch (the log's rows).
        world_size: training processes. precision: the step mode's name (:class:`~.precision.StepMode`).
        device: where the model and optimizer state live (their tensors are copied to the CPU).
        lineage: what came before the run's first step (:mod:`spatialdc.trainer.lineage`), None for a run from
            random initialization.

    Returns:
        the dict :func:`save_checkpoint` writes; ``rng`` is torch's global RNG state now (and the CUDA RNG's of
        ``device`` on a GPU), ``versions`` the package versions of this environment, ``device`` its description
        (:func:`~.device.describe_device`).
    """
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    host = on_cpu if device.type != "cpu" else (lambda state: state)  # a CPU run's checkpoint as it always was
    return {"model": host(model.state_dict()), "model_args": dict(model.model_args),
            "optimizer": host(optimizer.state_dict()), "config": config.to_dict(), "stats": stats, "epoch": epoch,
            "step": step, "best_val": best_val, "history": history, "rng": rng, "versions": package_versions(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "world_size": world_size,
            "precision": precision, "device": describe_device(device), **({"lineage": lineage} if lineage else {})}


def inference_state(state: dict) -> dict:
    """What inference needs of a training state: weights, model args, input statistics, config and provenance (no
    optimizer, scheduler or RNG state)."""
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


def model_args(state: dict) -> dict:
    """The arguments that build a checkpoint's network, ``{num_freqs, hidden, layers, embedding_dim, dropout}``.

    Its ``model_args``; for a checkpoint written before they were stored (before this version, e.g. the shipped
    ``fm2-bpd``), the one conversion: ``hidden, layers, embedding_dim, dropout`` from its training ``config`` dict
    and ``num_freqs`` = the length of its input statistics.

    Raises:
        KeyError: a checkpoint with neither ``model_args`` nor those config keys.
    """
    if "model_args" in state:
        return {k: state["model_args"][k] for k in MODEL_ARGS}
    config = state["config"]
    return {"num_freqs": len(state["stats"]["mean"]), **{k: config[k] for k in MODEL_ARGS[1:]}}


def model_from_checkpoint(state: dict, path: str | Path = "checkpoint",
                          device: str | torch.device = "cpu") -> DeepClusteringNet:
    """Rebuild a checkpoint's network from its :func:`model_args` and load its weights: eval mode, float32 (shipped
    models store float16 weights), on ``device``.

    Raises:
        ValueError: model args this version cannot build, or weights that do not fit the network they describe
            (a foreign or damaged checkpoint); the message names ``path``.
    """
    try:
        model = DeepClusteringNet(**model_args(state))
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"{path}: its weights or model args do not make a deep-clustering model of this project "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from exc
    return model.to(device).eval()
