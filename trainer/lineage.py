"""Where a model comes from: the campaign behind it, counted across runs, sessions and machines.

A model is often trained in legs: a run starts from a shipped model (``dctrain --init-from fm2-bpd``), is shipped,
and the next leg starts from the shipped file on another machine. The **lineage** a run records when it starts
(:func:`start_lineage`) says what came before its first step: the steps and CPU-hours of every earlier leg and
their ``dctrain`` commands (the recipe). :func:`totals` adds the run's own, so that a shipped model's card keeps
its cumulative budget (issue 22: "cumulative steps and CPU-hours ... one row per re-ship").

A lineage is a plain dict, stored in the run's checkpoints (``last.pt``, ``best.pt``)::

    {"init_from": "fm2-bpd", "init_path": "models/fm2-bpd.pt", "init_weights_sha256": "...",
     "steps_before": 4725, "cpu_hours_before": 1.32, "recipe": ["dctrain ...", ...]}
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .config import TrainConfig


def resolve_init(init_from: str) -> Path:
    """The checkpoint file ``--init-from`` names: a path, or the name of a shipped model (``models/NAME.pt``).

    Raises:
        FileNotFoundError: neither a file nor a shipped model's name (the message lists the shipped models).
    """
    path = Path(init_from)
    if path.is_file():
        return path
    from spatialdc import models  # the shipped models' data package (it imports nothing of spatialdc)

    if init_from in models.names():
        return models.model_file(init_from)
    raise FileNotFoundError(f"--init-from {init_from!r} is neither a checkpoint file nor a shipped model; shipped "
                            f"models: {', '.join(models.names()) or 'none'} (dcsep --list-models)")


def weights_sha256(weights: dict) -> str:
    """SHA-256 of a state dict's tensors (names, dtypes, shapes and bytes, in name order): the same for a file
    however its card or provenance changes, different for other weights or another storage dtype."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def dctrain_command(config: dict) -> str:
    """The ``dctrain`` command that makes a run of this config: the options that differ from the defaults."""
    defaults = TrainConfig(shards="", valid="").to_dict()
    parts = ["dctrain", f"--shards '{config['shards']}'", f"--valid '{config['valid']}'"]
    for key, value in config.items():
        if key in ("shards", "valid", "world_size") or key not in defaults or defaults[key] == value:
            continue
        if isinstance(value, bool):
            parts.append(f"--{key.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            parts += [f"--{key.replace('_', '-')} {v}" for v in value]
        else:
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def _cpu_hours(state: dict) -> float:
    history = state.get("history") or [{}]
    return float(history[-1].get("cpu_seconds") or 0.0) / 3600


def totals(state: dict) -> dict:
    """Cumulative ``{"steps", "cpu_hours", "recipe"}`` of a checkpoint, counted from random initialization.

    A shipped model's card is authoritative (``card["campaign"]``); otherwise the checkpoint's lineage (nothing
    before it when it has none) plus its own steps, its training process's CPU time and its ``dctrain`` command.
    """
    campaign = (state.get("card") or {}).get("campaign")
    if campaign:
        return {"steps": int(campaign["steps"]), "cpu_hours": float(campaign["cpu_hours"]),
                "recipe": list(campaign["recipe"])}
    lineage = state.get("lineage") or {}
    recipe = list(lineage.get("recipe", []))
    command = dctrain_command(state["config"])
    if not recipe or recipe[-1] != command:
        recipe.append(command)
    return {"steps": int(lineage.get("steps_before", 0)) + int(state.get("step") or 0),
            "cpu_hours": round(float(lineage.get("cpu_hours_before", 0.0)) + _cpu_hours(state), 6),
            "recipe": recipe}


def start_lineage(init_from: str, init_path: Path, init_state: dict) -> dict:
    """The lineage of a run that starts from checkpoint ``init_state`` (read from ``init_path``, named
    ``init_from`` on the command line): everything the start checkpoint counts (:func:`totals`)."""
    before = totals(init_state)
    return {"init_from": init_from, "init_path": str(init_path),
            "init_weights_sha256": weights_sha256(init_state["model"]), "steps_before": before["steps"],
            "cpu_hours_before": before["cpu_hours"], "recipe": before["recipe"]}
