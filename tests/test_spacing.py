"""Any mic spacing: wrapped-phase labels where the phase difference wraps, the paper's K-means labels where it
cannot; the ladder of rooms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spatialdc.pipeline import build, features, labels, specs
from spatialdc.pipeline.render import render_mixture
from spatialdc.pipeline.rng import rng_for


@pytest.mark.parametrize("spacing_m", [0.01, 0.03, 0.05])
def test_wrapped_phase_labels_recover_two_sources_at_known_angles(small_corpus, small_manifest, spacing_m):
    config = specs.RenderConfig(mic_spacing_m=spacing_m)
    spec = build.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 1})["test"][0]
    spec = dataclasses.replace(spec, angles_deg=(40.0, 125.0), gains=(0.5, 0.5))
    ex = render_mixture(spec, small_corpus)
    active = features.active_bins(ex.magnitude)
    acc = labels.accuracy_from_contingency(labels.contingency(ex.bpd, ex.ds, 2, active))
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
    spec = build.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 1})["test"][0]
    ex = render_mixture(dataclasses.replace(spec, angles_deg=(40.0, 125.0)), small_corpus)
    active = features.active_bins(ex.magnitude)
    conf = labels.bpd_confidence(ex.npd, ex.bpd, active, 2, config.max_delay_samples)
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
