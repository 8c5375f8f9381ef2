"""End to end on real mixtures of the bundled corpus: the committed manifest, the test speakers, oracle masks."""

import numpy as np

from spatialdc.eval.evaluate import evaluate
from spatialdc.eval.report import summarize
from spatialdc.pipeline import build, planner, specs
from spatialdc.pipeline.manifest import read_manifest
from tests.conftest import BUNDLED, ROOT


def test_oracle_masks_separate_real_test_mixtures(tmp_path):
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    by_split = planner.plan_dataset(utts, BUNDLED, specs.RenderConfig(), 0, "fm", 2, {"test": 8})
    build.render_dataset(by_split, BUNDLED, tmp_path, shard_size=4, workers=0, progress=False)
    rows = evaluate([str(tmp_path / "fm2" / "test-*.h5")], None, workers=0, progress=False)
    means = {e["method"]: e["sdri_mean"] for e in summarize(rows)}
    assert means["oracle_ds"] > 10 and means["oracle_bpd"] > 8
    assert means["oracle_ds"] >= means["oracle_bpd"] - 0.5
    mix_sdr = np.mean([r["sdr_mix"] for r in rows])
    assert -5 < mix_sdr < 5  # gains drawn around equal levels: the mixture is near 0 dB
