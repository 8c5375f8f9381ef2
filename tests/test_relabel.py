"""dcrelabel: bootstrapped labels written beside the shards (label sidecars), never into them; resumable shard by
shard; read back by ShardSet and dctrain --labels."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from spatialdc.eval.bootstrap import BootstrapSettings
from spatialdc.eval.count import checkpoint_weights_sha256
from spatialdc.eval.dcrelabel import main as dcrelabel
from spatialdc.eval.relabel import label_mixtures, relabel_dataset
from spatialdc.eval.separate import load_model
from spatialdc.pipeline import build
from spatialdc.pipeline.label_sidecar import LabelsUnavailable, read_sidecar_attrs, sidecar_path
from spatialdc.pipeline.shard_index import file_sha256
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.pipeline.verify import verify_dataset
from spatialdc.trainer.cli import main as dctrain
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.data import DeepClusteringDataset, input_stats
from spatialdc.trainer.loop import train

TEACHER = "any-bpd"  # the shipped model: a real network, fast enough on 16 two-second mixtures


def folder_bytes(ddir):
    return {p.name: file_sha256(p) for p in sorted(ddir.iterdir()) if p.is_file()}


@pytest.fixture
def dataset(small_dataset, tmp_path):
    """A copy of the tiny fm2 dataset (8 train, 4 valid, 4 test mixtures in shards of 4)."""
    return shutil.copytree(small_dataset, tmp_path / "fm2")


@pytest.fixture
def relabeled(dataset):
    """The copy with labels ``boot1`` from the shipped teacher."""
    r = CliRunner().invoke(dcrelabel, [str(dataset), "--checkpoint", TEACHER, "--name", "boot1", "--quiet"])
    assert r.exit_code == 0, r.output
    return dataset


def test_relabel_leaves_the_shards_byte_identical_and_records_provenance(dataset):
    before = folder_bytes(dataset)
    r = CliRunner().invoke(dcrelabel, [str(dataset), "--checkpoint", TEACHER, "--name", "boot1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "16 mixtures in 4 shards (4 labeled now, 0 already current)" in r.output
    assert "agreement with DS (16 mixtures with references)" in r.output
    assert folder_bytes(dataset) == before  # shards, index.json, specs: not one byte changed
    assert verify_dataset(dataset) == []  # and the folder holds no stray shard
    shards = sorted(dataset.glob("*-*.h5"))
    model = load_model(TEACHER)
    for shard in shards:
        attrs = read_sidecar_attrs(sidecar_path(shard, "boot1"))
        assert attrs["shard"] == shard.name and attrs["shard_sha256"] == file_sha256(shard)
        assert attrs["num_mixtures"] == 4 and attrs["specs_sha256"] == ShardSet([shard]).attrs[0]["specs_sha256"]
        p = attrs["provenance"]
        assert p["teacher"]["weights_sha256"] == checkpoint_weights_sha256(model.path)
        assert p["teacher"]["checkpoint"] == TEACHER and p["rule"] == BootstrapSettings().rule
        assert p["settings"] == BootstrapSettings().to_dict() and isinstance(p["command"], list)
        assert {"numpy", "torch", "spatial-deep-clustering"} <= set(p["versions"]) and len(p["measures"]) == 4
    # the field read back is what the rule gives for those mixtures
    s = ShardSet([shards[0]])
    data = [s.read(i, ("magnitude", "npd", "bpd", "spec", "labels:boot1")) for i in range(4)]
    for d, boot in zip(data, label_mixtures(model, data, BootstrapSettings())):
        assert d["labels:boot1"].dtype == np.uint8 and d["labels:boot1"].shape == d["bpd"].shape
        np.testing.assert_array_equal(d["labels:boot1"], boot.labels)


def test_a_missing_label_field_names_the_file_and_the_command(dataset):
    shard = sorted(dataset.glob("train-*.h5"))[0]
    with pytest.raises(LabelsUnavailable) as err:
        ShardSet([shard]).read(0, ("labels:boot9",))
    assert str(sidecar_path(shard, "boot9")) in str(err.value) and "dcrelabel" in str(err.value)
    assert "--name boot9" in str(err.value)


def test_a_stale_sidecar_is_refused_then_made_again(relabeled, small_corpus, small_specs, tmp_path):
    # the same specs rendered again with other provenance: other bytes of the same mixtures (a re-rendered shard)
    build.render_dataset(small_specs, small_corpus, tmp_path / "again", shard_size=4, workers=0, progress=False,
                         provenance={"note": "rendered again"})
    shard = relabeled / "test-00000.h5"
    shutil.copy(tmp_path / "again" / "fm2" / shard.name, shard)
    with pytest.raises(LabelsUnavailable) as err:
        ShardSet([shard]).read(0, ("labels:boot1",))
    assert "stale" in str(err.value) and str(sidecar_path(shard, "boot1")) in str(err.value)
    assert "--name boot1" in str(err.value)  # the recorded command, to run again
    summary = relabel_dataset(relabeled, TEACHER, "boot1", BootstrapSettings(), progress=False)
    assert summary.labeled == [shard.name] and len(summary.kept) == 3 and len(summary.measures) == 16
    assert ShardSet([shard]).read(0, ("labels:boot1",))["labels:boot1"].shape == (257, 251)


def test_labels_of_another_teacher_or_rule_are_kept_unless_overwrite(relabeled):
    path = sidecar_path(relabeled / "test-00000.h5", "boot1")  # the first of the folder's shards
    before = file_sha256(path)
    args = [str(relabeled), "--checkpoint", TEACHER, "--name", "boot1", "--rule", "kmeans", "--quiet"]
    r = CliRunner().invoke(dcrelabel, args)
    assert r.exit_code != 0 and str(path) in r.output and "--overwrite" in r.output
    assert "--rule posterior" in r.output and "--rule kmeans" in r.output  # theirs and this run's
    assert file_sha256(path) == before
    r = CliRunner().invoke(dcrelabel, args + ["--overwrite"])
    assert r.exit_code == 0, r.output
    assert read_sidecar_attrs(path)["provenance"]["rule"] == "kmeans"


def test_relabel_killed_between_shards_resumes_to_the_same_labels(small_corpus, small_specs, tmp_path):
    build.render_dataset({"test": small_specs["test"]}, small_corpus, tmp_path / "a", shard_size=1, workers=0,
                         progress=False)  # 4 shards of one mixture: 4 sidecars to write
    ddir = tmp_path / "a" / "fm2"
    whole = shutil.copytree(ddir, tmp_path / "whole")
    relabel_dataset(whole, TEACHER, "boot1", BootstrapSettings(), progress=False)
    cmd = [sys.executable, "-m", "spatialdc.eval.dcrelabel", str(ddir), "--checkpoint", TEACHER, "--name", "boot1",
           "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((ddir / "labels-boot1").glob("*.labels.h5")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted((ddir / "labels-boot1").glob("*.labels.h5"))
    assert 1 <= len(done) < 4, f"{len(done)} of 4 sidecars existed at the kill: not an interruption"
    assert all(read_sidecar_attrs(p) is not None for p in done)  # never half a sidecar under its name
    r = CliRunner().invoke(dcrelabel, cmd[3:])
    assert r.exit_code == 0, r.output
    assert f"({4 - len(done)} labeled now, {len(done)} already current)" in r.output
    assert not list((ddir / "labels-boot1").glob(".*.tmp"))
    for shard in sorted(ddir.glob("test-*.h5")):
        a = ShardSet([shard]).read(0, ("labels:boot1",))["labels:boot1"]
        b = ShardSet([whole / shard.name]).read(0, ("labels:boot1",))["labels:boot1"]
        np.testing.assert_array_equal(a, b)


def test_dctrain_trains_on_the_label_field(relabeled, tmp_path):
    shards = ShardSet(expand_shards(str(relabeled / "train-*.h5")))
    item = DeepClusteringDataset(shards, "bpd", input_stats(shards), labels="boot1")[5]
    np.testing.assert_array_equal(item["y"].numpy().T, shards.read(5, ("labels:boot1",))["labels:boot1"])
    config = TrainConfig(shards=str(relabeled / "train-*.h5"), valid=str(relabeled / "valid-*.h5"), layers=1,
                         hidden=16, embedding_dim=4, batch_size=4, epochs=1, chunk_frames=40, labels="boot1",
                         label_weights="direct-path")
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["best_valid_loss"])
    # and the loss it reports is the loss on those labels, not on the shards' BPD labels
    other = train(TrainConfig(**dict(config.to_dict(), labels="")), tmp_path / "run-bpd", progress=False)
    assert other["best_valid_loss"] != summary["best_valid_loss"]


def test_dctrain_refuses_missing_labels_before_training(dataset, tmp_path):
    r = CliRunner().invoke(dctrain, ["--shards", str(dataset / "train-*.h5"), "--valid", str(dataset / "valid-*.h5"),
                                     "--hidden", "16", "--layers", "1", "--labels", "boot1", "--quiet",
                                     "--out", str(tmp_path / "run")])
    assert r.exit_code != 0
    assert str(sidecar_path(dataset / "train-00000.h5", "boot1")) in r.output and "dcrelabel" in r.output
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("kw, word", [(dict(target="ds"), "--target bpd"), (dict(dynamic_mixing=True),
                                      "--dynamic-mixing"), (dict(labels="a b"), "label name")])
def test_train_config_refuses_labels_it_cannot_use(kw, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(**dict(dict(shards="a", valid="b", labels="boot1"), **kw))


def test_dcrelabel_has_help_with_the_settings_defaults():
    r = CliRunner().invoke(dcrelabel, ["--help"])
    assert r.exit_code == 0
    for option in ("--rule", "--keep-share", "--concentration", "--cluster-db", "--seed", "--split", "--overwrite"):
        assert option in r.output
