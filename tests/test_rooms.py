"""Reverberant rooms: seeded geometry, pyroomacoustics RIRs, alignment of the references with the mixture."""

from __future__ import annotations

import dataclasses

import numpy as np

from spatialdc.pipeline import acoustics, planner, specs
from spatialdc.pipeline.render import render_mixture


def test_room_draw_is_seeded_and_places_sources_at_the_angles():
    angles = np.array([30.0, 120.0])
    a = acoustics.draw_room(np.random.default_rng(5), angles, 0.01)
    b = acoustics.draw_room(np.random.default_rng(5), angles, 0.01)
    assert a == b
    centre = np.mean(a["mics_m"], axis=0)
    for pos, ang in zip(a["sources_m"], angles):
        d = np.asarray(pos) - centre
        assert np.isclose(np.degrees(np.arctan2(d[1], d[0])), ang, atol=1e-3)
        assert all(0 < p < s for p, s in zip(pos, a["size_m"]))


def test_rir_peak_sits_at_the_direct_path_plus_the_filter_offset():
    room = acoustics.draw_room(np.random.default_rng(1), np.array([60.0]), 0.01)
    rirs = acoustics.room_impulse_responses(room, 16000)
    dist = np.linalg.norm(np.asarray(room["sources_m"][0]) - np.asarray(room["mics_m"][0]))
    expected = dist / 343.0 * 16000 + acoustics.rir_offset()
    assert acoustics.rir_offset() == 40
    assert abs(int(np.argmax(np.abs(rirs[0][0]))) - expected) <= 1.0


def test_reverberant_render_is_deterministic_and_references_sum_to_mic_1(small_manifest, small_corpus):
    config = dataclasses.replace(specs.RenderConfig(), room="reverberant")
    spec = planner.plan_dataset(small_manifest, small_corpus, config, 0, "fm", 2, {"test": 1})["test"][0]
    assert spec.room == "reverberant" and set(spec.room_params) == {"size_m", "rt60_s", "mics_m", "sources_m"}
    assert specs.MixtureSpec.from_json(spec.to_json()) == spec
    a, b = render_mixture(spec, small_corpus), render_mixture(spec, small_corpus)
    np.testing.assert_array_equal(a.mixture, b.mixture)
    np.testing.assert_allclose(a.sources.sum(0), a.mixture[0], atol=1e-5)
    dry = render_mixture(dataclasses.replace(spec, room="anechoic", room_params={}), small_corpus)
    # the reverberant image at mic 1 lags the dry source by the direct-path delay only (offset removed)
    for i in range(2):
        x, y = dry.sources[i], a.sources[i]
        lags = np.arange(0, 200)
        corr = [np.dot(x[: x.size - k], y[k:]) for k in lags]
        dist = np.linalg.norm(np.asarray(spec.room_params["sources_m"][i]) - np.asarray(spec.room_params["mics_m"][0]))
        assert abs(lags[int(np.argmax(corr))] - dist / 343.0 * 16000) <= 2
