"""A run directory's human-readable record: ``log.csv`` (one row per epoch) and ``loss.png``."""

from __future__ import annotations

import csv
from pathlib import Path

LOG_FIELDS = ["epoch", "step", "train_loss", "valid_loss", "lr", "train_seconds", "seconds", "cpu_seconds",
              "step_mode", "device"]  # device: "cpu" or "cuda:0 (NVIDIA H200)"; empty in rows of earlier versions


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
