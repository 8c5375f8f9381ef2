"""The HTML report (dceval --examples, dcsep --report): every audio and image the page references exists, decodes and
has the right length; the page's SDRi numbers are the CSV's; the stems it plays are the ones that were scored."""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from spatialdc.eval.dceval import main as dceval
from spatialdc.eval.dcsep import main as dcsep
from spatialdc.eval.html_report import spread_ranks
from spatialdc.pipeline.metrics import bss_eval_sets
from spatialdc.trainer.loop import train
from tests.test_trainer import tiny_config


class Page(HTMLParser):
    """What a page references and the SDRi numbers it shows."""

    def __init__(self, path: Path):
        super().__init__()
        self.audio, self.images, self.sdri, self.external, self._span = [], [], {}, [], None
        self.text = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append((tag, a))
        for key in ("src", "href"):
            if "://" in (a.get(key) or ""):
                self.external.append((tag, a))
        if tag == "audio":
            self.audio.append(a["src"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "span" and a.get("class") == "sdri":
            self._span = (a["data-mixture"], a["data-method"], int(a["data-source"]))

    def handle_data(self, data):
        self.text.append(data)
        if self._span:
            self.sdri[self._span] = data
            self._span = None


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(small_dataset, epochs=1), out, progress=False)
    return out / "best.pt"


def _check_files(page: Path, parsed: Page, num_samples: int) -> dict[str, np.ndarray]:
    """Every referenced file exists and decodes; audio is 16-bit, 16 kHz, ``num_samples`` long. Returns the audio."""
    assert not parsed.external, parsed.external  # nothing fetched, no script
    audio = {}
    for src in parsed.audio:
        path = page.parent / src
        assert path.is_file(), src
        info = sf.info(str(path))
        assert (info.samplerate, info.subtype, info.channels, info.frames) == (16000, "PCM_16", 1, num_samples), src
        audio[src], _ = sf.read(str(path))
    for src in parsed.images:
        img = imread(page.parent / src)
        assert img.ndim == 3 and min(img.shape[:2]) > 50, src
    return audio


def _dceval(args, tmp_path):
    with threadpool_limits(1):  # one thread, as in dceval's Dask workers (threads only contend on tiny work)
        r = CliRunner().invoke(dceval, ["--report", str(tmp_path / "sdr.csv"), "--workers", "0", "--quiet"] + args)
    assert r.exit_code == 0, r.output
    return list(csv.DictReader((tmp_path / "sdr.csv").open())), tmp_path / "sdr.report" / "report.html"


def test_dceval_page_plays_the_scored_stems_with_the_csvs_numbers(checkpoint, small_dataset, tmp_path):
    rows, page = _dceval(["--checkpoint", str(checkpoint), "--shards", str(small_dataset / "test-*.h5"),
                          "--examples", "3"], tmp_path)
    parsed = Page(page)
    audio = _check_files(page, parsed, 32000)  # 2 s mixtures at 16 kHz
    assert {Path(s).name for s in parsed.images} >= {"sdr.box.png", "sdr.spatial.png", "sdr.npd.png", "masks.png"}
    csv_sdri = {(r["mixture_id"], r["method"], int(r["source"])): r["sdri"] for r in rows}
    mixtures = sorted({k[0] for k in parsed.sdri})
    assert len(mixtures) == 3 and len(parsed.sdri) == 3 * 3 * 2  # 3 examples x (model + 2 oracles) x 2 sources
    for key, shown in parsed.sdri.items():
        assert shown == f"{float(csv_sdri[key]):.2f}", key  # the CSV's number, rounded to 2 decimals
    # the best and the worst of the model come first and last
    mean = {m: np.mean([float(v) for (mm, meth, _), v in csv_sdri.items() if mm == m and meth == "dc_bpd"])
            for m in {k[0] for k in csv_sdri}}
    order = list(dict.fromkeys(k[0] for k in parsed.sdri))
    assert order[0] == max(mean, key=mean.get) and order[-1] == min(mean, key=mean.get)
    # the stems are the scored ones, each beside the reference it was matched to: re-scoring the page's WAVs gives
    # the CSV's SDRi (one scale for all audio of an example; 16-bit rounding costs < 0.05 dB)
    methods = ("dc_bpd", "oracle_ds", "oracle_bpd")
    for m in mixtures:
        refs = np.stack([audio[f"{m}/reference{j}.wav"] for j in (1, 2)])
        mix = audio[f"{m}/mixture.wav"]
        stems = [np.stack([audio[f"{m}/{method}_{j}.wav"] for j in (1, 2)]) for method in methods]
        with threadpool_limits(1):
            base, *scores = bss_eval_sets(refs, [np.tile(mix, (2, 1))] + stems)
        for method, s in zip(methods, scores):
            assert np.array_equal(s.perm, [0, 1]), (m, method)
            np.testing.assert_allclose(s.sdr - base.sdr, [float(csv_sdri[(m, method, j)]) for j in (0, 1)],
                                       atol=0.05, err_msg=f"{m} {method}")


def test_oracles_only_page_and_no_page_with_zero_examples(small_dataset, tmp_path):
    shards = ["--shards", str(small_dataset / "test-*.h5"), "--no-plots"]
    rows, page = _dceval(shards + ["--examples", "2"], tmp_path)
    parsed = Page(page)
    _check_files(page, parsed, 32000)
    assert {k[1] for k in parsed.sdri} == {"oracle_ds", "oracle_bpd"}
    assert not any("dc_" in s for s in parsed.audio) and "none: the oracle masks only" in "".join(parsed.text)
    assert len({k[0] for k in parsed.sdri}) == 2
    _, page = _dceval(shards + ["--examples", "0"], tmp_path / "zero")
    assert not page.parent.exists()


def test_spread_ranks_keeps_best_median_worst_and_spreads_the_rest():
    assert spread_ranks(20, 6) == [0, 2, 4, 9, 14, 19]
    assert spread_ranks(4, 6) == [0, 1, 2, 3] and spread_ranks(10, 1) == [0] and spread_ranks(10, 2) == [0, 9]
    for n, k in ((7, 3), (300, 6), (50, 10)):
        r = spread_ranks(n, k)
        assert len(set(r)) == k and {0, n - 1, (n - 1) // 2} <= set(r)


@pytest.fixture(scope="module")
def recording(small_corpus, tmp_path_factory):
    """4 s of two bundled speakers at 16 kHz."""
    files = sorted(small_corpus.glob("*.flac"))
    n = 4 * 16000
    mix = 0.5 * np.resize(sf.read(files[0])[0], n) + 0.5 * np.resize(sf.read(files[-1])[0], n)
    path = tmp_path_factory.mktemp("rec") / "talk.wav"
    sf.write(path, mix, 16000)
    return path


def test_dcsep_report_shows_input_stems_masks_and_count(checkpoint, recording, tmp_path):
    args = [str(recording), "--checkpoint", str(checkpoint), "--out", str(tmp_path)]
    r = CliRunner().invoke(dcsep, args + ["--report"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "talk.report" / "report.html"
    parsed = Page(page)
    audio = _check_files(page, parsed, 4 * 16000)
    assert sorted(parsed.audio) == ["../talk_speaker1.wav", "../talk_speaker2.wav", "input.wav"]
    assert parsed.images == ["masks.png"] and "Speakers: 2 (given)" in "".join(parsed.text)
    # the same stems as without --report
    r = CliRunner().invoke(dcsep, args + ["--out", str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    for k in (1, 2):
        assert np.array_equal(sf.read(tmp_path / "plain" / f"talk_speaker{k}.wav")[0], audio[f"../talk_speaker{k}.wav"])
    r = CliRunner().invoke(dcsep, args + ["--report"])  # the report exists
    assert r.exit_code != 0 and "exists" in r.output
    r = CliRunner().invoke(dcsep, args + ["--report", "--overwrite", "--speakers", "auto"])
    assert r.exit_code == 0, r.output
    text = "".join(Page(page).text)
    assert "estimated by the eigenvalue rule" in text and "eigenvalues" in text
