"""Which arithmetic a training or inference step uses (``--precision``), on the CPU or a CUDA GPU.

- ``fp32``: the reference step, float32 throughout, autograd through unit normalization and the low-rank loss; it
  reproduces the weights of runs made before ``--precision`` existed bit for bit. On CUDA it is IEEE float32 (no
  TF32 in cuDNN's LSTM or in matrix products, :func:`set_tf32`).
- ``auto`` (the default): the fast step: unit normalization and loss fused into one autograd node with its
  analytic gradient (:func:`spatialdc.trainer.loss.fused_affinity_loss`, computed in float32), and the dense output
  layer's matrix products in bfloat16 where the hardware has bf16: on the CPU where it has native bf16 instructions
  (AVX-512 BF16 or AMX, as oneDNN uses them), on CUDA where ``torch.cuda.is_bf16_supported()`` (Ampere and later);
  float32 elsewhere. On CUDA the LSTM's float32 products may use TF32 tensor cores (torch's default for cuDNN).
- ``bf16``: the fast step with the bf16 dense layer forced, even where the CPU emulates bf16 (for tests; on a CPU
  without the instructions it is many times slower: RESULTS.md).

The weights stay float32 (the optimizer's master copy) and the BLSTM computes in float32 in every mode. The caller
chooses the arithmetic (the training step, the inference embedding), not the model's ``forward``:
:func:`dense_autocast` puts only the dense layer under ``torch.autocast``, on both devices, which is autocast of the
whole forward but for the LSTM:

- CPU autocast would run ``nn.LSTM`` in bfloat16 (checked with torch 2.13: its outputs come back bf16), which
  oneDNN does slowly and less accurately;
- CUDA autocast would run cuDNN's LSTM in float16, not bfloat16, whatever dtype autocast is given (ATen's
  ``AutocastRNN.cpp`` casts ``_cudnn_rnn``'s input, weights and states to ``kHalf``), and float16 gradients without
  loss scaling can underflow.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Iterator

import torch

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class StepMode:
    """How a step computes: ``fused`` loss, ``dense_bf16`` output layer, on ``device_type`` (``"cpu"`` or
    ``"cuda"``, the autocast device); ``name`` is what checkpoints and log.csv record (beside the device)."""

    fused: bool
    dense_bf16: bool
    device_type: str = "cpu"

    @property
    def name(self) -> str:
        if not self.fused:
            return "fp32"
        return "bf16-dense+fused-loss" if self.dense_bf16 else "fp32+fused-loss"


REFERENCE = StepMode(fused=False, dense_bf16=False)


def native_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions that oneDNN uses (AVX-512 BF16 or AMX tiles)."""
    try:
        has_isa = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return has_isa and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or differently built torch: take the safe path
        return False


def resolve(precision: str, device: torch.device | str = "cpu") -> StepMode:
    """The step a ``--precision`` value gives on this machine's ``device`` (the CPU: what it gave before devices
    existed).

    Raises:
        ValueError: not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    device_type = torch.device(device).type
    if precision == "fp32":
        return StepMode(fused=False, dense_bf16=False, device_type=device_type)
    native = native_bf16() if device_type == "cpu" else torch.cuda.is_bf16_supported()
    if precision == "bf16" and not native:
        log.warning("--precision bf16 on a %s without native bf16: bf16 products are emulated and much slower than "
                    "float32; use --precision auto", "CPU" if device_type == "cpu" else "GPU")
    return StepMode(fused=True, dense_bf16=precision == "bf16" or native, device_type=device_type)


def set_tf32(enabled: bool) -> None:
    """Let (or forbid) CUDA's float32 LSTM and matrix products use TF32 tensor cores (10-bit mantissa products,
    float32 accumulation): allowed by the fast steps, forbidden by the ``fp32`` reference step. Process-wide
    (torch's own switches); a no-op for CPU work."""
    precision = "tf32" if enabled else "ieee"
    try:  # torch >= 2.9
        torch.backends.cudnn.rnn.fp32_precision = precision
        torch.backends.cuda.matmul.fp32_precision = precision
    except AttributeError:
        torch.backends.cudnn.allow_tf32 = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled


@contextlib.contextmanager
def dense_autocast(net: torch.nn.Module, enabled: bool, device_type: str = "cpu",
                   dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """While open, every call of ``net``'s output (dense) layer runs under ``torch.autocast(device_type, dtype)``:
    its matrix product in ``dtype`` (bfloat16), its output in ``dtype`` (the model casts it back to float32); the
    BLSTM, dropout and normalization compute as they would without the context (float32).

    The same arithmetic as a ``torch.autocast`` block around the dense layer alone: a forward pre-hook on the layer
    enters the autocast context and a forward hook (also called when the layer raises) leaves it; both hooks are
    removed when the ``with`` block ends.

    Args:
        net: a :class:`~spatialdc.trainer.model.DeepClusteringNet`, or a ``DistributedDataParallel`` around one.
        enabled: False: a no-op (float32 throughout). device_type: ``"cpu"`` or ``"cuda"``, as ``torch.autocast``
            takes it. dtype: the autocast dtype.

    Example::

        with dense_autocast(model, mode.dense_bf16):
            z = model(x, normalize=False)  # (B, T, F, D) float32; dense product in bf16
    """
    if not enabled:
        yield
        return
    dense = getattr(net, "module", net).dense  # DDP keeps the model as .module
    opened: list[torch.autocast] = []

    def enter(_module, _args) -> None:
        opened.append(torch.autocast(device_type, dtype=dtype))
        opened[-1].__enter__()

    def leave(_module, _args, _output) -> None:
        opened.pop().__exit__(None, None, None)

    handles = [dense.register_forward_pre_hook(enter), dense.register_forward_hook(leave, always_call=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
