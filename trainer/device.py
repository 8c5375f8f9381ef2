"""Where a run computes (``--device`` of dctrain, dceval, dcsep, dccount and ``Separator(device=)``), and what that
changes around the network: the DataLoader that feeds it, the copies of batches to it, checkpoints that load on any
device.

``--device`` values:

- ``auto`` (the default): the CUDA GPU torch sees, else the CPU. Under ``torchrun`` each process takes the GPU of
  its ``LOCAL_RANK``. On a machine without a visible GPU, ``auto`` is ``cpu`` and every result is what it was before
  devices existed (tested: the weights of a seeded run bit for bit).
- ``cpu``; ``cuda`` (``cuda:LOCAL_RANK`` under torchrun, else ``cuda:0``); ``cuda:N``.

Asking for CUDA where torch sees none is refused with a message that says so and how to pick the CPU.
"""

from __future__ import annotations

import os
import re

import torch

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N"
DEVICE_HELP = ("Where the network computes: auto = the CUDA GPU torch sees (under torchrun: the process's LOCAL_RANK), "
               "else the CPU; cpu; cuda; cuda:N.")
_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
CUDA_PREFETCH = 4  # batches each loader worker keeps ready for a GPU (torch's default is 2)


def check_device_name(spec: str) -> None:
    """Refuse a ``--device`` value that is none of :data:`DEVICE_CHOICES` (without asking torch what it sees).

    Raises:
        ValueError: the value, and the choices.
    """
    if not isinstance(spec, str) or not _NAME.match(spec):
        raise ValueError(f"device {spec!r} is not one of {DEVICE_CHOICES}")


def local_rank() -> int:
    """This process's ``LOCAL_RANK`` under torchrun, 0 otherwise."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def no_cuda_message(spec: str) -> str:
    """Why ``--device spec`` cannot be had here, and what to pass instead."""
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    masked = f"; CUDA_VISIBLE_DEVICES={hidden!r}" if hidden is not None else ""
    return (f"--device {spec}: no CUDA device is visible (torch {torch.__version__}, {build}; "
            f"torch.cuda.is_available() is False{masked}). Pick the CPU with --device cpu, or --device auto, which "
            f"takes the CPU where no GPU is visible")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The device a ``--device`` value names on this machine (see the module docstring).

    Raises:
        ValueError: a value outside :data:`DEVICE_CHOICES`; CUDA asked for where torch sees no CUDA device (the
            message says how to pick the CPU); ``cuda:N`` past the devices torch sees.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    check_device_name(spec)
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(no_cuda_message(spec))
    index = int(spec.split(":")[1]) if ":" in spec else local_rank()
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"--device {spec}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """What log.csv and checkpoints record: ``"cpu"`` or ``"cuda:0 (NVIDIA H200)"``."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def loader_settings(device: torch.device | str, num_workers: int) -> dict:
    """The DataLoader keyword arguments for a loader that feeds ``device`` from ``num_workers`` worker processes.

    The rule:

    - every device: the workers, if any, are persistent (started once per run, each keeps its decoded-mixture
      cache; :class:`~spatialdc.trainer.loop.EpochLoader`);
    - CPU: nothing else (pinned memory only costs a copy there): exactly the loader of earlier versions;
    - CUDA: batches in pinned (page-locked) host memory, so :func:`to_device` copies them asynchronously
      (``non_blocking``) while the GPU still computes the last step; with workers, each keeps
      :data:`CUDA_PREFETCH` batches ready instead of torch's 2, to ride out a slow mixture.

    ``num_workers`` stays the caller's (``--num-workers``): on a GPU machine give it most of the cores (the loop
    warns when a GPU is fed from the training process alone).

    Returns:
        ``{"num_workers", "persistent_workers", "pin_memory"[, "prefetch_factor"]}``.
    """
    cuda = torch.device(device).type == "cuda"
    settings = {"num_workers": num_workers, "persistent_workers": num_workers > 0, "pin_memory": cuda}
    if cuda and num_workers > 0:
        settings["prefetch_factor"] = CUDA_PREFETCH
    return settings


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch on ``device``: its float and label tensors ``x``, ``y``, ``w`` copied (asynchronously from
    pinned memory), ``n`` (the source counts, read on the host) left where it is. On the CPU, the batch itself."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if k != "n" and isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def on_cpu(obj):
    """``obj`` (a state dict, an optimizer state, nested dicts and lists of them) with every tensor on the CPU:
    what checkpoints hold, so they load anywhere, also with a plain ``torch.load``. Dict types and a module state
    dict's ``_metadata`` are kept; CPU tensors are not copied."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = type(obj)((k, on_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj
