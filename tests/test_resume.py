"""kill -9 in the middle of a render or a training run, then the same command: the result equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from spatialdc.pipeline import shard_index
from spatialdc.pipeline.cli import main as dcgen
from spatialdc.pipeline.shards import ShardSet, expand_shards
from tests.conftest import ROOT


def render_args(corpus_dir, manifest, out):
    return ["render", "--corpus", str(corpus_dir), "--manifest", str(manifest), "--gender", "fm", "--speakers", "2",
            "--split", "test", "--num-mixtures", "60", "--shard-size", "2", "--workers", "0", "--quiet",
            "--out", str(out)]


def test_kill_9_then_rerun_equals_an_uninterrupted_render(small_corpus, tmp_path):
    manifest = tmp_path / "m.csv"
    runner = CliRunner()
    assert runner.invoke(dcgen, ["manifest", str(small_corpus), "--out", str(manifest)]).exit_code == 0
    whole = tmp_path / "whole"
    r = runner.invoke(dcgen, render_args(small_corpus, manifest, whole))
    assert r.exit_code == 0, r.output

    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "spatialdc.pipeline.cli"] + render_args(small_corpus, manifest, cut),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((cut / "fm2").glob("test-*.h5")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list((cut / "fm2").glob("test-*.h5")))
    assert 1 <= done_at_kill < 30, f"{done_at_kill} of 30 shards existed at the kill: not an interruption"

    r = runner.invoke(dcgen, render_args(small_corpus, manifest, cut))
    assert r.exit_code == 0, r.output
    assert f"({done_at_kill} already complete)" in r.output or f"({done_at_kill + 1} already complete)" in r.output
    names = sorted(p.name for p in (whole / "fm2").glob("test-*.h5"))
    assert names == sorted(p.name for p in (cut / "fm2").glob("test-*.h5")) and len(names) == 30
    for name in names:
        assert shard_index.file_sha256(whole / "fm2" / name) == shard_index.file_sha256(cut / "fm2" / name), name
    assert not list((cut / "fm2").glob(".*.tmp"))
    ids = [ShardSet([p]).read(i, ("spec",))["spec"].index
           for p in expand_shards(str(cut / "fm2" / "test-*.h5")) for i in range(2)]
    assert sorted(ids) == list(range(60))
    index = json.loads((cut / "fm2" / "index.json").read_text())
    assert sum(e["num_mixtures"] for e in index["shards"]) == 60


def test_dctrain_killed_mid_run_resumes_to_the_same_weights(small_dataset, tmp_path):
    """kill -9 after the first checkpoint; the same command then continues (step, optimizer, RNG) and ends with the
    weights of an uninterrupted run."""
    import torch

    from spatialdc.trainer.checkpoint import load_checkpoint

    def cmd(out):
        return [sys.executable, "-m", "spatialdc.trainer", "--shards", str(small_dataset / "train-*.h5"), "--valid",
                str(small_dataset / "valid-*.h5"), "--layers", "1", "--hidden", "16", "--embedding-dim", "4",
                "--batch-size", "4", "--chunk-frames", "40", "--num-workers", "0", "--epochs", "40", "--threads", "1",
                "--quiet", "--out", str(out)]

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(cmd(tmp_path / "whole"), check=True, env=env, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(tmp_path / "cut"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "cut" / "last.pt"
    deadline = time.time() + 300
    while not last.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)["epoch"]
    assert 1 <= killed_at < 40, "the run ended before it could be killed; raise --epochs"
    subprocess.run(cmd(tmp_path / "cut"), check=True, env=env, capture_output=True, timeout=600)
    whole, cut = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(last)
    assert cut["step"] == whole["step"] and [h["epoch"] for h in cut["history"]] == list(range(1, 41))
    for name, p in whole["model"].items():
        torch.testing.assert_close(cut["model"][name], p, rtol=0, atol=1e-6, msg=name)
