"""The separation core (eval/separate.py): one K-means seeding rule, masks that partition the spectrogram, the cases
with nothing to cluster, and one cached model loader for paths and shipped names."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from spatialdc import models
from spatialdc.eval.separate import (Separation, cluster_labels, kmeans_random_state, load_model,
                                     separate_mixture)
from spatialdc.pipeline import features


def _two_sources(seed: int = 0):
    """A mixture of two noise bursts in other frequency bands, and embeddings that point one way per band."""
    rng = np.random.default_rng(seed)
    low = np.convolve(rng.normal(size=8000), np.ones(8) / 8, "same")  # mostly below 1 kHz
    high = np.diff(rng.normal(size=8001))  # mostly high frequencies
    mixture = low + high
    magnitude = np.abs(features.stft(mixture))  # (F, T)
    f, t = magnitude.shape
    emb = rng.normal(scale=0.1, size=(f, t, 4))
    emb[: f // 4, :, 0] += 1.0
    emb[f // 4:, :, 1] += 1.0
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    return mixture, magnitude, emb.astype(np.float32)


def test_separate_mixture_clusters_with_the_one_seeding_rule_and_partitions_the_mixture():
    mixture, magnitude, emb = _two_sources()
    sep = separate_mixture(emb, magnitude, 2, seed=3, key="mix-7", cluster_db=20.0, mixture=mixture)
    active = features.active_bins(magnitude, 20.0)
    np.testing.assert_array_equal(sep.labels, cluster_labels(emb, active, 2, kmeans_random_state(3, "mix-7")))
    assert kmeans_random_state(3, "mix-7") != kmeans_random_state(3, "mix-8")
    assert sep.masks.shape == (2,) + magnitude.shape and np.all(sep.masks.sum(0) == 1)
    assert sep.stems.shape == (2, mixture.size) and sep.stems.dtype == np.float32
    np.testing.assert_allclose(sep.stems.sum(0), mixture, atol=1e-4)  # binary masks partition the spectrogram
    flipped = sep.reordered([1, 0])
    np.testing.assert_array_equal(flipped.stems, sep.stems[::-1])
    np.testing.assert_array_equal(flipped.labels, 1 - sep.labels)


def test_nothing_to_cluster_gives_equal_shares_and_one_speaker_the_mixture():
    mixture, magnitude, emb = _two_sources()
    one = separate_mixture(emb, magnitude, 1, seed=0, key=0, mixture=mixture)
    assert np.all(one.labels == 0) and np.all(one.masks == 1)
    np.testing.assert_array_equal(one.stems, mixture[None].astype(np.float32))
    spike = np.zeros_like(magnitude)
    spike[10, 3] = 1.0  # one bin within cluster_db of the loudest: too few for three clusters
    three = separate_mixture(emb, spike, 3, seed=0, key=0, mixture=mixture)
    assert np.all(three.labels == -1) and np.allclose(three.masks, 1 / 3)
    np.testing.assert_allclose(three.stems, np.tile(mixture / 3, (3, 1)), rtol=1e-6)
    assert three.reordered([2, 0, 1]).labels.min() == -1
    assert separate_mixture(emb, magnitude, 2, seed=0, key=0).stems is None
    with pytest.raises(ValueError, match="num_speakers"):
        separate_mixture(emb, magnitude, 0, seed=0, key=0)
    with pytest.raises(ValueError, match=r"\(F, T\)"):
        separate_mixture(emb[:, :-1], magnitude, 2, seed=0, key=0)
    assert isinstance(three, Separation)


def test_load_model_takes_a_path_or_a_shipped_name_and_reads_a_file_once(tmp_path):
    by_name = load_model(models.DEFAULT_MODEL)
    with models.model_path() as path:
        assert load_model(path) is by_name and load_model(str(path)) is by_name
    assert by_name.net.training is False and by_name.card["name"] == models.DEFAULT_MODEL
    assert len(by_name.stats["mean"]) == by_name.net.model_args["num_freqs"] == 257
    copy = tmp_path / "copy.pt"
    shutil.copyfile(by_name.path, copy)
    again = load_model(copy)
    assert again is not by_name and again is load_model(copy)
    with pytest.raises(FileNotFoundError, match="no shipped model has that name"):
        load_model(tmp_path / "nothing.pt")
