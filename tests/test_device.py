"""--device: auto takes a GPU only where torch sees one, CUDA asked for without one is refused with how to pick the
CPU, checkpoints and optimizer state move between devices, the loader's settings follow the device, the AMP step's
loss stays within its tolerance of fp32, the learning rate scales as documented, and the device script runs on a CPU.

No GPU here: a CUDA machine is mocked (torch.cuda.is_available / device_count) where only the choice is tested, and
torch's ``meta`` device stands for "another device" where tensors must move."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer import distributed
from spatialdc.trainer.checkpoint import load_checkpoint, model_args
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.data import DeepClusteringDataset
from spatialdc.trainer.device import loader_settings, on_cpu, resolve_device, to_device
from spatialdc.trainer.loop import batch_loss, make_loaders, start_run, train
from spatialdc.trainer.model import DeepClusteringNet
from spatialdc.trainer.precision import REFERENCE, StepMode
from spatialdc.trainer.schedule import scaled_lr, warm_up
from tests.test_trainer import tiny_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "fm2-bpd.pt"
NO_CUDA = "no CUDA device is visible"
# The AMP step (bf16 dense layer under CPU autocast, fused loss) against the fp32 reference step, relative: bf16 keeps
# 8 significant bits (2^-8 = 0.4 %), and the loss averages many bins. Measured on the shipped model: 3e-6 (loss),
# 4e-4 (gradients); on a random one 2e-6, 2.5e-3.
AMP_LOSS_REL, AMP_GRAD_REL = 1e-3, 1e-2


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine where torch sees two CUDA devices (only the choice of device is exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_cuda_without_a_gpu_is_refused_with_how_to_pick_the_cpu(no_cuda):
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=NO_CUDA) as err:
            resolve_device(spec)
        assert "--device cpu" in str(err.value) and f"--device {spec}" in str(err.value)
    with pytest.raises(ValueError, match="auto|cpu|cuda|cuda:N"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="'cuda0'"):
        TrainConfig(shards="x", valid="y", device="cuda0")


def test_every_tool_refuses_cuda_without_a_gpu(no_cuda, tmp_path):
    from spatialdc.eval import dccount, dceval, dcsep
    from spatialdc.eval.separator import Separator
    from spatialdc.trainer import cli

    runs = [(cli.main, ["--shards", "x", "--valid", "y", "--out", str(tmp_path / "run")]),
            (dceval.main, ["--checkpoint", str(SHIPPED), "--shards", "x", "--report", str(tmp_path / "r.csv")]),
            (dcsep.main, [str(tmp_path / "talk.wav"), "--out", str(tmp_path / "stems")]),
            (dccount.main, ["--checkpoint", str(SHIPPED), "--train", "x", "--valid", "y"])]
    for command, args in runs:
        result = CliRunner().invoke(command, args + ["--device", "cuda"])
        assert result.exit_code == 1 and NO_CUDA in result.output and "--device cpu" in result.output, result.output
    assert not (tmp_path / "run").exists()  # refused before any work
    with pytest.raises(ValueError, match=NO_CUDA):
        Separator.from_pretrained(device="cuda")


def test_auto_takes_the_gpu_torch_sees_and_the_process_group_speaks_nccl(two_gpus, monkeypatch):
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="sees 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun's second process on the node
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert distributed.backend(torch.device("cuda", 1)) == "nccl"
    assert distributed.backend(torch.device("cpu")) == "gloo"


def test_loader_settings_follow_the_device(small_dataset):
    """The documented rule: persistent workers everywhere; on CUDA pinned memory, and with workers a deeper
    prefetch; on the CPU the loader of earlier versions."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert loader_settings(cpu, 0) == {"num_workers": 0, "persistent_workers": False, "pin_memory": False}
    assert loader_settings(cpu, 3) == {"num_workers": 3, "persistent_workers": True, "pin_memory": False}
    assert loader_settings(cuda, 0) == {"num_workers": 0, "persistent_workers": False, "pin_memory": True}
    assert loader_settings(cuda, 6) == {"num_workers": 6, "persistent_workers": True, "pin_memory": True,
                                        "prefetch_factor": 4}
    config = tiny_config(small_dataset, num_workers=2)
    train_set, valid_set = (ShardSet(expand_shards(p)) for p in (config.shards, config.valid))
    stats = {"mean": torch.zeros(257).numpy(), "std": torch.ones(257).numpy()}
    for device, pinned, prefetch in ((cpu, False, 2), (cuda, True, 4)):  # built, not iterated: no worker starts
        for loader in make_loaders(config, train_set, valid_set, stats, device=device):
            assert (loader.pin_memory, loader.prefetch_factor, loader.persistent_workers) == (pinned, prefetch, True)
    batch = {"x": torch.ones(2, 3), "y": torch.ones(2, 3, dtype=torch.int64), "w": torch.ones(2, 3),
             "n": torch.tensor([2, 2])}
    assert to_device(batch, cpu) is batch
    moved = to_device(batch, torch.device("meta"))
    assert {k: v.device.type for k, v in moved.items()} == {"x": "meta", "y": "meta", "w": "meta", "n": "cpu"}


def test_a_run_saved_on_one_device_continues_on_another(small_dataset, tmp_path):
    """A CPU run's last.pt resumes on another device (``meta``): the weights and Adam's moments move with it, the
    counters and learning rate carry over, and a step runs there. Its log and checkpoints record the device."""
    config = tiny_config(small_dataset, device="cpu")
    train(config, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["device"] == "cpu" and load_checkpoint(tmp_path / "best.pt")["device"] == "cpu"
    with (tmp_path / "log.csv").open() as fh:
        assert [row["device"] for row in csv.DictReader(fh)] == ["cpu"]
    meta = torch.device("meta")
    run = start_run(config, ShardSet(expand_shards(config.shards)), state, meta)
    assert all(p.device == meta for p in run.model.parameters())
    moments = [v for s in run.optimizer.state.values() for k, v in s.items() if k != "step"]
    assert len(moments) == 2 * len(list(run.model.parameters())) and all(m.device == meta for m in moments)
    assert (run.step, run.epoch) == (state["step"], state["epoch"])
    assert run.optimizer.param_groups[0]["lr"] == state["optimizer"]["param_groups"][0]["lr"]
    train_set, valid_set = (ShardSet(expand_shards(p)) for p in (config.shards, config.valid))
    loader, _ = make_loaders(config, train_set, valid_set, run.stats, device=meta)
    loader.sampler.set_epoch(run.epoch)
    loss = batch_loss(run.model, to_device(next(iter(loader)), meta), config.target, StepMode(True, False, "meta"))
    loss.backward()
    run.optimizer.step()
    assert all(s["step"].item() == state["step"] + 1 for s in run.optimizer.state.values())


def test_a_run_resumed_under_another_device_setting_ends_with_the_weights_of_one_run(small_dataset, tmp_path):
    """--device is a resumable change: one epoch with --device cpu, then a second with --device auto (the CPU
    here) gives the weights of two epochs with --device auto."""
    train(tiny_config(small_dataset, device="cpu"), tmp_path / "split", progress=False)
    train(tiny_config(small_dataset, device="auto", epochs=2), tmp_path / "split", progress=False)
    train(tiny_config(small_dataset, device="auto", epochs=2), tmp_path / "whole", progress=False)
    split, whole = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("split", "whole"))
    assert all(torch.equal(split[k], whole[k]) for k in whole)


def test_checkpoint_states_go_to_the_cpu_keeping_their_types():
    net = DeepClusteringNet(257, 8, 1, 2, 0.0)
    state = net.state_dict()
    host = on_cpu({"model": state, "history": [{"x": torch.ones(1)}], "pair": (torch.ones(1), 3)})
    assert isinstance(host["model"], OrderedDict) and host["model"]._metadata == state._metadata
    assert all(host["model"][k].data_ptr() == v.data_ptr() for k, v in state.items())  # CPU tensors: no copy
    assert isinstance(host["pair"], tuple) and host["pair"][1] == 3


def test_the_amp_step_matches_fp32_within_its_tolerance(small_dataset):
    """The shipped model on real mixtures: the fast step with the dense layer in bf16 under CPU autocast (the AMP
    path) against the fp32 reference step, loss and gradients (tolerances: AMP_LOSS_REL, AMP_GRAD_REL)."""
    state = load_checkpoint(SHIPPED)
    net = DeepClusteringNet(**dict(model_args(state), dropout=0.0))
    net.load_state_dict({k: v.float() for k, v in state["model"].items()})
    data = DeepClusteringDataset(ShardSet(expand_shards(str(small_dataset / "train-*.h5"))), "bpd", state["stats"],
                                 100, seed=0)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    outcome = {}
    for name, mode in (("fp32", REFERENCE), ("amp", StepMode(fused=True, dense_bf16=True))):
        net.zero_grad()
        loss = batch_loss(net, batch, "bpd", mode)
        loss.backward()
        outcome[name] = loss.item(), torch.cat([p.grad.flatten() for p in net.parameters()])
    (loss32, grad32), (loss16, grad16) = outcome["fp32"], outcome["amp"]
    assert abs(loss16 - loss32) <= AMP_LOSS_REL * loss32
    assert float((grad16 - grad32).norm() / grad32.norm()) <= AMP_GRAD_REL


def test_the_learning_rate_scales_with_the_global_batch_and_warms_up(small_dataset, tmp_path):
    assert scaled_lr(1e-3, 64, 1, "none") == 1e-3
    assert scaled_lr(1e-3, 32, 2, "linear") == pytest.approx(8e-3)  # global batch 64 = 8 x the reference
    assert scaled_lr(1e-3, 64, 1, "sqrt") == pytest.approx(1e-3 * math.sqrt(8))
    with pytest.raises(ValueError, match="cubic"):
        scaled_lr(1e-3, 8, 1, "cubic")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    seen = []
    for step in range(6):
        warm_up(opt, step, 4)
        seen.append(opt.param_groups[0]["lr"])
        if step == 1:
            opt.param_groups[0]["lr"] *= 0.5  # a plateau halving inside the warm-up is kept
    assert seen == pytest.approx([0.25, 0.5, 0.375, 0.5, 0.5, 0.5])
    config = tiny_config(small_dataset, lr_scaling="linear", lr=1e-3)  # batch 4: half the reference batch
    history = train(config, tmp_path, progress=False)["history"]
    assert history[0]["lr"] == pytest.approx(5e-4)


@pytest.mark.slow
def test_the_device_script_runs_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/gpu.sh with --device cpu --minutes 1: the prepared GPU run works before a GPU is lent."""
    # gpu.sh runs `python3`: this interpreter's (the project's environment, activated or not)
    env = dict(os.environ, OUT=str(tmp_path / "out"), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu", "--minutes", "1",
                          "--work", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"best.pt", "log.csv", "loss.png", "results.md", "results.json",
                                               "gpu.log"}
    results = json.loads((out / "results.json").read_text())
    assert [r["ok"] for r in results["equality"]] == [True, True]
    assert results["throughput"][0]["frames_per_s"] > 0
    assert math.isfinite(results["fine_tune"]["best_valid_loss"]) and results["fine_tune"]["device"] == "cpu"
    assert load_checkpoint(out / "best.pt")["device"] == "cpu"


def test_gpu_tree_shrinks_what_travels_under_the_device_limit_and_restores_it(tmp_path):
    """benchmarks/gpu_tree.sh (issue 23): the tree the device tool sends (tracked + untracked-not-ignored files) goes
    under 64 MiB for the GPU call, nothing leaves the disk, and restore gives back the index exactly."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the device tool sends a git working tree")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(clone)], check=True)
    script = clone / "benchmarks" / "gpu_tree.sh"
    script.write_bytes((ROOT / "benchmarks" / "gpu_tree.sh").read_bytes())
    subprocess.run(["git", "add", "benchmarks/gpu_tree.sh"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "gpu_tree.sh", "--allow-empty"], cwd=clone, check=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))

    def run(verb: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), verb], cwd=clone, capture_output=True, text=True)

    def travelling() -> set[str]:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=clone,
                             capture_output=True, text=True, check=True).stdout
        return set(out.split())

    before, on_disk = travelling(), sorted(p for p in clone.rglob("*") if p.is_file() and ".git" not in p.parts)
    shrunk = run("shrink")
    assert shrunk.returncode == 0, shrunk.stderr
    mib = float(shrunk.stdout.split(" MiB travel")[0].split()[-1])
    assert mib < 64 - 4.5  # room for .gpu-wheels (4.3 MB)
    left = before - travelling()
    assert "models/any-bpd.pt" not in left and "models/fm2-bpd.pt" in left
    assert not any(p.startswith(("pipeline/", "trainer/", "eval/", "benchmarks/")) for p in left)
    assert sum(p.startswith("corpora/") for p in left) == 38  # the test speakers' clips only
    assert run("shrink").returncode == 1  # twice is refused
    assert sorted(p for p in clone.rglob("*") if p.is_file() and ".git" not in p.parts) == on_disk
    restored = run("restore")
    assert restored.returncode == 0, restored.stderr
    assert travelling() == before
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == ""
