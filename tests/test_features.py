import itertools

import numpy as np
import pytest

from spatialdc.pipeline import acoustics, features, label_quality, labels


def test_stft_shapes_follow_the_documented_framing():
    z = features.stft(np.zeros(32000))
    assert z.shape == (257, features.num_frames(32000)) == (257, 251)


@pytest.mark.parametrize("num_samples", [32000, 32001, 1000])
def test_stft_gives_scipys_coefficients(num_samples):
    import scipy.signal

    x = np.random.default_rng(3).standard_normal((2, 3, num_samples)).astype(np.float32)
    _, _, ref = scipy.signal.stft(x, nperseg=features.N_FFT, noverlap=features.N_FFT - features.HOP, window="hann")
    z = features.stft(x)
    assert z.shape == ref.shape == (2, 3, 257, features.num_frames(num_samples))
    assert z.dtype == np.complex64
    np.testing.assert_allclose(z, ref, atol=1e-6)
    _, y_ref = scipy.signal.istft(ref, nperseg=features.N_FFT, noverlap=features.N_FFT - features.HOP,
                                  window="hann", time_axis=-1, freq_axis=-2)
    np.testing.assert_allclose(features.istft(z, num_samples), y_ref[..., :num_samples], atol=1e-5)


def test_ds_labels_equal_argmax_of_magnitude_with_ties_to_the_first():
    rng = np.random.default_rng(4)
    src = (rng.standard_normal((3, 20, 30)) + 1j * rng.standard_normal((3, 20, 30))).astype(np.complex64)
    src[:, :4] = 0  # all tied: source 0
    src[2, 4:6] = src[1, 4:6]  # tie between 1 and 2 where they are loudest: the first of them
    assert np.array_equal(labels.ds_labels(src), np.argmax(np.abs(src), axis=0))


def test_stft_istft_round_trip():
    x = np.random.default_rng(0).standard_normal((3, 32000)).astype(np.float32)
    y = features.istft(features.stft(x), 32000)
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-4


@pytest.mark.parametrize("angle_deg", [0.0, 45.0, 90.0, 120.0, 180.0])
def test_npd_of_one_source_gives_its_delay(angle_deg):
    rng = np.random.default_rng(1)
    s = rng.standard_normal(32000 + 2 * acoustics.DELAY_MARGIN)
    tau = 0.01 * np.cos(np.deg2rad(angle_deg)) * 16000 / 343.0  # samples
    images = acoustics.anechoic_two_mic(s[None], np.array([tau]))[0]  # (2, S)
    z = features.stft(images)
    npd = features.npd(z[0], z[1])
    inner = npd[1:-1, 10:-10]  # away from DC/Nyquist and the padded edges
    assert np.median(inner) == pytest.approx(tau, abs=1e-3)
    # a delay is a pure phase shift only approximately within a window; the error / omega grows as 1/f
    mid_band = npd[64:200, 10:-10]  # 2 to 6.25 kHz
    assert np.percentile(np.abs(mid_band - tau), 90) < 0.01


def test_fractional_delay_matches_an_integer_shift():
    x = np.random.default_rng(2).standard_normal(4096)
    y = acoustics.fractional_delay(x, 3.0)
    np.testing.assert_allclose(y[1024:3000], x[1021:2997], atol=1e-3)


def test_ds_labels_pick_the_loudest_source():
    src = np.array([[[1.0, 0.1]], [[0.5, 2.0]]])  # (N=2, F=1, T=2)
    assert labels.ds_labels(src).tolist() == [[0, 1]]


def test_permutation_accuracy_ignores_label_names():
    a = np.array([0, 0, 1, 1, 2])
    assert label_quality.permutation_accuracy((a + 1) % 3, a, 3) == 1.0
    assert label_quality.permutation_accuracy(np.zeros(5, int), a, 3) == pytest.approx(0.4)


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (4, 2)])
def test_kmeans_1d_matches_scikit_learn(k, seed):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    centers = np.arange(k) * 1.5 + rng.uniform(-0.2, 0.2, k)  # separated clusters: one optimum
    x = np.concatenate([rng.normal(c, 0.1 + 0.05 * i, size=300 + 100 * i) for i, c in enumerate(centers)])
    ours = labels.kmeans_1d(x, k, np.random.default_rng(9))
    ref = np.sort(KMeans(n_clusters=k, n_init=10, random_state=0).fit(x[:, None]).cluster_centers_[:, 0])
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_1d_inertia_is_no_worse_than_scikit_learn_on_overlapping_clusters(seed):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, 0.3, size=200) for c in rng.uniform(-2, 2, 4)])

    def inertia(c):
        return np.sum(np.min((x[:, None] - np.asarray(c)[None]) ** 2, axis=1))

    ours = labels.kmeans_1d(x, 4, np.random.default_rng(seed))
    ref = KMeans(n_clusters=4, n_init=5, random_state=seed).fit(x[:, None]).cluster_centers_[:, 0]
    assert inertia(ours) <= inertia(ref) * (1 + 1e-9)


def test_kmeans_1d_refuses_too_few_values():
    with pytest.raises(ValueError, match="cannot form 3 clusters"):
        labels.kmeans_1d(np.array([1.0, 2.0]), 3, np.random.default_rng(0))


def test_contingency_nmi_equals_scikit_learn_and_accuracy_counts_bins():
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    for n in (2, 3):
        ref = rng.integers(0, n, (40, 30))
        lab = np.where(rng.random((40, 30)) < 0.8, (ref + 1) % n, rng.integers(0, n, (40, 30)))
        mask = rng.random((40, 30)) < 0.7
        counts = label_quality.contingency(lab, ref, n, mask)
        assert counts.sum() == mask.sum()
        assert label_quality.nmi_from_contingency(counts) == pytest.approx(
            normalized_mutual_info_score(ref[mask], lab[mask]), abs=1e-12)
        assert label_quality.accuracy_from_contingency(counts) == pytest.approx(
            max(np.mean(perm[lab[mask]] == ref[mask]) for perm in map(np.array, itertools.permutations(range(n)))))
    assert label_quality.nmi_from_contingency(label_quality.contingency(np.zeros(5, int), np.zeros(5, int), 2)) == 1.0
    with pytest.raises(ValueError, match="0..1"):
        label_quality.contingency(np.array([0, 2]), np.array([0, 1]), 2)


def test_single_threaded_holds_torch_and_blas_to_one_thread_and_restores_them():
    import torch
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    saved_torch, saved_blas = torch.get_num_threads(), blas_threads()
    torch.set_num_threads(2)
    try:
        with features.single_threaded():
            assert torch.get_num_threads() == 1
            assert all(n == 1 for n in blas_threads().values())
            z = features.stft(np.random.default_rng(0).standard_normal(4000))  # stft's own guard inside it
            assert torch.get_num_threads() == 1 and z.shape == (257, 33)
        assert torch.get_num_threads() == 2
        assert blas_threads() == saved_blas
    finally:
        torch.set_num_threads(saved_torch)
