"""The bootstrap rule (eval/bootstrap.py): a teacher's embeddings label the bins whose spatial labels are not
confident. A teacher stub that is right by construction shows what the rule does with a good teacher; the shipped
anechoic model on reverberant test mixtures shows it with a real network."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from spatialdc.eval.bootstrap import (RULES, BootstrapSettings, anchor_means, bootstrap_labels, joint_labels,
                                      match_clusters)
from spatialdc.eval.relabel import label_mixtures
from spatialdc.eval.separate import load_model
from spatialdc.pipeline import features, planner, specs
from spatialdc.pipeline.label_weights import bpd_confidence, cluster_posteriors
from spatialdc.pipeline.manifest import read_manifest
from spatialdc.pipeline.render import render_mixture
from tests.conftest import BUNDLED, ROOT


def as_dict(ex) -> dict:
    return {"magnitude": ex.magnitude, "npd": ex.npd, "bpd": ex.bpd, "ds": ex.ds, "spec": ex.spec}


@pytest.fixture(scope="module")
def room_mixtures(small_manifest, small_corpus) -> list[dict]:
    """Three reverberant fm2 mixtures (RT60 0.2-0.6 s, 1-2 m, 1 cm) of the tiny corpus."""
    config = dataclasses.replace(specs.RenderConfig(), room="reverberant")
    plan = planner.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 3})["test"]
    return [as_dict(render_mixture(s, small_corpus)) for s in plan]


def ds_aligned(d: dict) -> np.ndarray:
    """The DS labels renamed to the spatial labels' numbering (the permutation agreeing most on non-silent bins)."""
    active = features.active_bins(d["magnitude"])
    n = d["spec"].num_speakers
    perm = max(itertools.permutations(range(n)), key=lambda p: (np.asarray(p)[d["ds"]] == d["bpd"])[active].sum())
    return np.asarray(perm)[d["ds"]]


def oracle_teacher(ds: np.ndarray, seed: int, noise: float = 0.5, dim: int = 4) -> np.ndarray:
    """(F, T, D) unit embeddings of a teacher that knows DS: the one-hot of the bin's DS label plus Gaussian noise."""
    e = np.eye(dim)[ds] + noise * np.random.default_rng(seed).standard_normal(ds.shape + (dim,))
    return (e / np.linalg.norm(e, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("rule", RULES)
def test_a_good_teacher_beats_the_spatial_labels_on_the_bins_it_replaces(room_mixtures, rule):
    """Mean over the mixtures: a teacher as good as this stub makes a mixture worse only where the confident bins'
    labels are themselves mostly wrong (then the anchors are), which happens in reverberant rooms."""
    new, old = [], []
    for k, d in enumerate(room_mixtures):
        settings = BootstrapSettings(rule=rule, keep_share=0.35)
        boot = bootstrap_labels(oracle_teacher(d["ds"], k), d["magnitude"], d["npd"], d["bpd"], 2,
                                d["spec"].max_delay_samples, settings, d["spec"].mixture_id)
        ds, active = ds_aligned(d), features.active_bins(d["magnitude"])
        replaced = active & ~boot.confident
        assert not boot.fallback and 0.2 < boot.confident[active].mean() <= 0.35 + 1e-3
        np.testing.assert_array_equal(boot.labels[boot.confident], d["bpd"][boot.confident])
        new.append((boot.labels == ds)[replaced].mean())
        old.append((d["bpd"] == ds)[replaced].mean())
    assert np.mean(new) > np.mean(old) + 0.05, (rule, new, old)


def test_clusters_are_renamed_to_the_spatial_labels():
    rng = np.random.default_rng(0)
    spatial = rng.integers(0, 3, (20, 30)).astype(np.uint8)
    clusters = (spatial + 1) % 3  # the same partition, other names
    confident = rng.random((20, 30)) < 0.3
    np.testing.assert_array_equal(match_clusters(clusters, spatial, confident, 3), spatial)


def test_a_label_without_confident_bins_keeps_the_spatial_labels(room_mixtures):
    d = room_mixtures[0]
    spatial = np.zeros_like(d["bpd"])  # every bin label 0: no anchor for label 1
    assert anchor_means(oracle_teacher(d["ds"], 0), spatial, np.ones(spatial.shape, bool), 2) is None
    boot = bootstrap_labels(oracle_teacher(d["ds"], 0), d["magnitude"], d["npd"], spatial, 2,
                            d["spec"].max_delay_samples, BootstrapSettings(), "x")
    assert boot.fallback and (boot.labels == 0).all()


def test_joint_labels_go_from_the_spatial_posterior_to_the_nearest_mean_with_the_concentration():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((6, 7, 3))
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    anchors = np.eye(3)[:2]
    post = rng.dirichlet([1, 1], size=(6, 7)).transpose(2, 0, 1)  # (K, F, T)
    nearest = np.argmax(emb @ anchors.T, axis=-1)
    np.testing.assert_array_equal(joint_labels(emb, anchors, None, 1.0), nearest)
    np.testing.assert_array_equal(joint_labels(emb, anchors, post, 1e4), nearest)
    np.testing.assert_array_equal(joint_labels(emb, anchors, post, 1e-6), np.argmax(post, axis=0))


def test_cluster_posteriors_sum_to_one_and_give_the_confidence(room_mixtures):
    d = room_mixtures[1]
    active = features.active_bins(d["magnitude"])
    post = cluster_posteriors(d["npd"], d["bpd"], active, 2, d["spec"].max_delay_samples)
    np.testing.assert_allclose(post.sum(axis=0), 1.0)
    own = np.take_along_axis(post, d["bpd"][None].astype(np.intp), axis=0)[0]
    conf = bpd_confidence(d["npd"], d["bpd"], active, 2, d["spec"].max_delay_samples)
    np.testing.assert_allclose(conf, np.clip(2 * own - 1, 0, 1), atol=1e-6)


@pytest.mark.parametrize("kw, word", [(dict(rule="x"), "rule"), (dict(keep_share=0), "keep_share"),
                                      (dict(concentration=0), "concentration")])
def test_settings_refuse_bad_values_naming_them(kw, word):
    with pytest.raises(ValueError, match=word):
        BootstrapSettings(**kw)


def test_the_shipped_model_beats_the_spatial_labels_it_replaces_in_reverberant_rooms():
    """A real network: the shipped anechoic any-bpd as the teacher of the first 8 reverberant fm2 test mixtures of
    the label ladder (bundled test speakers, 1 cm, RT60 0.2-0.6 s, 1-2 m), with dcrelabel's default rule. Where
    it replaces a spatial label it agrees with DS more often (mean over the mixtures), and over all bins too."""
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    config = specs.RenderConfig(mic_spacing_m=0.01, room="reverberant")
    plan = planner.plan_dataset(utts, BUNDLED, config, 0, "fm", 2, {"test": 8})["test"]
    data = [as_dict(render_mixture(s, BUNDLED)) for s in plan]
    new, old, new_all, old_all = [], [], [], []
    for d, boot in zip(data, label_mixtures(load_model("any-bpd"), data, BootstrapSettings())):
        ds, active = ds_aligned(d), features.active_bins(d["magnitude"])
        replaced = active & ~boot.confident
        new.append((boot.labels == ds)[replaced].mean())
        old.append((d["bpd"] == ds)[replaced].mean())
        new_all.append((boot.labels == ds)[active].mean())
        old_all.append((d["bpd"] == ds)[active].mean())
    assert np.mean(new) > np.mean(old) + 0.02, (np.mean(new), np.mean(old))
    assert np.mean(new_all) > np.mean(old_all), (np.mean(new_all), np.mean(old_all))
