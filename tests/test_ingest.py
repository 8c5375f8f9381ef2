"""Learning from your own stereo recordings: export rendered mixtures, ingest them back without references."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from spatialdc.pipeline.cli import main as dcgen
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.loop import train
from tests.test_trainer import tiny_config


@pytest.fixture
def exported(small_dataset, small_corpus, tmp_path):
    r = CliRunner().invoke(dcgen, ["export", "--from-specs", str(small_dataset), "--corpus", str(small_corpus),
                                   "--split", "test", "--out", str(tmp_path / "wav")])
    assert r.exit_code == 0, r.output
    return tmp_path / "wav"


def test_ingest_of_exported_recordings_gives_the_renders_npd_and_labels(exported, small_dataset, tmp_path):
    recs = sorted(p for p in exported.glob("*.wav") if ".ref" not in p.name)
    assert len(recs) == 4 and all(sf.info(p).channels == 2 for p in recs)
    assert all((exported / f"{p.stem}.ref{k}.wav").is_file() for p in recs for k in (0, 1))
    r = CliRunner().invoke(dcgen, ["ingest", *map(str, recs), "--mic-spacing", "0.01", "--out", str(tmp_path / "in")])
    assert r.exit_code == 0, r.output
    ingested = ShardSet(expand_shards(str(tmp_path / "in" / "rec2" / "train-*.h5")))
    rendered = ShardSet(expand_shards(str(small_dataset / "test-*.h5")))
    by_id = {rendered.read(i, ("spec",))["spec"].mixture_id: i for i in range(len(rendered))}
    assert len(ingested) >= 3  # a window may be dropped as one talker; most are kept
    for i in range(len(ingested)):
        got = ingested.read(i, ("magnitude", "npd", "bpd", "spec", "mixture"))
        name = got["spec"].utterance_ids[0].split("@")[0]
        want = rendered.read(by_id[name], ("magnitude", "npd", "bpd"))
        assert np.array_equal(got["magnitude"], want["magnitude"]) and np.array_equal(got["npd"], want["npd"])
        assert np.array_equal(got["bpd"], want["bpd"])
        assert got["mixture"].shape == (2, 32000)
    with pytest.raises(ValueError, match="without \\['sources'\\].*--target bpd"):
        ingested.read(0, ("sources",))


def test_dctrain_trains_on_ingested_shards_and_ds_is_refused(exported, small_dataset, tmp_path):
    recs = sorted(p for p in exported.glob("*.wav") if ".ref" not in p.name)
    CliRunner().invoke(dcgen, ["ingest", *map(str, recs), "--mic-spacing", "0.01", "--out", str(tmp_path / "in")])
    shards = str(tmp_path / "in" / "rec2" / "train-*.h5")
    out = train(tiny_config(small_dataset, shards=shards, batch_size=2), tmp_path / "run", progress=False)
    assert out["steps"] >= 1
    # the weights meant for recordings made in rooms read what ingest stores (NPD, labels, the spacing in the spec)
    out = train(tiny_config(small_dataset, shards=shards, batch_size=2, label_weights="direct-path", keep_share=0.35),
                tmp_path / "direct", progress=False)
    assert out["steps"] >= 1 and np.isfinite(out["best_valid_loss"])
    with pytest.raises(ValueError, match="--target bpd"):
        train(tiny_config(small_dataset, shards=shards, target="ds", batch_size=2), tmp_path / "ds", progress=False)


def test_a_one_talker_window_is_dropped_and_counted(small_corpus, small_manifest, tmp_path):
    u = small_manifest[0]
    x, sr = sf.read(small_corpus / u.path)
    x = x[: 4 * sr] / np.abs(x).max() * 0.5
    from spatialdc.pipeline.acoustics import fractional_delay

    stereo = np.stack([x, fractional_delay(x, 0.3)], axis=1)  # one talker at 0.3 samples of delay
    path = tmp_path / "one.wav"
    sf.write(path, stereo, sr, subtype="FLOAT")
    r = CliRunner().invoke(dcgen, ["ingest", str(path), "--mic-spacing", "0.01", "--out", str(tmp_path / "in")])
    assert r.exit_code == 1, r.output  # an ingest that keeps no window is an error (issue 25), not "wrote"
    assert "0 of 2 windows kept" in r.output and "2 one talker" in r.output and "no shard was written" in r.output
    assert not list((tmp_path / "in").glob("rec*/train-*.h5"))


def test_bad_recordings_get_clear_messages_and_nothing_is_written(small_corpus, small_manifest, tmp_path):
    x, sr = sf.read(small_corpus / small_manifest[0].path)
    x = x[: 3 * sr] / np.abs(x).max() * 0.5
    cases = {"mono.wav": (x, "is mono"), "same.wav": (np.stack([x, x], 1), "are identical"),
             "clipped.wav": (np.stack([np.clip(x * 8, -1, 1), np.clip(x * 7.9, -1, 1)], 1), "is clipped")}
    good = tmp_path / "good.wav"
    sf.write(good, np.stack([x, np.roll(x, 1)], 1), sr, subtype="FLOAT")
    for name, (data, says) in cases.items():
        sf.write(tmp_path / name, data, sr, subtype="FLOAT")
        r = CliRunner().invoke(dcgen, ["ingest", str(good), str(tmp_path / name), "--mic-spacing", "0.01",
                                       "--out", str(tmp_path / "out")])
        assert r.exit_code == 1 and says in r.output and name in r.output, r.output
        assert not (tmp_path / "out").exists()  # the good recording before it was not written either
    r = CliRunner().invoke(dcgen, ["ingest", str(good), "--channels", "1,1", "--mic-spacing", "0.01", "--out",
                                   str(tmp_path / "out")])
    assert r.exit_code != 0 and "two different channels" in r.output
    r = CliRunner().invoke(dcgen, ["ingest", str(good), "--mic-spacing", "2.0", "--out", str(tmp_path / "out")])
    assert r.exit_code != 0 and "wraps at all but" in r.output
