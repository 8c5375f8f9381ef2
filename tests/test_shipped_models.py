"""The models that ship with the project: each loads, has a card, and separates real mixtures of two bundled test
speakers; `dcsep` without a checkpoint uses the default one."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from spatialdc import models
from spatialdc.eval.dcsep import main as dcsep
from spatialdc.eval.separator import Separator
from spatialdc.pipeline import specs
from spatialdc.pipeline.metrics import bss_eval_sets
from spatialdc.pipeline.render import render_mixture
from tests.conftest import BUNDLED, ROOT

COMMITTED_TEST = ROOT / "data_manifests/datasets/librispeech-clips/fm2/test.jsonl.gz"


def test_the_default_model_ships():
    assert models.DEFAULT_MODEL in models.names()


@pytest.fixture(scope="module")
def real_mixtures():
    """The first 8 mixtures of the committed fm2 test specs (test speakers only), rendered."""
    return [render_mixture(s, BUNDLED) for s in specs.read_specs(COMMITTED_TEST)[:8]]


@pytest.mark.parametrize("name", models.names())
def test_every_shipped_model_separates_real_mixtures_of_test_speakers(name, real_mixtures):
    card = models.card(name)
    assert card["name"] == name and card["test"] and card["command"].startswith("dctrain")
    sep = Separator.from_pretrained(name)
    assert sep.name == name and sep.card == card
    sdri = []
    for ex in real_mixtures:
        mic1 = ex.mixture[0]
        stems = sep.separate(mic1, 16000)
        base, scores = bss_eval_sets(ex.sources, [np.tile(mic1, (2, 1)), stems])
        sdri.append(float(np.mean(scores.sdr - base.sdr)))
    assert np.mean(sdri) > 3.0, sdri


def test_dcsep_without_a_checkpoint_uses_the_default_model(real_mixtures, tmp_path):
    wav = tmp_path / "two.wav"
    sf.write(wav, real_mixtures[0].mixture[0], 16000, subtype="FLOAT")
    r = CliRunner().invoke(dcsep, [str(wav), "--out", str(tmp_path / "stems")])
    assert r.exit_code == 0, r.output
    assert f"shipped {models.DEFAULT_MODEL}" in r.output
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == ["two_speaker1.wav", "two_speaker2.wav"]
    r = CliRunner().invoke(dcsep, ["--list-models", "x"])
    assert r.exit_code == 0 and all(n in r.output for n in models.names()) and "test SDRi" in r.output
    r = CliRunner().invoke(dcsep, [str(wav), "--model", "no-such-model", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "no shipped model 'no-such-model'" in r.output


@pytest.mark.parametrize("name", models.names())
def test_every_shipped_file_matches_its_card(name):
    from spatialdc.eval.cards import card_markdown
    from spatialdc.eval.count import CountHead
    from spatialdc.trainer.checkpoint import load_checkpoint
    from spatialdc.trainer.lineage import weights_sha256

    path = models.model_file(name)
    state = load_checkpoint(path)
    card = state["card"]
    assert path.with_suffix(".md").read_text() == card_markdown(card)
    if "weights_sha256" in card:  # cards written since campaigns
        assert card["weights_sha256"] == weights_sha256(state["model"])
        rows = card["campaign"]["rows"]
        assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
        assert rows[-1]["steps"] == card["campaign"]["steps"]
    head = models.count_head_file(name)
    if card.get("count_head"):
        assert head is not None and CountHead.load(head).fits(path)
