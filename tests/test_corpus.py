import shutil

import pytest

from spatialdc.pipeline import corpus


def test_splits_are_by_speaker_and_stratified(small_manifest):
    by_speaker = {}
    for u in small_manifest:
        by_speaker.setdefault(u.speaker, set()).add(u.split)
    assert all(len(s) == 1 for s in by_speaker.values())
    for g in corpus.GENDERS:
        counts = {s: len({u.speaker for u in small_manifest if u.gender == g and u.split == s}) for s in corpus.SPLITS}
        assert counts == {"train": 6, "valid": 1, "test": 1}


def test_bundled_manifest_is_committed_and_matches_a_fresh_scan():
    from tests.conftest import BUNDLED, ROOT

    committed = corpus.read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    assert committed == corpus.assign_splits(corpus.scan_librispeech(BUNDLED), seed=0)
    assert len({u.speaker for u in committed}) == 251


def test_manifest_round_trip(small_manifest, tmp_path):
    corpus.write_manifest(tmp_path / "m.csv", small_manifest)
    assert corpus.read_manifest(tmp_path / "m.csv") == small_manifest


def test_missing_corpus_and_corrupt_audio_are_named(small_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        corpus.scan_librispeech(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    shutil.copytree(small_corpus, bad)
    victim = sorted(bad.glob("*.flac"))[0]
    victim.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match=victim.name):
        corpus.scan_librispeech(bad)


def test_wrong_sample_rate_is_refused(small_manifest, small_corpus):
    with pytest.raises(ValueError, match="expected 8000 Hz"):
        corpus.load_audio(small_manifest[0], small_corpus, 8000)
