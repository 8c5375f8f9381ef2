"""Bad input at every entry point: a clear message that names the file and the fix, before any work is lost."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from spatialdc.eval.dceval import main as dceval
from spatialdc.eval.dcsep import main as dcsep
from spatialdc.eval.separator import Separator
from spatialdc.trainer.checkpoint import inference_state, save_checkpoint
from spatialdc.trainer.cli import main as dctrain
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.loop import train
from spatialdc.trainer.model import build_model
from tests.test_trainer import tiny_config


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(small_dataset, epochs=1), out, progress=False)
    return out / "best.pt"


@pytest.fixture
def corrupt_dataset(small_dataset, tmp_path):
    """A copy of the tiny dataset whose first test shard and first training shard have the stored magnitude of
    their second mixture overwritten with junk bytes (the file still opens: its middle is broken)."""
    out = tmp_path / "fm2"
    shutil.copytree(small_dataset, out)
    for name in ("test-00000.h5", "train-00000.h5"):
        path = out / name
        with h5py.File(path, "r") as h5:
            info = h5["magnitude"].id.get_chunk_info(1)  # the chunk of row 1
        with open(path, "r+b") as fh:
            fh.seek(info.byte_offset)
            fh.write(np.random.default_rng(0).integers(0, 256, info.size, dtype=np.uint8).tobytes())
    return out


def test_a_shard_corrupted_in_the_middle_names_the_file_and_dcgen_verify(corrupt_dataset, checkpoint, tmp_path):
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(corrupt_dataset / "test-*.h5"),
                                    "--workers", "0", "--report", str(tmp_path / "r.csv"), "--quiet"])
    assert r.exit_code == 1, r.output
    assert "test-00000.h5" in r.output and "dcgen verify" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(dctrain, ["--shards", str(corrupt_dataset / "train-*.h5"),
                                     "--valid", str(corrupt_dataset / "valid-*.h5"), "--hidden", "8", "--layers", "1",
                                     "--epochs", "1", "--batch-size", "2", "--out", str(tmp_path / "run"), "--quiet"])
    assert r.exit_code == 1, r.output
    assert "train-00000.h5" in r.output and "dcgen verify" in r.output


def test_junk_and_foreign_checkpoints_are_refused_before_any_work(small_dataset, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)  # another project's checkpoint
    wrong = tmp_path / "wrong.pt"  # our keys, weights of another shape than its config says
    torch.save({"model": {"dense.weight": torch.zeros(2, 2)}, "config": TrainConfig("a", "b").to_dict(),
                "stats": {"mean": np.zeros(257, np.float32), "std": np.ones(257, np.float32)}}, wrong)
    for bad, says in ((junk, "cannot read checkpoint"), (foreign, "not a dctrain checkpoint"),
                      (wrong, "do not make a deep-clustering model")):
        r = CliRunner().invoke(dceval, ["--checkpoint", str(bad), "--shards", str(small_dataset / "test-*.h5"),
                                        "--workers", "0", "--report", str(tmp_path / "r.csv")])
        assert r.exit_code == 1 and says in r.output and str(bad) in r.output, r.output
        assert "evaluate" not in r.output  # refused before the progress bar of the scoring started
        assert not (tmp_path / "r.csv").exists()
        with pytest.raises(ValueError, match=says):
            Separator(bad)


def test_recordings_with_nan_or_too_few_samples_are_refused_with_what_is_wrong(checkpoint, tmp_path):
    x = np.random.default_rng(0).normal(size=16000) * 0.1
    x[8000] = np.nan
    nan_file = tmp_path / "nan.wav"
    sf.write(nan_file, x, 16000, subtype="FLOAT")
    r = CliRunner().invoke(dcsep, [str(nan_file), "--checkpoint", str(checkpoint), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "non-finite" in r.output and "0.500 s" in r.output and "silent" not in r.output
    short = tmp_path / "short.wav"
    sf.write(short, np.ones(300) * 0.1, 16000)
    r = CliRunner().invoke(dcsep, [str(short), "--checkpoint", str(checkpoint), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "shorter than one STFT frame" in r.output
    sep = Separator(checkpoint)
    with pytest.raises(ValueError, match="non-finite"):
        sep.separate(x, 16000)
    with pytest.raises(ValueError, match="silent"):
        sep.separate(np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="one channel"):
        sep.separate(np.zeros((2, 16000)), 16000)


def test_the_api_gives_dcseps_stems_and_refuses_to_overwrite_them(checkpoint, small_corpus, tmp_path):
    files = sorted(small_corpus.glob("*.flac"))
    a, _ = sf.read(files[0])
    b, _ = sf.read(files[-1])
    n = 5 * 16000
    mix = 0.5 * np.resize(a, n) + 0.5 * np.resize(b, n)
    wav = tmp_path / "two.wav"
    sf.write(wav, mix, 16000, subtype="FLOAT")
    r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    cli_stems = np.stack([sf.read(tmp_path / "cli" / f"two_speaker{k}.wav")[0] for k in (1, 2)])
    stems = Separator(checkpoint).separate(mix, 16000)
    assert stems.shape == (2, n) and stems.dtype == np.float32
    # the files are 16-bit PCM of the same stems: equal to within one quantization step
    assert np.abs(cli_stems - stems).max() <= 1 / 2**15 + 1e-7
    paths = Separator(checkpoint).separate_file(wav, tmp_path / "api")
    assert [p.name for p in paths] == ["two_speaker1.wav", "two_speaker2.wav"]
    assert np.array_equal(np.stack([sf.read(p)[0] for p in paths]), cli_stems)
    r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cli")])
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "cli"),
                                   "--overwrite"])
    assert r.exit_code == 0, r.output


def test_an_inference_checkpoint_of_the_200_unit_model_is_small_and_has_no_optimizer(tmp_path):
    config = TrainConfig("a", "b", hidden=200)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 3, 257)).sum().backward()
    optimizer.step()  # Adam's moments exist: a training state is about three times the weights
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": config.to_dict(),
             "stats": {"mean": np.zeros(257, np.float32), "std": np.ones(257, np.float32)}, "step": 1,
             "rng": {"torch": torch.get_rng_state()}}
    save_checkpoint(tmp_path / "best.pt", inference_state(state))
    save_checkpoint(tmp_path / "last.pt", state)
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert "optimizer" not in best and "rng" not in best
    assert (tmp_path / "best.pt").stat().st_size < 25e6 < (tmp_path / "last.pt").stat().st_size


def test_ship_writes_a_slim_model_with_a_card_from_dceval_reports(checkpoint, small_dataset, tmp_path):
    from spatialdc.eval.ship import ship
    from spatialdc.trainer.checkpoint import load_checkpoint

    report = tmp_path / "t.csv"
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(small_dataset / "test-*.h5"),
                                    "--workers", "0", "--report", str(report), "--quiet", "--no-plots",
                                    "--examples", "0"])
    assert r.exit_code == 0, r.output
    scores = {"valid": {"fm2": str(report)}, "test": {"fm2": str(report)}}  # a first version needs a validation row
    out = ship(checkpoint, "tiny-bpd", "the tiny test set", scores, out_dir=tmp_path)
    state = load_checkpoint(out)
    assert "optimizer" not in state and state["card"]["name"] == "tiny-bpd"
    card = state["card"]
    assert card["test"]["fm2"]["mixtures"] == 4 and card["command"].startswith("dctrain --shards")
    assert "8 training mixtures of" in card["training_data"]
    # the score's command as a person types it, whatever folder the program was installed in
    import json
    prov = json.loads((tmp_path / "t.csv.json").read_text())
    prov["command"][0] = "/some/venv/bin/dceval"
    (tmp_path / "t.csv.json").write_text(json.dumps(prov))
    card = load_checkpoint(ship(checkpoint, "tiny-bpd", "the tiny test set", {"test": {"fm2": str(report)}},
                                out_dir=tmp_path))["card"]
    assert card["test"]["fm2"]["command"].split()[0] == "dceval"
    md = out.with_suffix(".md").read_text()
    assert "# Model card: tiny-bpd" in md and f"{card['test']['fm2']['sdri_mean']:.2f}" in md
    sep = Separator(out)
    assert sep.card == card
