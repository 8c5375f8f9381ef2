"""kill -9 in the middle of a render, then the same command: the result equals an uninterrupted render."""

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from pipeline import shards
from pipeline.cli import main as dcgen
from pipeline.shards import ShardSet, expand_shards


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
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli"] + render_args(small_corpus, manifest, cut),
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
        assert shards.file_sha256(whole / "fm2" / name) == shards.file_sha256(cut / "fm2" / name), name
    assert not list((cut / "fm2").glob(".*.tmp"))
    ids = [ShardSet([p]).read(i, ("spec",))["spec"].index
           for p in expand_shards(str(cut / "fm2" / "test-*.h5")) for i in range(2)]
    assert sorted(ids) == list(range(60))
    index = json.loads((cut / "fm2" / "index.json").read_text())
    assert sum(e["num_mixtures"] for e in index["shards"]) == 60
