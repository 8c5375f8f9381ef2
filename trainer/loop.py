"""The training loop, read top to bottom: data, model, epochs of train + validate, checkpoints, resume."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from spatialdc.pipeline.shards import ShardSet, expand_shards

from .checkpoint import inference_state, load_checkpoint, model_args, save_checkpoint, training_state
from . import distributed
from .config import RESUMABLE_CHANGES, TrainConfig
from .data import DeepClusteringDataset, input_stats
from .dynamic import DynamicMixingDataset, mixing_templates
from .loss import affinity_loss, fused_affinity_loss, one_hot_targets
from .precision import REFERENCE, StepMode, dense_autocast, resolve
from .model import build_model

log = logging.getLogger(__name__)
LOG_FIELDS = ["epoch", "step", "train_loss", "valid_loss", "lr", "train_seconds", "seconds", "cpu_seconds",
              "step_mode"]


def batch_loss(model: torch.nn.Module, batch: dict, target: str, mode: StepMode = REFERENCE) -> torch.Tensor:
    """Affinity loss of one batch. batch: x (B, T, F), y (B, T, F) int or (B, T, F, 1) float, w (B, T, F), n (B,).
    ``mode``: the reference step (autograd through normalization and loss) or the fast one (fused loss, bf16 dense
    layer where chosen), see :mod:`spatialdc.trainer.precision`."""
    with dense_autocast(model, mode.dense_bf16):
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
def validate(model: torch.nn.Module, loader: DataLoader, target: str) -> float:
    """Mean loss over a loader, in eval mode (restores train mode after); summed over the ranks of a DDP run."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        total += batch_loss(model, batch, target).item() * batch["x"].shape[0]  # reference step: comparable losses
        count += batch["x"].shape[0]
    model.train()
    total, count = distributed.all_sum([total, float(count)])
    return total / max(count, 1)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a deep-clustering model into ``out_dir``.

    Writes ``config.json``, ``log.csv`` (one row per epoch), ``last.pt`` (every epoch: everything a resume needs),
    ``best.pt`` (best validation loss: what inference needs, :func:`~spatialdc.trainer.checkpoint.inference_state`)
    and ``loss.png``. If ``out_dir/last.pt`` exists and holds the same config (up to the budget and loading
    fields of ``RESUMABLE_CHANGES``: a run can be given more epochs or minutes), training resumes from it; else a
    run with ``config.init_from`` starts from that checkpoint's weights and input statistics (:func:`warm_start`).

    Returns:
        dict with the best validation loss, epochs run, steps and seconds.

    Raises:
        FileNotFoundError: no shards match. ValueError: shards of several source counts, or a config in an
        existing run directory that differs in a field outside ``RESUMABLE_CHANGES``, or an ``init_from``
        checkpoint of another architecture or number of frequencies.
    """
    out = Path(out_dir)
    rank, world_size = distributed.world()
    main_process = rank == 0
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    train_set = ShardSet(expand_shards(config.shards))
    valid_set = ShardSet(expand_shards(config.valid))
    counts = {int(a["num_speakers"]) for a in train_set.attrs}
    if len(counts) != 1:
        raise ValueError(f"training shards hold mixtures of {sorted(counts)} speakers; use shards of one N")

    last = out / "last.pt"
    state = load_checkpoint(last) if last.is_file() else None
    if state is not None:
        old_config = TrainConfig.from_dict(state["config"]).to_dict()
        changed = {k: (old_config.get(k), v) for k, v in config.to_dict().items() if old_config.get(k) != v}
        fixed = {k: c for k, c in changed.items() if k not in RESUMABLE_CHANGES}
        if fixed:
            raise ValueError(f"{out} holds a run with another config {fixed} (old, new); use a new --out, or change "
                             f"only {sorted(RESUMABLE_CHANGES)} to go on with it")
        if changed:
            log.info("resuming with %s (old, new)", changed)
    init = warm_start(config, train_set) if state is None and config.init_from else None
    stats = state["stats"] if state else init["stats"] if init else input_stats(train_set)

    model = build_model(config, num_freqs=len(stats["mean"]))
    if init is not None:
        model.load_state_dict(init["model"])
        log.info("starting from the weights of %s (step %d of that run)", config.init_from, init.get("step", 0))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
                 if config.lr_schedule == "plateau" else None)
    epoch, step, best_val, history = 0, 0, float("inf"), []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        epoch, step, best_val, history = state["epoch"], state["step"], state["best_val"], state["history"]
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resuming %s at epoch %d, step %d", out, epoch, step)
    if main_process:
        (out / "config.json").write_text(json.dumps(dict(config.to_dict(), world_size=world_size), indent=1))
    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    if config.dynamic_mixing:
        templates, template_of = mixing_templates(train_set)
        train_data = DynamicMixingDataset(templates, config.corpus, len(train_set), config.target, stats,
                                          config.chunk_frames, config.silence_db, config.seed, config.freq_warp,
                                          config.label_weights, template_of, config.keep_share)
    else:
        train_data = DeepClusteringDataset(train_set, config.target, stats, config.chunk_frames, config.silence_db,
                                           config.seed, cache_bytes=int(config.cache_gb * 1e9),
                                           freq_warp=config.freq_warp, label_weights=config.label_weights,
                                           keep_share=config.keep_share)
    valid_data = DeepClusteringDataset(valid_set, config.target, stats, 0, config.silence_db, config.seed)
    num_valid = min(len(valid_data), config.valid_mixtures or len(valid_data))
    valid_loader = DataLoader(valid_data, batch_size=config.batch_size, num_workers=config.num_workers,
                              sampler=list(range(rank, num_valid, world_size)))
    sampler = distributed.GlobalBatchSampler(len(train_data), config.batch_size, rank, world_size, config.seed,
                                             drop_last=len(train_data) > config.batch_size * world_size)
    stale = sum(1 for _ in _since_best(history))
    mode = resolve(config.precision)
    log.info("training step: %s (--precision %s)", mode.name, config.precision)
    t0 = time.perf_counter()
    budget = Budget(config.max_minutes, config.max_cpu_minutes, history)

    def out_of_time() -> bool:
        return distributed.rank0_decides(budget.spent()) if budget.limited else False

    def out_of_steps() -> bool:
        return bool(config.max_steps) and step >= config.max_steps

    while (epoch < config.epochs and not (config.patience and stale >= config.patience)
           and not out_of_steps() and not out_of_time()):
        train_data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(train_data, batch_size=config.batch_size, sampler=sampler,
                            num_workers=config.num_workers)
        losses = []
        epoch_t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or not main_process,
                   unit="batch")
        for batch in bar:
            loss = batch_loss(net, batch, config.target, mode)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if out_of_steps():
                break
            if out_of_time():
                log.info("time budget (%s) spent: ending epoch %d early", budget.describe(), epoch + 1)
                break
        train_seconds = time.perf_counter() - epoch_t0
        with budget.validation():
            valid_loss = validate(model, valid_loader, config.target)
        epoch += 1
        lr_now = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step(valid_loss)
        train_loss = distributed.all_sum([float(np.sum(losses)), float(len(losses))])
        history.append({"epoch": epoch, "step": step, "train_loss": train_loss[0] / max(train_loss[1], 1),
                        "valid_loss": valid_loss, "lr": lr_now, "train_seconds": round(train_seconds, 2),
                        "seconds": round(budget.wall(), 2), "cpu_seconds": round(budget.cpu(), 2),
                        "step_mode": mode.name})
        state = training_state(model, optimizer, scheduler, config, stats, epoch=epoch, step=step,
                               best_val=min(best_val, valid_loss), history=history, world_size=world_size,
                               precision=mode.name)
        if valid_loss < best_val:
            best_val = valid_loss
            if main_process:
                save_checkpoint(out / "best.pt", inference_state(state))  # weights, stats, config: no optimizer
        if main_process:
            save_checkpoint(last, state)
            write_log(out / "log.csv", history)
            plot_losses(out / "loss.png", history)
        stale = sum(1 for _ in _since_best(history))
        log.info("epoch %d: train %.4f  valid %.4f  (best %.4f)", epoch, history[-1]["train_loss"], valid_loss,
                 best_val)
    return {"out": str(out), "epochs": epoch, "steps": step, "best_valid_loss": best_val,
            "seconds": time.perf_counter() - t0, "history": history}


class Budget:
    """Wall-clock and CPU-time budgets of a run, counted across resumed sessions (from the history's last epoch).

    The epoch in progress is cut short early enough to leave time for one more validation, as long as the last
    one took (in wall-clock and in CPU time).
    """

    def __init__(self, minutes: float, cpu_minutes: float, history: list[dict]):
        self.wall_limit = minutes * 60 if minutes else float("inf")
        self.cpu_limit = cpu_minutes * 60 if cpu_minutes else float("inf")
        self.limited = bool(minutes or cpu_minutes)
        last = history[-1] if history else {}
        self.wall_before, self.cpu_before = last.get("seconds", 0.0), last.get("cpu_seconds", 0.0)
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.reserve_wall = self.reserve_cpu = 0.0

    def wall(self) -> float:
        """Seconds of wall-clock time of the run, earlier sessions included."""
        return self.wall_before + time.perf_counter() - self.wall0

    def cpu(self) -> float:
        """Seconds of CPU time of the training process (all threads), earlier sessions included."""
        return self.cpu_before + time.process_time() - self.cpu0

    def spent(self) -> bool:
        return (self.wall() + self.reserve_wall >= self.wall_limit) or (self.cpu() + self.reserve_cpu >= self.cpu_limit)

    def describe(self) -> str:
        parts = [f"{self.wall_limit / 60:.1f} min" if self.wall_limit < float("inf") else "",
                 f"{self.cpu_limit / 60:.1f} CPU-min" if self.cpu_limit < float("inf") else ""]
        return " / ".join(p for p in parts if p)

    @contextlib.contextmanager
    def validation(self):
        """Time a validation: its cost is reserved at the end of the next epoch."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        yield
        self.reserve_wall, self.reserve_cpu = time.perf_counter() - wall0, time.process_time() - cpu0


def warm_start(config: TrainConfig, train_set: ShardSet) -> dict:
    """The checkpoint ``config.init_from`` (weights and input statistics of a new run), checked against ``config``
    and the training shards.

    Raises:
        FileNotFoundError: no such checkpoint. ValueError: not a dctrain checkpoint, another architecture
        (layers, hidden, embedding_dim) than ``config``'s, or another number of frequencies than the shards'.
    """
    init = load_checkpoint(config.init_from)
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
    return init


def _since_best(history: list[dict]):
    """Yield the epochs after the best validation loss (for early stopping)."""
    if not history:
        return
    best = int(np.argmin([h["valid_loss"] for h in history]))
    yield from history[best + 1:]


def write_log(path: Path, history: list[dict]) -> None:
    """The CSV log of losses, one row per epoch (rewritten whole, atomically enough for a log)."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(history)


def plot_losses(path: Path, history: list[dict]) -> None:
    """Training and validation loss per epoch, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["valid_loss"] for h in history], "s-", label="valid")
    ax.set_xlabel("epoch")
    ax.set_ylabel("affinity loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
