"""The learning rate of a run when the batch grows (``--lr-scaling``, ``--warmup-steps``): a GPU trains on batches
of 64 to 256 mixtures where the CPU took 8.

The rule: ``--lr`` is the Adam rate of the **reference batch of 8 mixtures** (the recipes of the shipped models);
a run whose global batch is B = ``--batch-size`` x processes uses

- ``none`` (the default): ``lr`` as given, whatever B (every run before this option);
- ``linear``: ``lr x B / 8``, the linear scaling rule of Goyal et al. 2017 ("Accurate, Large Minibatch SGD:
  Training ImageNet in 1 Hour", Sec. 2.1), which they pair with a gradual warm-up (Sec. 2.2) because the scaled
  rate is too large for the first steps; give ``--warmup-steps`` with it;
- ``sqrt``: ``lr x sqrt(B / 8)``, the square-root rule, which Malladi et al. 2022 ("On the SDEs and Scaling Rules for
  Adaptive Gradient Algorithms", NeurIPS) derive for Adam and RMSprop, the optimizer dctrain uses (Goyal et al.'s
  linear rule is derived for SGD). The one to try first with Adam.

The warm-up ramps the rate linearly from ``1 / warmup_steps`` of it at step 1 to all of it at step
``warmup_steps``. It multiplies the optimizer's current rate step by step (never sets it), so the plateau
schedule's halving (``--lr-schedule plateau``) and a resumed run's saved rate compose with it.
"""

from __future__ import annotations

import math

import torch

LR_SCALINGS = ("none", "linear", "sqrt")
REFERENCE_BATCH = 8  # mixtures per step of the recipes --lr is tuned for (RESULTS.md, the shipped models' cards)


def scaled_lr(lr: float, batch_size: int, world_size: int, rule: str) -> float:
    """The Adam rate a run uses: ``lr`` scaled by ``rule`` from the reference batch to the global batch
    ``batch_size x world_size`` (see the module docstring).

    Raises:
        ValueError: a rule outside :data:`LR_SCALINGS`.
    """
    ratio = batch_size * world_size / REFERENCE_BATCH
    if rule == "none":
        return lr
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    raise ValueError(f"lr scaling {rule!r} is not one of {LR_SCALINGS}")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The share of the full rate used by optimizer step ``step`` (0-based): ``(step + 1) / warmup_steps`` during
    the warm-up, 1 after it (and always, without one)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def warm_up(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int) -> None:
    """Before optimizer step ``step`` (0-based): bring every parameter group's rate from the warm-up share of step
    ``step - 1`` to that of ``step`` (at step 0: from the full rate, as the optimizer was built, to its first share).
    Nothing after the warm-up, nor without one."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return
    before = warmup_factor(step - 1, warmup_steps) if step > 0 else 1.0
    for group in optimizer.param_groups:
        group["lr"] *= warmup_factor(step, warmup_steps) / before
