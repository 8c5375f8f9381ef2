import shutil

import pytest

from spatialdc.pipeline import corpus
from spatialdc.pipeline.layouts.librispeech import scan_librispeech
from spatialdc.pipeline.manifest import GENDERS, SPLITS, load_audio, read_manifest, write_manifest


def test_splits_are_by_speaker_and_stratified(small_manifest):
    by_speaker = {}
    for u in small_manifest:
        by_speaker.setdefault(u.speaker, set()).add(u.split)
    assert all(len(s) == 1 for s in by_speaker.values())
    for g in GENDERS:
        counts = {s: len({u.speaker for u in small_manifest if u.gender == g and u.split == s}) for s in SPLITS}
        assert counts == {"train": 6, "valid": 1, "test": 1}


def test_bundled_manifest_is_committed_and_matches_a_fresh_scan():
    from tests.conftest import BUNDLED, ROOT

    committed = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    assert committed == corpus.assign_splits(scan_librispeech(BUNDLED), seed=0)
    assert len({u.speaker for u in committed}) == 251


def test_manifest_round_trip(small_manifest, tmp_path):
    write_manifest(tmp_path / "m.csv", small_manifest)
    assert read_manifest(tmp_path / "m.csv") == small_manifest


def test_missing_corpus_and_corrupt_audio_are_named(small_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_librispeech(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    shutil.copytree(small_corpus, bad)
    victim = sorted(bad.glob("*.flac"))[0]
    victim.write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match=victim.name):
        scan_librispeech(bad)


def test_wrong_sample_rate_is_refused(small_manifest, small_corpus):
    with pytest.raises(ValueError, match="expected 8000 Hz"):
        load_audio(small_manifest[0], small_corpus, 8000)
