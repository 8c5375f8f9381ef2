"""Fresh mixtures on the fly (dynamic mixing) and confidence-weighted BPD labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spatialdc.pipeline import label_weights, labels, specs
from spatialdc.pipeline.manifest import write_manifest
from spatialdc.pipeline.cli import main as dcgen
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.data import input_stats
from spatialdc.trainer.dynamic import DynamicMixingDataset, mixing_template
from spatialdc.trainer.loop import train
from tests.test_trainer import tiny_config


@pytest.fixture
def template_data(small_corpus, small_manifest, tmp_path, monkeypatch):
    """A tiny fm2 set rendered by dcgen (its shards carry the provenance dynamic mixing reads), run from a folder
    whose data_manifests/corpora/ holds the small corpus's manifest."""
    monkeypatch.chdir(tmp_path)
    write_manifest(tmp_path / "data_manifests" / "corpora" / f"{small_corpus.name}.csv", small_manifest)
    r = CliRunner().invoke(dcgen, ["render", "--corpus", str(small_corpus), "--speakers", "2", "--gender", "fm",
                                   "--num-mixtures", "8,4,4", "--workers", "0", "--quiet", "--out", "data"])
    assert r.exit_code == 0, r.output
    return tmp_path / "data" / "fm2"


def test_a_mixture_drawn_on_the_fly_equals_dcgen_render_of_its_spec(template_data, small_corpus, tmp_path):
    shards = ShardSet(expand_shards(str(template_data / "train-*.h5")))
    data = DynamicMixingDataset(mixing_template(shards), [small_corpus], len(shards), "bpd", input_stats(shards),
                                seed=3)
    data.set_epoch(1)
    fresh = data._read(2, 1)
    spec = data.spec(1, 2)
    assert spec.index == 1 * len(shards) + 2
    assert spec.utterance_ids != shards.read(2, ("spec",))["spec"].utterance_ids or spec.offsets != \
        shards.read(2, ("spec",))["spec"].offsets  # not the rendered dataset's mixture 2
    (tmp_path / "drawn").mkdir()
    specs.write_specs(tmp_path / "drawn" / "train.jsonl", [spec])
    r = CliRunner().invoke(dcgen, ["render", "--corpus", str(small_corpus), "--from-specs", str(tmp_path / "drawn"),
                                   "--split", "train", "--workers", "0", "--quiet", "--out", str(tmp_path / "again")])
    assert r.exit_code == 0, r.output
    rendered = ShardSet(expand_shards(str(tmp_path / "again" / "fm2" / "train-*.h5"))).read(0)
    # shards keep features to 10 mantissa bits (relative error <= 2**-11); labels are exact
    for name in ("magnitude", "npd"):
        assert np.allclose(rendered[name], fresh[name], rtol=2**-10, atol=1e-12), name
    assert np.array_equal(rendered["bpd"], fresh["bpd"])


def test_a_dynamic_mixing_run_resumes_to_the_same_weights(template_data, small_corpus, tmp_path):
    config = dict(dynamic_mixing=True, corpus=(str(small_corpus),), epochs=2)
    whole = train(tiny_config(template_data, **config), tmp_path / "whole", progress=False)
    train(tiny_config(template_data, **dict(config, epochs=1)), tmp_path / "cut", progress=False)
    resumed = train(tiny_config(template_data, **config), tmp_path / "cut", progress=False)
    assert whole["steps"] == resumed["steps"] == 4
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    for name, weight in a["model"].items():
        assert torch.equal(weight, b["model"][name]), name
    # fresh mixtures: another training loss than the fixed shards give
    fixed = train(tiny_config(template_data, epochs=2), tmp_path / "fixed", progress=False)
    assert fixed["history"][1]["train_loss"] != whole["history"][1]["train_loss"]
    with pytest.raises(ValueError, match="drawn from corpora"):
        train(tiny_config(template_data, dynamic_mixing=True, corpus=("corpora/elsewhere",)), tmp_path / "x",
              progress=False)


def test_confidence_weights_lie_in_0_1_and_are_near_1_for_well_separated_clusters():
    rng = np.random.default_rng(0)
    f, t = 257, 100
    truth = rng.integers(0, 2, size=(f, t))
    active = np.ones((f, t), bool)
    for spread, expect in ((0.005, 0.99), (0.15, None)):
        npd = np.where(truth == 0, -0.2, 0.2) + spread * rng.normal(size=(f, t))  # samples; max delay 0.29
        bpd = labels.bpd_labels(npd, active, 2, 0.29, np.random.default_rng(1))
        conf = label_weights.bpd_confidence(npd, bpd, active, 2, 0.29)
        assert conf.dtype == np.float32 and conf.shape == (f, t)
        assert conf.min() >= 0 and conf.max() <= 1
        if expect:
            assert conf[1:].mean() > expect  # well separated: certain almost everywhere
        else:
            mid = np.abs(npd) < 0.05  # between the two centres
            assert conf[mid].mean() < 0.5 < conf[~mid].mean()


def test_confidence_weights_scale_the_loss_weights_of_training_examples(small_dataset):
    from spatialdc.trainer.data import DeepClusteringDataset

    shards = ShardSet(expand_shards(str(small_dataset / "train-*.h5")))
    stats = input_stats(shards)
    plain = DeepClusteringDataset(shards, "bpd", stats)[0]["w"]
    weighted = DeepClusteringDataset(shards, "bpd", stats, label_weights="confidence")[0]["w"]
    assert torch.all(weighted <= plain) and torch.all((plain == 0) <= (weighted == 0))
    assert 0.3 < float(weighted.sum() / plain.sum()) < 1.0
    with pytest.raises(ValueError, match="confidence weights rate BPD labels"):
        DeepClusteringDataset(shards, "ds", stats, label_weights="confidence")


def test_dynamic_mixing_over_several_datasets_keeps_each_rows_gender_mix(template_data, small_corpus):
    from spatialdc.trainer.dynamic import mixing_templates

    r = CliRunner().invoke(dcgen, ["render", "--corpus", str(small_corpus), "--speakers", "2", "--gender", "f",
                                   "--split", "train", "--num-mixtures", "4", "--workers", "0", "--quiet",
                                   "--out", "data"])
    assert r.exit_code == 0, r.output
    shards = ShardSet(expand_shards([str(template_data.parent / "f2" / "train-*.h5"),
                                     str(template_data / "train-*.h5")]))
    templates, template_of = mixing_templates(shards)
    assert [t.gender for t in templates] == ["f", "fm"] and template_of == [0] * 4 + [1] * 8
    data = DynamicMixingDataset(templates, [small_corpus], len(shards), "bpd", input_stats(shards),
                                template_of=template_of)
    assert set(data.spec(2, 1).genders) == {"f"} and set(data.spec(2, 7).genders) == {"f", "m"}
