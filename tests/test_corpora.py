"""More voices: Kaldi data directories and lhotse manifests made in the test from the bundled clips, a manifest of
several corpora, the age filter, and speed perturbation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from spatialdc.pipeline import corpus, planner, specs
from spatialdc.pipeline.layouts import detect_layout
from spatialdc.pipeline.manifest import GENDERS, SPLITS, load_audio
from spatialdc.pipeline.cli import main as dcgen
from spatialdc.pipeline.render import render_mixture, speed_perturbed_segment


def make_kaldi(small_corpus, small_manifest, root: Path, segments: bool = False) -> Path:
    """speechocean762's shape: WAVE/<speaker>/<utt>.WAV (upper case), train/ and test/ data directories with
    tab-separated, root-relative wav.scp, utt2spk, spk2gender and spk2age (half the speakers children)."""
    by_gender = {g: [u for u in small_manifest if u.gender == g] for g in GENDERS}
    for g, utts in by_gender.items():
        for k, u in enumerate(utts):
            split = "test" if k >= 5 else "train"
            d = root / split
            d.mkdir(parents=True, exist_ok=True)
            spk = f"S{g.upper()}{k:02d}"
            wav = root / "WAVE" / spk / f"{spk}0001.WAV"
            wav.parent.mkdir(parents=True, exist_ok=True)
            x, sr = sf.read(small_corpus / u.path)
            sf.write(wav, x, sr, format="WAV", subtype="PCM_16")
            rec = f"{spk}0001"
            with open(d / "wav.scp", "a") as fh:
                fh.write(f"{rec}\tWAVE/{spk}/{spk}0001.WAV\n")
            if segments:  # two utterances per recording: its first and second halves
                half = len(x) / sr / 2
                with open(d / "segments", "a") as fh:
                    fh.write(f"{rec}-a {rec} 0.0 {half:.3f}\n{rec}-b {rec} {half:.3f} -1\n")
                with open(d / "utt2spk", "a") as fh:
                    fh.write(f"{rec}-a\t{spk}\n{rec}-b\t{spk}\n")
            else:
                with open(d / "utt2spk", "a") as fh:
                    fh.write(f"{rec}\t{spk}\n")
            with open(d / "spk2gender", "a") as fh:
                fh.write(f"{spk}\t{g}\n")
            with open(d / "spk2age", "a") as fh:
                fh.write(f"{spk}\t{9 if k % 2 else 30}\n")
    return root


def test_kaldi_layout_like_speechocean762(small_corpus, small_manifest, tmp_path):
    root = make_kaldi(small_corpus, small_manifest, tmp_path / "so")
    assert detect_layout(root) == "kaldi"  # not TIMIT, although it has train/ and test/
    utts = corpus.scan_corpus(root, seed=0)
    assert {u.layout for u in utts} == {"kaldi"} and len(utts) == 16
    assert all(u.path.startswith("WAVE/") and u.path.endswith(".WAV") for u in utts)  # relative to the root
    by_split = {s: {u.speaker for u in utts if u.split == s} for s in SPLITS}
    assert len(by_split["test"]) == 6 and len(by_split["valid"]) == 2 and len(by_split["train"]) == 8
    assert {u.age for u in utts} == {9, 30}
    x = load_audio(utts[0], root, 16000)
    assert x.shape == (utts[0].num_samples,)


def test_kaldi_segments_are_utterances_inside_recordings(small_corpus, small_manifest, tmp_path):
    root = make_kaldi(small_corpus, small_manifest, tmp_path / "seg", segments=True)
    utts = {u.utterance_id: u for u in corpus.scan_corpus(root, seed=0)}
    a, b = utts["SF000001-a"], utts["SF000001-b"]
    assert a.start_sample == 0 and b.start_sample == a.num_samples and a.path == b.path
    whole, _ = sf.read(root / a.path)
    assert np.allclose(np.concatenate([load_audio(a, root, 16000), load_audio(b, root, 16000)]),
                       whole, atol=1e-4)
    # a planned segment starts inside its utterance; the spec's offset counts from the start of the file
    spec = planner.plan_dataset(list(utts.values()), root, specs.RenderConfig(), 0, "fm", 2, {"test": 1})["test"][0]
    for uid, off in zip(spec.utterance_ids, spec.offsets):
        u = utts[uid]
        assert u.start_sample <= off <= u.start_sample + u.num_samples - spec.num_samples


def test_kaldi_errors_name_the_file_and_the_fix(small_corpus, small_manifest, tmp_path):
    root = make_kaldi(small_corpus, small_manifest, tmp_path / "bad")
    (root / "train" / "spk2gender").rename(root / "train" / "spk2gender.bak")
    with pytest.raises(FileNotFoundError, match=r"train/spk2gender not found.*write it"):
        corpus.scan_corpus(root, seed=0)
    (root / "train" / "spk2gender.bak").rename(root / "train" / "spk2gender")
    first = (root / "test" / "wav.scp").read_text().splitlines()[0].split("\t")[1]
    (root / first).unlink()
    with pytest.raises(FileNotFoundError, match=r"test/wav.scp:1: audio .* not found"):
        corpus.scan_corpus(root, seed=0)


def _lhotse_dir(small_corpus, small_manifest, root: Path, with_gender: bool = True) -> Path:
    lhotse = pytest.importorskip("lhotse")
    root.mkdir(parents=True)
    recs, sups = [], []
    for u in small_manifest:
        shutil.copy(small_corpus / u.path, root / u.path)
        rec = lhotse.Recording.from_file(root / u.path, recording_id=u.utterance_id, relative_path_depth=1)
        recs.append(rec)
        sups.append(lhotse.SupervisionSegment(id=f"{u.utterance_id}-sup", recording_id=rec.id, start=0.5,
                                              duration=rec.duration - 0.5, channel=0, speaker=u.speaker,
                                              gender=u.gender.upper() if with_gender else None))
    lhotse.RecordingSet.from_recordings(recs).to_file(root / "mini_recordings_all.jsonl.gz")
    lhotse.SupervisionSet.from_segments(sups).to_file(root / "mini_supervisions_all.jsonl.gz")
    return root


def test_lhotse_manifests_become_a_manifest(small_corpus, small_manifest, tmp_path):
    root = _lhotse_dir(small_corpus, small_manifest, tmp_path / "lh")
    assert detect_layout(root) == "lhotse"
    utts = corpus.scan_corpus(root, seed=0)
    assert {u.layout for u in utts} == {"lhotse"} and len(utts) == len(small_manifest)
    assert {u.start_sample for u in utts} == {8000}  # supervisions start 0.5 s into their recordings
    assert sorted((u.speaker, u.gender) for u in utts) == sorted((u.speaker, u.gender) for u in small_manifest)
    u = utts[0]
    assert np.allclose(load_audio(u, root, 16000), sf.read(root / u.path)[0][8000:], atol=1e-6)


def test_lhotse_without_genders_is_refused(small_corpus, small_manifest, tmp_path):
    root = _lhotse_dir(small_corpus, small_manifest, tmp_path / "nog", with_gender=False)
    with pytest.raises(ValueError, match=r"mini_supervisions_all.jsonl.gz: supervision .* has no gender"):
        corpus.scan_corpus(root, seed=0)


def test_a_union_keeps_speakers_disjoint_across_splits_and_records_corpora(small_corpus, small_manifest, tmp_path):
    kaldi = make_kaldi(small_corpus, small_manifest, tmp_path / "so762")
    utts_a = corpus.scan_corpus(small_corpus, 0)
    utts_b = corpus.scan_corpus(kaldi, 0)
    union = corpus.union_manifests([(small_corpus.name, utts_a), ("so762", utts_b)])
    split_of: dict[str, set] = {}
    for u in union:
        split_of.setdefault(u.speaker, set()).add(u.split)
    assert all(len(s) == 1 for s in split_of.values())  # every speaker in one split
    assert {u.corpus for u in union} == {small_corpus.name, "so762"}
    # the same voices under each corpus's own id: namespaced, never merged
    assert len(split_of) == len({u.speaker for u in utts_a}) + len({u.speaker for u in utts_b})
    # each corpus keeps the split it has on its own
    own = {u.speaker: u.split for u in utts_a}
    assert all(own[u.speaker.split("/", 1)[1]] == u.split for u in union if u.corpus == small_corpus.name)
    roots = {small_corpus.name: small_corpus, "so762": kaldi}
    spec = planner.plan_dataset(union, roots, specs.RenderConfig(), 0, "fm", 2, {"train": 3})["train"]
    assert all(len(s.corpora) == 2 for s in spec) and all(set(s.corpora) <= set(roots) for s in spec)
    ex = render_mixture(spec[0], roots)
    assert ex.mixture.shape == (2, 32000)
    spec_json = specs.MixtureSpec.from_json(spec[0].to_json())
    assert spec_json == spec[0]


def test_the_same_corpus_twice_and_the_age_filter(small_corpus, small_manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # manifests go to ./data_manifests/corpora
    kaldi = make_kaldi(small_corpus, small_manifest, tmp_path / "so762")
    with pytest.raises(ValueError, match="the same corpus is given twice"):
        corpus.open_corpora([kaldi, kaldi], None, 0)
    all_ages = corpus.open_corpora([small_corpus, kaldi], None, 0)
    adults = corpus.open_corpora([small_corpus, kaldi], None, 0, min_age=16)
    kids = {u.speaker for u in all_ages.utterances if 0 <= u.age < 16}
    assert kids and not kids & {u.speaker for u in adults.utterances}
    assert {u.speaker for u in all_ages.utterances if u.corpus == small_corpus.name} == \
        {u.speaker for u in adults.utterances if u.corpus == small_corpus.name}  # unknown ages are kept
    with pytest.raises(ValueError, match="no speaker of .* has a known age"):
        corpus.open_corpora([small_corpus], None, 0, min_age=16)
    r = CliRunner().invoke(dcgen, ["render", "--corpus", str(kaldi), "--corpus", str(kaldi), "--dry-run"])
    assert r.exit_code != 0 and "given twice" in r.output


def test_speed_perturbation_keeps_the_length_and_moves_a_tone_by_the_factor(tmp_path):
    sr, f0 = 16000, 440.0
    t = np.arange(4 * sr) / sr
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * f0 * t), sr, subtype="FLOAT")
    for speed in (0.9, 1.0, 1.07, 1.1):
        seg = speed_perturbed_segment(path, 8000, 32000, sr, speed)
        base = speed_perturbed_segment(path, 8000, 32000, sr, 1.0)
        assert seg.shape == base.shape == (32000 + 2 * 1024,)
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
        peak = np.argmax(spectrum) * sr / seg.size
        assert abs(peak - f0 * speed) < 2.0, (speed, peak)
        # the segment starts where the unperturbed one starts: the same phase at the offset
        assert abs(seg[1024] - base[1024]) < 1e-2
