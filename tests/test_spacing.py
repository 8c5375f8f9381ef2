"""Any mic spacing: wrapped-phase labels where the phase difference wraps, the paper's K-means labels where it
cannot; the ladder of rooms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spatialdc.pipeline import features, label_quality, label_weights, labels, planner, specs
from spatialdc.pipeline.render import render_mixture
from spatialdc.pipeline.rng import rng_for
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.data import input_stats


@pytest.mark.parametrize("spacing_m", [0.01, 0.03, 0.05])
def test_wrapped_phase_labels_recover_two_sources_at_known_angles(small_corpus, small_manifest, spacing_m):
    config = specs.RenderConfig(mic_spacing_m=spacing_m)
    spec = planner.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 1})["test"][0]
    spec = dataclasses.replace(spec, angles_deg=(40.0, 125.0), gains=(0.5, 0.5))
    ex = render_mixture(spec, small_corpus)
    active = features.active_bins(ex.magnitude)
    acc = label_quality.accuracy_from_contingency(label_quality.contingency(ex.bpd, ex.ds, 2, active))
    assert acc > 0.9, acc
    max_delay = config.max_delay_samples
    rng = rng_for(spec.seed, spec.dataset, spec.split, spec.index, "bpd")
    if max_delay <= 0.5:  # 1 cm at 16 kHz: the paper's labels, byte for byte
        assert np.array_equal(ex.bpd, labels.bpd_labels(ex.npd, active, 2, max_delay, rng))
    else:
        lab, taus = labels.wrapped_phase_labels(ex.npd, active, 2, max_delay, rng)
        assert np.array_equal(lab, ex.bpd)
        assert np.allclose(taus, np.sort(spec.delays_samples), atol=0.05), (taus, spec.delays_samples)
        # the phase really wraps here: the NPD of some dominated bins is far from the source's delay
        assert labels.unaliased_bins(257, max_delay).sum() < 256


def test_confidence_of_wrapped_phase_labels_is_high_where_they_are_right(small_corpus, small_manifest):
    config = specs.RenderConfig(mic_spacing_m=0.05)
    spec = planner.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 1})["test"][0]
    ex = render_mixture(dataclasses.replace(spec, angles_deg=(40.0, 125.0)), small_corpus)
    active = features.active_bins(ex.magnitude)
    conf = label_weights.bpd_confidence(ex.npd, ex.bpd, active, 2, config.max_delay_samples)
    assert 0 <= conf.min() and conf.max() <= 1
    ds = ex.ds if (ex.bpd == ex.ds)[active].mean() > 0.5 else 1 - ex.ds  # clusters are ordered by delay, not source
    right = active & (ex.bpd == ds)
    wrong = active & (ex.bpd != ds)
    assert conf[right].mean() > conf[wrong].mean() + 0.2


def test_room_ranges_change_the_draws_bounds_not_their_number():
    from spatialdc.pipeline.acoustics import draw_room

    angles = np.array([30.0, 120.0])
    default = draw_room(np.random.default_rng(5), angles, 0.01)
    same = draw_room(np.random.default_rng(5), angles, 0.01, (0.2, 0.6), (1.0, 2.0))
    mild = draw_room(np.random.default_rng(5), angles, 0.01, (0.2, 0.3), (0.5, 1.0))
    assert default == same
    assert 0.2 <= mild["rt60_s"] <= 0.3
    centre = np.mean(mild["mics_m"], axis=0)
    dist = np.linalg.norm(np.asarray(mild["sources_m"]) - centre, axis=1)
    assert np.all((dist >= 0.5 - 1e-6) & (dist <= 1.0 + 1e-6))
    with pytest.raises(ValueError, match="rt60_range_s"):
        specs.RenderConfig(rt60_range_s=(0.5, 0.2))


def test_onset_bins_mark_where_power_rises_over_the_frames_before():
    mag = np.full((4, 40), 0.1, np.float32)
    mag[1, 20:] = 1.0  # a tone starts at frame 20 and holds
    on = label_weights.onset_bins(mag, frames=8)
    assert on[1, 20] and not on[1, 30] and not on[1, :20].any()  # onset, held tone, silence before
    assert not on[[0, 2, 3]].any()  # steady rows
    assert not label_weights.onset_bins(mag, frames=8, rise_db=30.0)[1, 20]  # a 20 dB rise is not a 30 dB one
    with pytest.raises(ValueError, match="frames"):
        label_weights.onset_bins(mag, frames=0)


def test_direct_path_bins_keep_the_most_confident_onsets_up_to_the_share():
    rng = np.random.default_rng(0)
    mag = rng.random((64, 120)).astype(np.float32) + 0.01
    conf = rng.random((64, 120)).astype(np.float32)
    active = rng.random((64, 120)) > 0.2
    onsets = active & label_weights.onset_bins(mag)
    keep = label_weights.direct_path_bins(mag, conf, active, share=0.2)
    assert not (keep & ~onsets).any() and keep.sum() == round(0.2 * active.sum()) < onsets.sum()
    assert conf[keep].min() >= conf[onsets & ~keep].max()  # the most confident of the onsets
    # fewer onsets than the share: all of them are kept
    assert np.array_equal(label_weights.direct_path_bins(mag, conf, active, share=1.0), onsets)
    with pytest.raises(ValueError, match="share"):
        label_weights.direct_path_bins(mag, conf, active, share=0.0)


def test_direct_path_bins_of_mild_rooms_agree_with_ds_more_than_all_bins(small_corpus, small_manifest):
    config = specs.RenderConfig(room="reverberant", rt60_range_s=(0.2, 0.3), source_distance_range_m=(0.5, 1.0))
    accuracy = {"all": [], "kept": []}
    for spec in planner.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 3})["test"]:
        ex = render_mixture(spec, small_corpus)
        active = features.active_bins(ex.magnitude)
        conf = label_weights.bpd_confidence(ex.npd, ex.bpd, active, 2, config.max_delay_samples)
        keep = label_weights.direct_path_bins(ex.magnitude, conf, active, share=0.5)
        assert keep.sum() <= 0.5 * active.sum() + 1 and not (keep & ~active).any()
        for name, mask in (("all", active), ("kept", keep)):
            accuracy[name].append(label_quality.permutation_accuracy(ex.bpd, ex.ds, 2, mask))
    assert np.mean(accuracy["kept"]) > np.mean(accuracy["all"]) + 0.03, accuracy


def test_direct_path_weights_are_binary_and_within_the_share(small_dataset):
    from spatialdc.trainer.data import DeepClusteringDataset

    shards = ShardSet(expand_shards(str(small_dataset / "train-*.h5")))
    stats = input_stats(shards)
    plain = DeepClusteringDataset(shards, "bpd", stats)[0]["w"]
    direct = DeepClusteringDataset(shards, "bpd", stats, label_weights="direct-path", keep_share=0.35)[0]["w"]
    assert set(np.unique(direct.numpy())) <= {0.0, 1.0} and torch.all(direct <= plain)
    assert 0.1 < float(direct.sum() / plain.sum()) <= 0.35 + 1e-3
    with pytest.raises(ValueError, match="direct-path weights rate BPD labels"):
        DeepClusteringDataset(shards, "ds", stats, label_weights="direct-path")
