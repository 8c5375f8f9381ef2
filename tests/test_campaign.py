"""Campaigns (issue 22): --init-from a shipped model's name, lineage across legs, and the rules of re-shipping."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from spatialdc import models
from spatialdc.eval import ship as ship_mod
from spatialdc.eval.cards import card_markdown
from spatialdc.eval.report import write_csv
from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.lineage import totals, weights_sha256
from spatialdc.trainer.loop import train
from tests.test_trainer import tiny_config


def test_init_from_a_shipped_name_keeps_its_input_statistics_and_counts_its_steps(small_dataset, tmp_path):
    shipped = load_checkpoint(models.model_file("fm2-bpd"))
    config = tiny_config(small_dataset, init_from="fm2-bpd", layers=2, hidden=200, embedding_dim=20, lr=1e-12,
                         max_steps=1)
    train(config, tmp_path, progress=False)
    last = load_checkpoint(tmp_path / "last.pt")
    for key in ("mean", "std"):
        np.testing.assert_array_equal(last["stats"][key], shipped["stats"][key])
    lineage = last["lineage"]
    assert lineage["init_from"] == "fm2-bpd" and lineage["init_path"].endswith("fm2-bpd.pt")
    assert lineage["steps_before"] == shipped["step"] == 4725
    assert lineage["init_weights_sha256"] == weights_sha256(shipped["model"])
    t = totals(last)
    assert t["steps"] == 4725 + last["step"] and t["recipe"][0] == shipped["card"]["command"]
    assert "--init-from fm2-bpd" in t["recipe"][-1]
    assert load_checkpoint(tmp_path / "best.pt")["lineage"] == lineage  # inference checkpoints carry it too


def test_init_from_an_unknown_name_lists_the_shipped_models(small_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a checkpoint file nor a shipped model.*fm2-bpd"):
        train(tiny_config(small_dataset, init_from="no-such-model"), tmp_path, progress=False)


def test_lineage_adds_up_over_legs(small_dataset, tmp_path):
    train(tiny_config(small_dataset, epochs=1), tmp_path / "a", progress=False)
    train(tiny_config(small_dataset, epochs=2, init_from=str(tmp_path / "a" / "best.pt")), tmp_path / "b",
          progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert totals(b)["steps"] == a["step"] + b["step"] == 6
    assert totals(b)["cpu_hours"] > totals(a)["cpu_hours"] > 0
    assert len(totals(b)["recipe"]) == 2


def fake_report(path, checkpoint, sdri: dict[str, float]) -> str:
    """A dceval-shaped report: one model row per mixture and source, and its provenance."""
    rows = []
    for mixture, value in sdri.items():
        for source in (0, 1):
            rows.append({"mixture_id": mixture, "dataset": "fm2", "method": "dc_bpd", "source": source,
                         "sdri": value, "si_sdri": value, "sdr": value, "sir": value, "sar": value,
                         "silent_reference": False, "count_error": False})
    write_csv(path, rows, {"checkpoint": str(checkpoint), "shards": ["data/fm2/valid-*.h5"]})
    return str(path)


@pytest.fixture()
def tiny_run(small_dataset, tmp_path):
    train(tiny_config(small_dataset), tmp_path / "run", progress=False)
    return tmp_path / "run" / "best.pt"


def test_reshipping_refuses_a_missing_or_older_validation_report(tiny_run, tmp_path):
    out = tmp_path / "models"
    with pytest.raises(FileNotFoundError, match="validation report"):
        ship_mod.ship(tiny_run, "t-bpd", "tiny", {"valid": {"fm2": str(tmp_path / "none.csv")}}, out_dir=out)
    old = fake_report(tmp_path / "old.csv", tiny_run, {f"m{i}": 1.0 for i in range(10)})
    os.utime(old, (tiny_run.stat().st_mtime - 60,) * 2)
    with pytest.raises(ValueError, match="older than"):
        ship_mod.ship(tiny_run, "t-bpd", "tiny", {"valid": {"fm2": old}}, out_dir=out)
    other = fake_report(tmp_path / "other.csv", tmp_path / "elsewhere.pt", {"m0": 1.0, "m1": 2.0})
    with pytest.raises(ValueError, match="not .*best.pt"):
        ship_mod.ship(tiny_run, "t-bpd", "tiny", {"valid": {"fm2": other}}, out_dir=out)
    assert not out.exists() or not any(out.iterdir())  # nothing shipped


def test_a_new_version_ships_only_if_it_beats_the_shipped_one(tiny_run, small_dataset, tmp_path):
    out = tmp_path / "models"
    rng = np.random.default_rng(0)
    base = {f"m{i}": float(v) for i, v in enumerate(rng.normal(4, 2, 50))}
    first = ship_mod.ship(tiny_run, "t-bpd", "tiny", {"valid": {"fm2": fake_report(tmp_path / "v1.csv", tiny_run,
                                                                                      base)}}, out_dir=out)
    card = load_checkpoint(first)["card"]
    assert [r["version"] for r in card["campaign"]["rows"]] == [1] and card["weights_sha256"]
    assert first.with_suffix(".md").read_text() == card_markdown(card)
    # a second leg: new weights
    train(tiny_config(small_dataset, epochs=2, init_from=str(first)), tmp_path / "run2", progress=False)
    second = tmp_path / "run2" / "best.pt"
    against = {"fm2": fake_report(tmp_path / "shipped.csv", first, base)}
    worse = {"valid": {"fm2": fake_report(tmp_path / "v2a.csv", second, {k: v + 0.05 for k, v in base.items()})}}
    with pytest.raises(ValueError, match="does not beat"):
        ship_mod.ship(second, "t-bpd", "tiny", worse, out_dir=out, against=against)
    assert load_checkpoint(first)["card"] == card  # the shipped version untouched
    better = {"valid": {"fm2": fake_report(tmp_path / "v2b.csv", second,
                                           {k: v + 0.5 + 0.1 * rng.normal() for k, v in base.items()})}}
    ship_mod.ship(second, "t-bpd", "tiny", better, out_dir=out, against=against)
    card2 = load_checkpoint(first)["card"]
    rows = card2["campaign"]["rows"]
    assert [r["version"] for r in rows] == [1, 2] and rows[1]["paired"]["diff"] == pytest.approx(0.5, abs=0.05)
    assert rows[1]["steps"] == rows[0]["steps"] + load_checkpoint(second)["step"]
    assert len(card2["campaign"]["recipe"]) == 2
    assert card2["weights_sha256"] == weights_sha256(load_checkpoint(first)["model"])
    # the same weights again: a card update (test scores), no new row
    test = fake_report(tmp_path / "test.csv", first, base)
    ship_mod.ship(second, "t-bpd", "tiny", {"test": {"fm2": test}}, out_dir=out)
    card3 = load_checkpoint(first)["card"]
    assert card3["campaign"] == card2["campaign"] and card3["test"]["fm2"]["mixtures"] == 50
    assert card3["valid"] == card2["valid"]


def test_a_count_head_ships_only_with_the_weights_it_was_fitted_on(tiny_run, tmp_path):
    from spatialdc.eval.count import CountHead, resolve_count_head

    out = tmp_path / "models"
    shipped = ship_mod.ship(tiny_run, "t-bpd", "tiny",
                            {"valid": {"fm2": fake_report(tmp_path / "v.csv", tiny_run, {"a": 1.0, "b": 2.0})}},
                            out_dir=out)
    head = CountHead([2, 3], np.zeros(3), np.ones(3), np.zeros((1, 3)), np.zeros(1), "x",
                     weights_sha256=weights_sha256({k: v.float() for k, v in
                                                    load_checkpoint(shipped)["model"].items()}))
    head.save(tmp_path / "wrong.json")  # fitted on the float32 weights, not the float16 ones shipped
    with pytest.raises(ValueError, match="not fitted on the weights shipped"):
        ship_mod.ship(tiny_run, "t-bpd", "tiny", {}, out_dir=out, count_head=tmp_path / "wrong.json")
    head.weights_sha256 = weights_sha256(load_checkpoint(shipped)["model"])
    head.save(tmp_path / "right.json")
    ship_mod.ship(tiny_run, "t-bpd", "tiny", {}, out_dir=out, count_head=tmp_path / "right.json")
    assert shipped.with_suffix(".count_head.json").is_file()
    assert resolve_count_head(shipped, None) == str(shipped.with_suffix(".count_head.json"))
    assert load_checkpoint(shipped)["card"]["count_head"]["file"] == "t-bpd.count_head.json"
    assert torch.equal(load_checkpoint(shipped)["model"]["dense.weight"],
                       load_checkpoint(tiny_run)["model"]["dense.weight"].half())
