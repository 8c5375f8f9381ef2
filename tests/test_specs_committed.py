"""The committed specs of the six default datasets are what `dcgen plan` makes from the bundled corpus."""

from __future__ import annotations

import gzip

import pytest

from spatialdc.pipeline import planner, specs
from spatialdc.pipeline.manifest import read_manifest
from tests.conftest import BUNDLED, ROOT

SPEC_ROOT = ROOT / "data_manifests" / "datasets" / "librispeech-clips"


def test_six_datasets_are_committed_at_paper_sizes():
    for g, n in specs.ALL_DATASETS:
        for split, size in planner.PAPER_SIZES.items():
            path = SPEC_ROOT / specs.dataset_name(g, n) / f"{split}.jsonl.gz"
            with gzip.open(path, "rt") as fh:
                assert sum(1 for _ in fh) == size, path


def test_committed_fm2_test_specs_equal_a_fresh_plan():
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    fresh = planner.plan_dataset(utts, BUNDLED, specs.RenderConfig(), 0, "fm", 2, {"test": 1800})["test"]
    committed = specs.read_specs(SPEC_ROOT / "fm2" / "test.jsonl.gz")
    assert specs.specs_hash(fresh) == specs.specs_hash(committed)
    assert {s.split for s in committed} == {"test"} and all(set(s.genders) == {"f", "m"} for s in committed)


def test_gzip_specs_round_trip_byte_identically(small_specs, tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    specs.write_specs(a, small_specs["train"])
    specs.write_specs(b, small_specs["train"])
    assert a.read_bytes() == b.read_bytes()  # no timestamp in the gzip header
    assert specs.read_specs(a) == small_specs["train"]
    a.write_bytes(a.read_bytes()[:20])
    with pytest.raises(ValueError, match="not a readable spec file"):
        specs.read_specs(a)
