"""Tiny seeded fixtures: a 16-speaker slice of the bundled LibriSpeech corpus, and a tiny rendered dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spatialdc.pipeline import build, corpus, planner, specs
from spatialdc.pipeline.layouts.librispeech import read_librispeech_speakers, scan_librispeech
from spatialdc.pipeline.manifest import GENDERS

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "corpora" / "librispeech-clips"


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """8 female + 8 male speakers (the first by id with >= 6 s of audio) copied from the bundled corpus."""
    out = tmp_path_factory.mktemp("corpus")
    genders = read_librispeech_speakers(BUNDLED / "SPEAKERS.TXT")
    utts = scan_librispeech(BUNDLED)
    picked = []
    for g in GENDERS:
        picked += [u for u in utts if u.gender == g and u.duration_s >= 6][:8]
    for u in picked:
        shutil.copy(BUNDLED / u.path, out / u.path)
    lines = [f"{u.speaker} | {genders[u.speaker].upper()} | train-clean-100 | 1.0 | x" for u in picked]
    (out / "SPEAKERS.TXT").write_text(";ID|SEX|SUBSET|MINUTES|NAME\n" + "\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="session")
def small_manifest(small_corpus) -> list:
    return corpus.assign_splits(scan_librispeech(small_corpus), seed=0)


@pytest.fixture(scope="session")
def small_specs(small_corpus, small_manifest) -> dict:
    """fm2 specs: 8 train, 4 valid, 4 test mixtures."""
    return planner.plan_dataset(small_manifest, small_corpus, specs.RenderConfig(), 0, "fm", 2,
                              {"train": 8, "valid": 4, "test": 4})


@pytest.fixture(scope="session")
def small_dataset(small_corpus, small_specs, tmp_path_factory) -> Path:
    """The small specs rendered in-process into shards of 4 mixtures; returns the dataset folder."""
    out = tmp_path_factory.mktemp("data")
    build.render_dataset(small_specs, small_corpus, out, shard_size=4, workers=0, progress=False)
    return out / "fm2"
