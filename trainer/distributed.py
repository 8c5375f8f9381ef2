"""Several training processes with DistributedDataParallel: the gloo backend on CPUs, NCCL on CUDA GPUs.

Launch with ``torchrun --standalone --nproc-per-node 2 -m spatialdc.trainer --shards ... --out runs/x``: torchrun sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; every process reads the same shards,
takes its slice of each global batch (:class:`GlobalBatchSampler`), and DDP averages the gradients, so one step
equals one step of a single process on the combined batch. Only rank 0 writes the run directory. On a machine with
several GPUs, ``--nproc-per-node`` = the number of GPUs: with ``--device auto`` or ``cuda`` each process takes the GPU
of its ``LOCAL_RANK`` (:func:`spatialdc.trainer.device.resolve_device`) and the processes talk over NCCL.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def backend(device: torch.device) -> str:
    """The process-group backend for processes that train on ``device``: NCCL for CUDA, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def world(device: torch.device = torch.device("cpu")) -> tuple[int, int]:
    """(rank, world size) of this process, initializing the process group (:func:`backend` of ``device``; on CUDA
    with ``device`` as this process's GPU) under torchrun; (0, 1) otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend(device))
    return dist.get_rank(), dist.get_world_size()


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    """``model`` (on ``device``) wrapped for DDP: gradients averaged over the ranks in ``backward``."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _collective_device() -> torch.device:
    """Where collective tensors live: NCCL reduces CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank0_decides(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (time budgets must stop every process at the same step)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=_collective_device())
    dist.broadcast(t, 0)
    return bool(t.item())


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over the ranks (identity in one process)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchSampler(Sampler[int]):
    """Indices of this rank's share of each global batch, in a seeded order.

    Per epoch, the order is ``torch.randperm(n)`` from a generator seeded with ``seed * 100003 + epoch`` (or
    0..n-1 without shuffling); global batch k is order[k B W : (k + 1) B W] with B the per-rank batch and W the
    world size, and rank r takes its r-th slice of B. With W = 1 this is the plain shuffled order. With
    ``drop_last``, a last incomplete global batch is dropped (so every rank takes the same number of steps). With
    ``epoch_keys``, it yields ``(epoch, index)`` pairs instead of indices: the epoch travels with each index to the
    DataLoader's workers (see :class:`~spatialdc.trainer.data.DeepClusteringDataset`).
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, epoch_keys: bool = False):
        self.n, self.b, self.rank, self.w = n, batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last, self.epoch = seed, shuffle, drop_last, 0
        self.epoch_keys = epoch_keys

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        order, gb = self._order(), self.b * self.w
        full = self.n // gb if self.drop_last and self.n >= gb else -(-self.n // gb)
        for k in range(full):
            mine = order[k * gb + self.rank * self.b: k * gb + (self.rank + 1) * self.b]
            yield from ((self.epoch, i) for i in mine) if self.epoch_keys else mine

    def __len__(self) -> int:
        gb = self.b * self.w
        if self.drop_last and self.n >= gb:
            return self.n // gb * self.b
        return len(list(iter(self)))
