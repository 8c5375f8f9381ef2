"""dcsep: a user's recording (any rate, several channels, any length) into one WAV per speaker."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy.signal import resample_poly

from spatialdc.eval import count
from spatialdc.eval.dcsep import main as dcsep
from spatialdc.trainer.loop import train
from tests.test_trainer import tiny_config


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(small_dataset, epochs=1), out, progress=False)
    return out / "best.pt"


@pytest.fixture(scope="module")
def long_recording(small_corpus, tmp_path_factory):
    """30 s of two bundled speakers at 44.1 kHz, stereo (the second channel is noise: only mic 1 is used)."""
    files = sorted(small_corpus.glob("*.flac"))
    a, _ = sf.read(files[0])
    b, _ = sf.read(files[-1])
    n = 30 * 16000
    mix = np.resize(a, n) * 0.5 + np.resize(b, n) * 0.5
    x = resample_poly(mix, 441, 160)
    path = tmp_path_factory.mktemp("rec") / "talk.wav"
    sf.write(path, np.stack([x, np.random.default_rng(0).normal(size=x.size) * 0.1], axis=1), 44100)
    return path, mix


def test_long_stereo_recording_at_44k_gives_stems_that_add_up(checkpoint, long_recording, tmp_path):
    path, mix = long_recording
    r = CliRunner().invoke(dcsep, [str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    stems = [sf.read(tmp_path / f"talk_speaker{k}.wav") for k in (1, 2)]
    assert all(sr == 16000 and s.shape == (30 * 16000,) for s, sr in stems)
    total = stems[0][0] + stems[1][0]
    x16, _ = sf.read(path)
    ref = resample_poly(x16[:, 0], 160, 441)[: total.size]
    # binary masks partition every bin and the cross-fades keep the sum: the stems add up to the mixture
    err = np.linalg.norm(total - ref) / np.linalg.norm(ref)
    assert err < 0.02, err
    assert all(np.std(s) > 1e-3 for s, _ in stems)  # neither stem is empty


def test_auto_count_and_bad_files(checkpoint, long_recording, tmp_path):
    path, _ = long_recording
    r = CliRunner().invoke(dcsep, [str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path),
                                   "--speakers", "auto", "--max-speakers", "3"])
    assert r.exit_code == 0, r.output
    assert "(estimated)" in r.output
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    r = CliRunner().invoke(dcsep, [str(empty), "--checkpoint", str(checkpoint)])
    assert r.exit_code != 0 and "holds no samples" in r.output
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    r = CliRunner().invoke(dcsep, [str(junk), "--checkpoint", str(checkpoint)])
    assert r.exit_code != 0 and "cannot read" in r.output
    r = CliRunner().invoke(dcsep, [str(path), "--checkpoint", str(checkpoint), "--speakers", "two"])
    assert r.exit_code != 0 and "'two'" in r.output


def test_count_from_ideal_embeddings():
    rng = np.random.default_rng(0)
    for k in (1, 2, 3):
        labels = rng.integers(0, k, size=(40, 50))
        basis = np.linalg.qr(rng.normal(size=(20, 20)))[0][:k]  # k orthonormal directions in D = 20
        emb = basis[labels] + 0.05 * rng.normal(size=(40, 50, 20))
        emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
        active = np.ones((40, 50), bool)
        assert count.estimate_num_speakers(emb, active, max_speakers=4) == k
        assert np.isclose(count.embedding_spectrum(emb, active).sum(), 1.0)


def test_dceval_speakers_auto_reports_counts_and_keeps_miscounted_rows_out(checkpoint, small_dataset, tmp_path):
    import csv

    from spatialdc.eval.dceval import main as dceval
    from spatialdc.eval.report import summarize

    report = tmp_path / "auto.csv"
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(small_dataset / "test-*.h5"),
                                    "--report", str(report), "--workers", "0", "--quiet", "--speakers", "auto",
                                    "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "speaker count:" in r.output and "| true \\ estimated |" in r.output
    rows = list(csv.DictReader(report.open()))
    model_rows = [x for x in rows if x["method"] == "dc_bpd"]
    assert model_rows and all(1 <= int(x["num_speakers_est"]) <= 3 for x in model_rows)
    for x in model_rows:  # a miscounted mixture has no score; a right one has
        assert (x["count_error"] == "True") == (x["num_speakers_est"] != x["num_speakers"])
        assert (x["sdr"] == "nan") == (x["count_error"] == "True")
    scored = [s for s in summarize(rows) if s["method"] == "dc_bpd"]
    right = sum(1 for x in model_rows if x["count_error"] == "False")
    assert (scored[0]["sources"] if scored else 0) == right


def test_stems_scale_with_the_recording_level(checkpoint, long_recording):
    """The network sees every recording at its training level, so a 20 dB quieter copy gives the same masks."""
    from spatialdc.eval.recording import level_gain
    from spatialdc.eval.separator import separate_recording
    from spatialdc.trainer.checkpoint import load_checkpoint, model_from_checkpoint

    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state)
    _, mix = long_recording
    x = mix[: 6 * 16000]
    loud, _ = separate_recording(x, model, state["stats"], 2)
    quiet, _ = separate_recording(0.1 * x, model, state["stats"], 2)
    from spatialdc.pipeline import features

    def gain(y):
        return level_gain([np.abs(features.stft(y))], state["stats"])

    assert gain(0.1 * x) == pytest.approx(10 * gain(x), rel=1e-6)
    err = min(np.linalg.norm(quiet[list(p)] - 0.1 * loud) for p in ((0, 1), (1, 0))) / np.linalg.norm(0.1 * loud)
    assert err < 0.02, err  # the stems' order is K-means' and may differ


@pytest.mark.parametrize("num_classes", [2, 3])
def test_count_head_probabilities_equal_scikit_learns_and_survive_saving(num_classes, tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(num_classes)
    y = rng.integers(1, num_classes + 1, size=300)
    feats = rng.normal(size=(300, 12)) + y[:, None] * np.linspace(-1, 1, 12)[None]  # (M, P), count-dependent
    head = count.fit_count_head(feats, y, 0.1, "abc")
    mean, scale = feats.mean(0), feats.std(0)
    ref = LogisticRegression(C=0.1, max_iter=5000).fit((feats - mean) / scale, y)
    np.testing.assert_allclose(head.probabilities(feats), ref.predict_proba((feats - mean) / scale), atol=1e-9)
    assert np.mean(head.predict(feats) == y) > 0.8
    head.save(tmp_path / "h.json")
    again = count.CountHead.load(tmp_path / "h.json")
    assert np.array_equal(again.predict(feats), head.predict(feats))
    assert set(again.predict(feats, max_speakers=1).tolist()) == {1}  # never above the cap
    with pytest.raises(ValueError, match="two counts"):
        count.fit_count_head(feats, np.full(300, 2), 0.1, "abc")


def test_count_head_refuses_another_network_and_bad_files(checkpoint, tmp_path):
    head = count.fit_count_head(np.random.default_rng(0).normal(size=(20, 3)), np.repeat([1, 2], 10), 1.0,
                                "not the checkpoint's sha")
    head.save(tmp_path / "h.json")
    with pytest.raises(ValueError, match="another network"):
        count.CountHead.load(tmp_path / "h.json", checkpoint)
    with pytest.raises(FileNotFoundError, match="dccount"):
        count.CountHead.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ValueError, match="not a count head"):
        count.CountHead.load(tmp_path / "junk.json")


def test_dccount_fits_a_head_that_dceval_and_dcsep_use(checkpoint, small_dataset, long_recording, tmp_path):
    import csv
    import json

    from spatialdc.eval.dceval import main as dceval
    from spatialdc.eval.dccount import main as dccount

    head = tmp_path / "head.json"
    r = CliRunner().invoke(dccount, ["--checkpoint", str(checkpoint), "--train", str(small_dataset / "train-*.h5"),
                                     "--valid", str(small_dataset / "valid-*.h5"),
                                     "--test", str(small_dataset / "test-*.h5"), "--single-share", "1.0",
                                     "--out", str(head), "--quiet"])
    assert r.exit_code == 0, r.output
    saved = json.loads(head.read_text())
    assert saved["classes"] == [1, 2] and saved["provenance"]["train_counts"] == {"1": 8, "2": 8}
    assert "validation accuracy by C" in r.output and "| true \\ estimated |" in r.output
    report = tmp_path / "auto.csv"
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(small_dataset / "test-*.h5"),
                                    "--report", str(report), "--workers", "0", "--quiet", "--speakers", "auto",
                                    "--count-head", str(head), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert f"count head {head}" in report.with_suffix(".md").read_text()
    assert all(x["num_speakers_est"] in ("1", "2") for x in csv.DictReader(report.open()) if x["method"] == "dc_bpd")
    path, _ = long_recording
    r = CliRunner().invoke(dcsep, [str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "stems"),
                                   "--speakers", "auto", "--count-head", str(head)])
    assert r.exit_code == 0, r.output
    assert "(estimated)" in r.output and len(list((tmp_path / "stems").glob("talk_speaker*.wav"))) in (1, 2)
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(small_dataset / "test-*.h5"),
                                    "--report", str(report), "--workers", "0", "--quiet", "--speakers", "auto",
                                    "--count-head", str(tmp_path / "nope.json"), "--no-plots"])
    assert r.exit_code != 0 and "dccount" in r.output


def test_kmeans_labels_do_not_depend_on_the_callers_thread_pool():
    """scikit-learn's K-means sums in another order on two OpenMP threads than on one (391 of 64,250 bins of these
    embeddings move); cluster_labels holds it to one thread, so dceval in-process, in Dask workers (one thread each)
    and the HTML report's re-separation give the same labels."""
    from threadpoolctl import threadpool_limits

    from spatialdc.eval.separate import cluster_labels

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(257, 250, 20)).astype(np.float32)
    emb.reshape(-1, 20)[:30000] += 0.3
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    active = np.ones((257, 250), bool)
    with threadpool_limits(1, user_api="openmp"):
        one = cluster_labels(emb, active, 2, 5)
    with threadpool_limits(2, user_api="openmp"):
        two = cluster_labels(emb, active, 2, 5)
    np.testing.assert_array_equal(one, two)
