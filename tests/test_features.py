import numpy as np
import pytest

from pipeline import acoustics, features, labels


def test_stft_shapes_follow_the_documented_framing():
    z = features.stft(np.zeros(32000))
    assert z.shape == (257, features.num_frames(32000)) == (257, 251)


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
    assert labels.permutation_accuracy((a + 1) % 3, a, 3) == 1.0
    assert labels.permutation_accuracy(np.zeros(5, int), a, 3) == pytest.approx(0.4)
