"""The training loop, read top to bottom: resume or start a run, its data loaders, then epochs of train + validate
with a checkpoint after each."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from spatialdc.pipeline.atomic import write_text_atomic
from spatialdc.pipeline.paths import check_out_dir
from spatialdc.pipeline.shards import ShardReadError, ShardSet, expand_shards

from . import distributed
from .budget import Budget
from .checkpoint import inference_state, load_checkpoint, model_args, save_checkpoint, training_state
from .config import RESUMABLE_CHANGES, TrainConfig
from .data import input_stats, reader_error
from .device import describe_device, resolve_device, to_device
from .lineage import resolve_init, start_lineage
from .loaders import EpochLoader, make_loaders
from .loss import affinity_loss, fused_affinity_loss, one_hot_targets
from .model import DeepClusteringNet, build_model
from .precision import REFERENCE, StepMode, dense_autocast, resolve, set_tf32
from .run_folder import hold_run_folder
from .run_log import plot_losses, write_log
from .schedule import scaled_lr, warm_up

log = logging.getLogger(__name__)


def batch_loss(model: torch.nn.Module, batch: dict, target: str, mode: StepMode = REFERENCE) -> torch.Tensor:
    """Affinity loss of one batch. batch: x (B, T, F), y (B, T, F) int or (B, T, F, 1) float, w (B, T, F), n (B,).
    ``mode``: the reference step (autograd through normalization and loss) or the fast one (fused loss, bf16 dense
    layer where chosen), see :mod:`spatialdc.trainer.precision`."""
    with dense_autocast(model, mode.dense_bf16, mode.device_type):
        v = model(batch["x"], normalize=not mode.fused)  # (B, T, F, D) float32
    b = v.shape[0]
    if target == "rpd":
        y = batch["y"].reshape(b, -1, 1)  # (B, L, 1)
    else:
        n = batch["n"]
        if not bool((n == n[0]).all()):
            raise ValueError(f"a batch mixes mixtures of {sorted(set(n.tolist()))} sources; train on one N at a time")
        y = one_hot_targets(batch["y"].reshape(b, -1), int(n[0]))  # (B, L, N)
    loss = fused_affinity_loss if mode.fused else affinity_loss
    return loss(v.reshape(b, -1, v.shape[-1]), y, batch["w"].reshape(b, -1))


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, target: str,
             device: torch.device = torch.device("cpu")) -> float:
    """Mean loss over a loader, in eval mode (restores train mode after), the model on ``device``; summed over the
    ranks of a DDP run."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        loss = batch_loss(model, to_device(batch, device), target)  # reference step: comparable losses
        total += loss.item() * batch["x"].shape[0]
        count += batch["x"].shape[0]
    model.train()
    total, count = distributed.all_sum([total, float(count)])
    return total / max(count, 1)


@dataclass
class Run:
    """What a run carries from epoch to epoch: model, optimizer, scheduler, input statistics and counters, and the
    device the model and optimizer state live on."""

    model: DeepClusteringNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    stats: dict
    epoch: int = 0
    step: int = 0
    best_val: float = float("inf")
    history: list[dict] = field(default_factory=list)
    device: torch.device = torch.device("cpu")
    lineage: dict | None = None  # what came before the run's first step (:mod:`spatialdc.trainer.lineage`)

    def stale(self) -> int:
        """Epochs since the best validation loss (for early stopping)."""
        if not self.history:
            return 0
        return len(self.history) - 1 - int(np.argmin([h["valid_loss"] for h in self.history]))


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a deep-clustering model into ``out_dir``.

    Writes ``config.json``, ``log.csv`` (one row per epoch), ``last.pt`` (every epoch: everything a resume needs),
    ``best.pt`` (best validation loss: what inference needs, :func:`~spatialdc.trainer.checkpoint.inference_state`)
    and ``loss.png``. If ``out_dir/last.pt`` exists and holds the same config (up to the budget and loading
    fields of ``RESUMABLE_CHANGES``: a run can be given more epochs or minutes), training resumes from it; else a
    run with ``config.init_from`` starts from that checkpoint's weights and input statistics (:func:`warm_start`).

    Returns:
        dict with the best validation loss, epochs run, steps and seconds.

    The run holds ``out_dir`` while it runs (:mod:`~spatialdc.trainer.run_folder`, rank 0 under DDP): a second run
    into it is refused. A shard that cannot be read ends the run with the shard's
    :class:`~spatialdc.pipeline.shards.ShardReadError` (raised where the reader raised it, also from a DataLoader
    worker), before the epoch is saved: ``best.pt`` and ``last.pt`` keep the last complete epoch.

    Raises:
        FileNotFoundError: no shards match. FileExistsError: another live run holds ``out_dir``. ValueError:
        ``out_dir`` is a file or under one, shards of several source counts, a config in an existing run
        directory that differs in a field outside ``RESUMABLE_CHANGES``, or an ``init_from`` checkpoint of another
        architecture or number of frequencies. ShardReadError (a ValueError): a damaged shard.
    """
    out = check_out_dir(out_dir)
    device = resolve_device(config.device)  # refuses CUDA where torch sees none, before any work
    rank, world_size = distributed.world(device)
    out.mkdir(parents=True, exist_ok=True)
    with hold_run_folder(out, rank):
        try:
            return _train(config, out, rank, world_size, device, progress)
        except ShardReadError as exc:
            raise reader_error(exc) from None


def _train(config: TrainConfig, out: Path, rank: int, world_size: int, device: torch.device,
           progress: bool) -> dict:
    """:func:`train` in a folder this run holds."""
    torch.manual_seed(config.seed)
    train_set, valid_set = ShardSet(expand_shards(config.shards)), ShardSet(expand_shards(config.valid))
    counts = {int(a["num_speakers"]) for a in train_set.attrs}
    if len(counts) != 1:
        raise ValueError(f"training shards hold mixtures of {sorted(counts)} speakers; use shards of one N")
    if config.labels:  # every sidecar checked before the first step (loader workers inherit the checks)
        train_set.require_labels(config.labels)
        valid_set.require_labels(config.labels)
    run = start_run(config, train_set, resume_state(out, config), device, world_size)
    if rank == 0:
        write_text_atomic(out / "config.json", json.dumps(dict(config.to_dict(), world_size=world_size), indent=1))
    net = distributed.data_parallel(run.model, device) if world_size > 1 else run.model
    train_loader, valid_loader = make_loaders(config, train_set, valid_set, run.stats, rank, world_size, device)
    mode = resolve(config.precision, device)
    if device.type == "cuda":
        set_tf32(mode.fused)  # the fp32 reference step in IEEE float32, the fast steps with TF32 tensor cores
    log.info("training on %s, step: %s (--precision %s)", describe_device(device), mode.name, config.precision)
    t0 = time.perf_counter()
    budget = Budget(config.max_minutes, config.max_cpu_minutes, run.history)
    while (run.epoch < config.epochs and not (config.patience and run.stale() >= config.patience)
           and not (config.max_steps and run.step >= config.max_steps) and not budget.out_of_time()):
        epoch_t0 = time.perf_counter()
        losses = train_epoch(net, run, train_loader, config, mode, budget, progress and rank == 0)
        train_seconds = time.perf_counter() - epoch_t0
        with budget.validation():
            valid_loss = validate(run.model, valid_loader, config.target, device)
        end_epoch(run, config, out, losses, valid_loss, train_seconds, budget, mode, world_size, rank == 0)
    return {"out": str(out), "epochs": run.epoch, "steps": run.step, "best_valid_loss": run.best_val,
            "seconds": time.perf_counter() - t0, "history": run.history}


def resume_state(out: Path, config: TrainConfig) -> dict | None:
    """The training state of ``out/last.pt`` if there is one (None: a new run).

    Raises:
        ValueError: it holds a run of another config, outside ``RESUMABLE_CHANGES`` (the message names the
            fields, old and new); or it is not a dctrain checkpoint.
    """
    last = out / "last.pt"
    if not last.is_file():
        return None
    state = load_checkpoint(last)
    old_config = TrainConfig.from_dict(state["config"]).to_dict()
    changed = {k: (old_config.get(k), v) for k, v in config.to_dict().items() if old_config.get(k) != v}
    fixed = {k: c for k, c in changed.items() if k not in RESUMABLE_CHANGES}
    budget = {k: c for k, c in changed.items() if k in RESUMABLE_CHANGES}
    if fixed:
        also = f" (and {_changes(budget)}, which a resumed run may change)" if budget else ""
        raise ValueError(f"{out} holds a run of another config: {_changes(fixed)}{also}. Give a new --out, or "
                         f"change only {', '.join(_option(k) for k in sorted(RESUMABLE_CHANGES))} to go on with it")
    if changed:
        log.info("resuming with %s", _changes(changed))
    return state


def _changes(changed: dict[str, tuple]) -> str:
    """``{key: (old, new)}`` as ``"key old -> new, ..."`` (options as dctrain spells them)."""
    return ", ".join(f"{_option(k)} {old!r} -> {new!r}" for k, (old, new) in changed.items())


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def start_run(config: TrainConfig, train_set: ShardSet, state: dict | None,
              device: torch.device = torch.device("cpu"), world_size: int = 1) -> Run:
    """Model, optimizer and scheduler of a run on ``device``: resumed from ``state`` (its weights, optimizer,
    counters and torch RNG, :func:`restore`), or new: warm-started from ``config.init_from`` (its weights and input
    statistics) or initialized from torch's RNG with input statistics of the training shards. The network is built
    and loaded on the CPU, then moved (a GPU run starts from the weights a CPU run starts from). Adam's rate is
    ``config.lr`` scaled for the global batch of ``world_size`` processes
    (:func:`~spatialdc.trainer.schedule.scaled_lr`; ``config.lr`` itself without ``--lr-scaling``).

    Raises:
        FileNotFoundError, ValueError: an ``init_from`` checkpoint :func:`warm_start` refuses.
    """
    init, init_path = warm_start(config, train_set) if state is None and config.init_from else (None, None)
    stats = state["stats"] if state else init["stats"] if init else input_stats(train_set)
    model = build_model(config, num_freqs=len(stats["mean"]))
    if state is not None or init is not None:
        model.load_state_dict((state or init)["model"])
    if init is not None:
        log.info("starting from the weights of %s (%s; step %d of that run)", config.init_from, init_path,
                 init.get("step", 0))
    model.to(device)
    lr = scaled_lr(config.lr, config.batch_size, world_size, config.lr_scaling)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
                 if config.lr_schedule == "plateau" else None)
    run = Run(model, optimizer, scheduler, stats, device=device)
    if init is not None:
        run.lineage = start_lineage(config.init_from, init_path, init)
    if state is not None:
        restore(run, state)
        run.lineage = state.get("lineage") or resumed_lineage(config)
    return run


def restore(run: Run, state: dict) -> None:
    """Put a training checkpoint's optimizer, scheduler, counters and RNG state into a new ``run`` whose model holds
    its weights. The optimizer state goes to the device of the parameters it belongs to (``load_state_dict`` casts
    it), so a run saved on one device goes on on another; torch's CUDA RNG (dropout on a GPU) is restored where the
    run was saved on a GPU and goes on on one."""
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("scheduler"):
        run.scheduler.load_state_dict(state["scheduler"])
    run.epoch, run.step, run.best_val, run.history = state["epoch"], state["step"], state["best_val"], \
        state["history"]
    torch.set_rng_state(state["rng"]["torch"])
    if run.device.type == "cuda" and "cuda" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"]["cuda"], run.device)
    log.info("resuming at epoch %d, step %d (saved on %s)", run.epoch, run.step, state.get("device", "cpu"))


def warm_start(config: TrainConfig, train_set: ShardSet) -> tuple[dict, Path]:
    """The checkpoint ``config.init_from`` (a path or a shipped model's name: weights and input statistics of a new
    run) and its file, checked against ``config`` and the training shards.

    Raises:
        FileNotFoundError: no such checkpoint or shipped model. ValueError: not a dctrain checkpoint, another
        architecture (layers, hidden, embedding_dim) than ``config``'s, or another number of frequencies than the
        shards'.
    """
    path = resolve_init(config.init_from)
    init = load_checkpoint(path)
    args = model_args(init)
    freqs = {int(a["n_fft"]) // 2 + 1 for a in train_set.attrs}
    if freqs != {args["num_freqs"]}:
        raise ValueError(f"--init-from {config.init_from} was trained on {args['num_freqs']} frequencies, "
                         f"the shards have {sorted(freqs)}")
    arch = ("layers", "hidden", "embedding_dim")
    differ = {k: (args[k], getattr(config, k)) for k in arch if args[k] != getattr(config, k)}
    if differ:
        raise ValueError(f"--init-from {config.init_from} is a model with other {differ} (its, yours); pass its "
                         f"--layers/--hidden/--embedding-dim")
    return init, path


def resumed_lineage(config: TrainConfig) -> dict | None:
    """The lineage of a run resumed from a checkpoint written before runs recorded one: read again from its
    ``init_from`` (as it is now; None without one)."""
    if not config.init_from:
        return None
    path = resolve_init(config.init_from)
    log.info("the resumed run records no lineage: taking it from %s as it is now", path)
    return start_lineage(config.init_from, path, load_checkpoint(path))


def train_epoch(net: torch.nn.Module, run: Run, loader: EpochLoader, config: TrainConfig, mode: StepMode,
                budget: Budget, progress: bool) -> list[float]:
    """One epoch of optimizer steps on ``loader``, cut short at ``config.max_steps`` or when the time budget is
    spent; advances ``run.step``. Returns the training loss of every step.

    Batches go to ``run.device`` (:func:`~spatialdc.trainer.device.to_device`); the losses stay there until the
    epoch ends (and every 20 steps for the progress bar), so a GPU is not made to wait for the host every step."""
    loader.sampler.set_epoch(run.epoch)
    losses: list[torch.Tensor] = []
    bar = tqdm(loader, desc=f"epoch {run.epoch + 1}/{config.epochs}", disable=not progress, unit="batch")
    for batch in bar:
        loss = batch_loss(net, to_device(batch, run.device), config.target, mode)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.clip_grad)
        warm_up(run.optimizer, run.step, config.warmup_steps)
        run.optimizer.step()
        run.step += 1
        losses.append(loss.detach())
        if progress and len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{torch.stack(losses[-20:]).mean().item():.4f}")
        if config.max_steps and run.step >= config.max_steps:
            break
        if budget.out_of_time():
            log.info("time budget (%s) spent: ending epoch %d early", budget.describe(), run.epoch + 1)
            break
    return torch.stack(losses).tolist() if losses else []


def end_epoch(run: Run, config: TrainConfig, out: Path, losses: list[float], valid_loss: float,
              train_seconds: float, budget: Budget, mode: StepMode, world_size: int, main_process: bool) -> None:
    """Count the epoch, step the scheduler, log it to ``run.history`` and, on the main process, write
    ``last.pt``, ``best.pt`` (if the validation loss is the best so far), ``log.csv`` and ``loss.png``."""
    run.epoch += 1
    lr_now = run.optimizer.param_groups[0]["lr"]
    if run.scheduler is not None:
        run.scheduler.step(valid_loss)
    train_loss = distributed.all_sum([float(np.sum(losses)), float(len(losses))])
    run.history.append({"epoch": run.epoch, "step": run.step, "train_loss": train_loss[0] / max(train_loss[1], 1),
                        "valid_loss": valid_loss, "lr": lr_now, "train_seconds": round(train_seconds, 2),
                        "seconds": round(budget.wall(), 2), "cpu_seconds": round(budget.cpu(), 2),
                        "step_mode": mode.name, "device": describe_device(run.device)})
    state = training_state(run.model, run.optimizer, run.scheduler, config, run.stats, epoch=run.epoch,
                           step=run.step, best_val=min(run.best_val, valid_loss), history=run.history,
                           world_size=world_size, precision=mode.name, device=run.device, lineage=run.lineage)
    if valid_loss < run.best_val:
        run.best_val = valid_loss
        if main_process:
            save_checkpoint(out / "best.pt", inference_state(state))  # weights, stats, config: no optimizer
    if main_process:
        save_checkpoint(out / "last.pt", state)
        write_log(out / "log.csv", run.history)
        plot_losses(out / "loss.png", run.history)
    log.info("epoch %d: train %.4f  valid %.4f  (best %.4f)", run.epoch, run.history[-1]["train_loss"], valid_loss,
             run.best_val)
