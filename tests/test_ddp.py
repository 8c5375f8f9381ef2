"""Two training processes (torchrun, DDP on gloo, 127.0.0.1) take the same step as one process on the combined
batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.distributed import GlobalBatchSampler


def test_global_batches_split_the_single_process_order():
    one = list(GlobalBatchSampler(10, 4, 0, 1, seed=3))
    r0 = list(GlobalBatchSampler(10, 2, 0, 2, seed=3))
    r1 = list(GlobalBatchSampler(10, 2, 1, 2, seed=3))
    assert len(one) == 8 and len(r0) == len(r1) == 4
    assert one[:4] == r0[:2] + r1[:2] and one[4:8] == r0[2:] + r1[2:]


def _run(cmd, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]


def test_two_processes_match_one_process_on_the_combined_batch(small_dataset, tmp_path):
    common = ["--shards", str(small_dataset / "train-*.h5"), "--valid", str(small_dataset / "valid-*.h5"),
              "--layers", "1", "--hidden", "16", "--embedding-dim", "4", "--dropout", "0", "--chunk-frames", "40",
              "--num-workers", "0", "--max-steps", "1", "--epochs", "1", "--quiet", "--threads", "1",
              "--precision", "fp32"]  # the bf16 dense layer (auto, where the CPU has bf16) rounds differently per batch split
    _run([sys.executable, "-m", "spatialdc.trainer", *common, "--batch-size", "4", "--out", str(tmp_path / "one")], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "spatialdc.trainer"]
    _run([*torchrun, *common, "--batch-size", "2", "--out", str(tmp_path / "two")], tmp_path)
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert one["step"] == two["step"] == 1 and two["world_size"] == 2
    for name, p in one["model"].items():
        torch.testing.assert_close(two["model"][name], p, rtol=1e-4, atol=1e-5, msg=name)
    assert abs(one["history"][0]["valid_loss"] - two["history"][0]["valid_loss"]) < 1e-4
