"""The training loop, read top to bottom: data, model, epochs of train + validate, checkpoints, resume."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.build import package_versions
from pipeline.shards import ShardSet, expand_shards

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import DeepClusteringDataset, input_stats
from .loss import affinity_loss, one_hot_targets
from .model import build_model

log = logging.getLogger(__name__)
LOG_FIELDS = ["epoch", "step", "train_loss", "valid_loss", "lr", "train_seconds", "seconds"]


def batch_loss(model: torch.nn.Module, batch: dict, target: str) -> torch.Tensor:
    """Affinity loss of one batch. batch: x (B, T, F), y (B, T, F) int or (B, T, F, 1) float, w (B, T, F), n (B,)."""
    v = model(batch["x"])  # (B, T, F, D)
    b = v.shape[0]
    if target == "rpd":
        y = batch["y"].reshape(b, -1, 1)  # (B, L, 1)
    else:
        n = batch["n"]
        if not bool((n == n[0]).all()):
            raise ValueError(f"a batch mixes mixtures of {sorted(set(n.tolist()))} sources; train on one N at a time")
        y = one_hot_targets(batch["y"].reshape(b, -1), int(n[0]))  # (B, L, N)
    return affinity_loss(v.reshape(b, -1, v.shape[-1]), y, batch["w"].reshape(b, -1))


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, target: str) -> float:
    """Mean loss over a loader, in eval mode (restores train mode after)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        total += batch_loss(model, batch, target).item() * batch["x"].shape[0]
        count += batch["x"].shape[0]
    model.train()
    return total / max(count, 1)


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a deep-clustering model into ``out_dir``.

    Writes ``config.json``, ``log.csv`` (one row per epoch), ``last.pt`` (every epoch), ``best.pt`` (best validation
    loss) and ``loss.png``. If ``out_dir/last.pt`` exists and holds the same config, training resumes from it.

    Returns:
        dict with the best validation loss, epochs run, steps and seconds.

    Raises:
        FileNotFoundError: no shards match. ValueError: shards of several source counts, or a different config
        in an existing run directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    train_set = ShardSet(expand_shards(config.shards))
    valid_set = ShardSet(expand_shards(config.valid))
    counts = {int(a["num_speakers"]) for a in train_set.attrs}
    if len(counts) != 1:
        raise ValueError(f"training shards hold mixtures of {sorted(counts)} speakers; use shards of one N")

    last = out / "last.pt"
    state = load_checkpoint(last) if last.is_file() else None
    if state is not None and state["config"] != config.to_dict():
        changed = {k: (state["config"].get(k), v) for k, v in config.to_dict().items() if state["config"].get(k) != v}
        raise ValueError(f"{out} holds a run with another config {changed} (old, new); use a new --out")
    stats = state["stats"] if state else input_stats(train_set)

    model = build_model(config, num_freqs=len(stats["mean"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    epoch, step, best_val, history = 0, 0, float("inf"), []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, step, best_val, history = state["epoch"], state["step"], state["best_val"], state["history"]
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resuming %s at epoch %d, step %d", out, epoch, step)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1))

    train_data = DeepClusteringDataset(train_set, config.target, stats, config.chunk_frames, config.silence_db,
                                       config.seed)
    valid_data = DeepClusteringDataset(valid_set, config.target, stats, 0, config.silence_db, config.seed)
    valid_loader = DataLoader(valid_data, batch_size=config.batch_size, num_workers=config.num_workers)
    stale = sum(1 for _ in _since_best(history))
    t0 = time.perf_counter()
    spent = history[-1]["seconds"] if history else 0.0  # time of earlier sessions of this run
    budget = config.max_minutes * 60 if config.max_minutes else float("inf")
    reserve = 0.0  # seconds kept for the validation that ends an epoch cut short by the budget
    while (epoch < config.epochs and not (config.patience and stale >= config.patience)
           and spent + time.perf_counter() - t0 + reserve < budget):
        train_data.set_epoch(epoch)
        order = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, generator=order,
                            num_workers=config.num_workers, drop_last=len(train_data) > config.batch_size)
        losses = []
        epoch_t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, unit="batch")
        for batch in bar:
            loss = batch_loss(model, batch, config.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if spent + time.perf_counter() - t0 + reserve >= budget:
                log.info("time budget of %.1f minutes spent: ending epoch %d early", config.max_minutes, epoch + 1)
                break
        train_seconds = time.perf_counter() - epoch_t0
        valid_t0 = time.perf_counter()
        valid_loss = validate(model, valid_loader, config.target)
        reserve = time.perf_counter() - valid_t0
        epoch += 1
        history.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "valid_loss": valid_loss,
                        "lr": config.lr, "train_seconds": round(train_seconds, 2),
                        "seconds": round(spent + time.perf_counter() - t0, 2)})
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": config.to_dict(),
                 "stats": stats, "epoch": epoch, "step": step, "best_val": min(best_val, valid_loss),
                 "history": history, "rng": {"torch": torch.get_rng_state()}, "versions": package_versions()}
        if valid_loss < best_val:
            best_val = valid_loss
            save_checkpoint(out / "best.pt", state)
        save_checkpoint(last, state)
        write_log(out / "log.csv", history)
        plot_losses(out / "loss.png", history)
        stale = sum(1 for _ in _since_best(history))
        log.info("epoch %d: train %.4f  valid %.4f  (best %.4f)", epoch, history[-1]["train_loss"], valid_loss,
                 best_val)
    return {"out": str(out), "epochs": epoch, "steps": step, "best_valid_loss": best_val,
            "seconds": time.perf_counter() - t0, "history": history}


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
