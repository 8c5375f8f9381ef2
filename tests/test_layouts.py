"""Corpus layouts beyond LibriSpeech: a tiny TIMIT-layout folder and a CSV-described folder, built from the
bundled audio, scanned, split and rendered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from spatialdc.pipeline import corpus, planner, shards, specs
from spatialdc.pipeline.layouts import detect_layout
from spatialdc.pipeline.manifest import GENDERS, SPLITS, read_manifest
from spatialdc.pipeline.cli import main


@pytest.fixture(scope="module")
def timit_dir(small_corpus, small_manifest, tmp_path_factory) -> Path:
    """TRAIN: 5 F + 5 M speakers as NIST SPHERE, upper-case names; test: 3 F + 3 M as RIFF, lower-case names."""
    root = tmp_path_factory.mktemp("timit")
    for g in GENDERS:
        utts = [u for u in small_manifest if u.gender == g][:8]
        for k, u in enumerate(utts):
            x, sr = sf.read(small_corpus / u.path)
            name = f"{g.upper()}{u.speaker[:3]:0>3}{k}"
            if k < 5:
                d = root / "TRAIN" / f"DR{k % 2 + 1}" / name
                d.mkdir(parents=True)
                sf.write(d / "SI1.WAV", x, sr, format="NIST", subtype="PCM_16")
            else:
                d = root / "test" / "dr1" / name.lower()
                d.mkdir(parents=True)
                sf.write(d / "sx2.wav", x, sr, format="WAV", subtype="PCM_16")
    (root / "README.DOC").write_text("tiny TIMIT-layout fixture made from LibriSpeech clips (CC BY 4.0)\n")
    return root


def test_timit_layout_is_detected_and_keeps_timit_speaker_split(timit_dir):
    assert detect_layout(timit_dir) == "timit"
    utts = corpus.scan_corpus(timit_dir, seed=0)
    assert len(utts) == 16 and {u.layout for u in utts} == {"timit"}
    by_split = {s: {u.speaker for u in utts if u.split == s} for s in SPLITS}
    assert len(by_split["test"]) == 6 and all(s.startswith(("F", "M")) for s in by_split["test"])
    assert len(by_split["valid"]) == 2 and len(by_split["train"]) == 8  # one per gender moved from TRAIN to valid
    assert not by_split["valid"] & by_split["train"]
    test_ids = {u.utterance_id for u in utts if u.split == "test"}
    assert all(i.endswith("-SX2") for i in test_ids)
    assert {u.gender for u in utts if u.speaker.startswith("F")} == {"f"}


def test_timit_layout_renders_through_the_cli(timit_dir, tmp_path):
    manifest = tmp_path / "timit.csv"
    runner = CliRunner()
    res = runner.invoke(main, ["manifest", str(timit_dir), "--out", str(manifest)])
    assert res.exit_code == 0, res.output
    assert "timit layout" in res.output and read_manifest(manifest)[0].layout == "timit"
    res = runner.invoke(main, ["render", "--corpus", str(timit_dir), "--manifest", str(manifest), "--speakers", "2",
                               "--gender", "fm", "--num-mixtures", "2,1,2", "--workers", "0", "--quiet",
                               "--out", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    data = shards.ShardSet(sorted((tmp_path / "data" / "fm2").glob("test-*.h5")))
    assert len(data) == 2
    ex = data.read(0)
    assert ex["sources"].shape == (2, 32000) and ex["magnitude"].shape == (257, 251)
    spec = data.read(0, ("spec",))["spec"]
    assert set(spec.genders) == {"f", "m"} and all(p.lower().startswith("test/") for p in spec.paths)


def test_csv_layout_and_its_errors(small_corpus, small_manifest, tmp_path):
    root = tmp_path / "mine"
    (root / "audio").mkdir(parents=True)
    rows = ["path,speaker,gender"]
    for u in small_manifest:
        shutil.copy(small_corpus / u.path, root / "audio" / u.path)
        rows.append(f"audio/{u.path},{u.speaker},{'female' if u.gender == 'f' else 'M'}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    assert detect_layout(root) == "csv"
    utts = corpus.scan_corpus(root, seed=0)
    assert {u.layout for u in utts} == {"csv"} and len(utts) == len(small_manifest)
    assert sorted((u.speaker, u.gender) for u in utts) == sorted((u.speaker, u.gender) for u in small_manifest)
    specs_by_split = planner.plan_dataset(utts, root, specs.RenderConfig(), 0, "fm", 2, {"test": 1})
    assert specs_by_split["test"][0].paths[0].startswith("audio/")

    (root / "list.csv").write_text("path,speaker,gender\naudio/nothing.flac,1,f\n")
    with pytest.raises(FileNotFoundError, match="nothing.flac"):
        corpus.scan_corpus(root, seed=0)
    (root / "list.csv").write_text(f"path,speaker,gender\n{rows[1].rsplit(',', 1)[0]},x\n")
    with pytest.raises(ValueError, match="gender 'x'"):
        corpus.scan_corpus(root, seed=0)


def test_unknown_layout_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="SPEAKERS.TXT.*TRAIN/"):
        detect_layout(tmp_path / "empty")
