"""The measured-room benchmark (benchmarks/rir_benchmark.py) and its database reader (benchmarks/rirdb.py) on a tiny
fake database in the real one's layout and format: SOFA (HDF5) files ``UniS_<room>_BRIR_<16|48>k.sofa`` holding
delayed impulses. No network, no fetched data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from spatialdc.pipeline import corpus, specs
from spatialdc.pipeline.planner import Planner

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
AZIMUTHS = (270.0, 300.0, 330.0, 0.0, 30.0, 60.0, 90.0)  # stored as the Surrey files do: -90..90 lateral
ONSET = 20  # samples at 16 kHz before the direct sound (the measurement latency)


def _load(name: str):
    """A benchmark script as a module (benchmarks/ is not a package; rir_benchmark imports its sibling rirdb)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


rirdb = _load("rirdb")
rir_benchmark = _load("rir_benchmark")


def expected_delay(azimuth: float) -> int:
    """Delay (samples at 16 kHz) of mic 2 after mic 1 in the fake rooms: mic 1 is nearer negative lateral angles."""
    lateral = azimuth - 360 if azimuth > 180 else azimuth
    return int(round(-lateral / 90 * 6))


def write_sofa(path: Path, rate: int, tail: bool) -> None:
    """A SimpleFreeFieldHRIR SOFA file: per azimuth, an impulse at mic 1 and a delayed, weaker one at mic 2 (and,
    with ``tail``, a seeded decaying noise tail at both: a small 'room')."""
    up = rate // 16000
    length = 96 * up
    irs = np.zeros((len(AZIMUTHS), 2, length))
    rng = np.random.default_rng(0)
    for m, az in enumerate(AZIMUTHS):
        d = expected_delay(az)
        first = ONSET + m  # the positions' distances differ a little: later onsets for later positions
        irs[m, 0, (first + max(-d, 0)) * up] = 1.0
        irs[m, 1, (first + max(d, 0)) * up] = 0.8
        if tail:
            decay = np.exp(-np.arange(length - 40 * up) / (10.0 * up))
            irs[m, :, 40 * up:] += 0.05 * decay * rng.standard_normal((2, length - 40 * up))
    with h5py.File(path, "w") as fh:
        fh.attrs.update({"Conventions": "SOFA", "SOFAConventions": "SimpleFreeFieldHRIR", "License": "MIT license"})
        fh["Data.IR"] = irs
        fh["Data.SamplingRate"] = np.array([float(rate)])
        fh["SourcePosition"] = np.array([[az, 0.0, 1.5] for az in AZIMUTHS])
        fh["SourcePosition"].attrs.update({"Type": "spherical", "Units": "degree, degree, metre"})
        fh["ReceiverPosition"] = np.array([[0.0, 0.09, 0.0], [0.0, -0.09, 0.0]])[:, :, None]


@pytest.fixture
def fake_db(tmp_path) -> Path:
    """An anechoic set at 16 kHz and a 'room' at 48 kHz only (read resampled), plus a file the reader ignores."""
    root = tmp_path / "brirs"
    root.mkdir()
    write_sofa(root / "UniS_Anechoic_BRIR_16k.sofa", 16000, tail=False)
    write_sofa(root / "UniS_Room_A_BRIR_48k.sofa", 48000, tail=True)
    (root / "README.md").write_text("fake")
    return root


def test_reader_lists_rooms_positions_and_pair_geometry(fake_db):
    db = rirdb.read_database(fake_db)
    assert list(db) == ["Anechoic", "Room_A"]
    for name, room in db.items():
        assert room.sample_rate == 16000 and room.irs.shape[:2] == (len(AZIMUTHS), 2)
        assert room.rt60_s == rirdb.RT60_S[name]
        np.testing.assert_allclose(room.lateral_deg, [-90, -60, -30, 0, 30, 60, 90])
        assert room.spacing_m((0, 1)) == pytest.approx(0.18)
        assert room.onset == pytest.approx(ONSET, abs=1)  # the 48 kHz room, resampled, within a sample
        np.testing.assert_allclose(room.delays_samples[:, 1], [expected_delay(a) for a in AZIMUTHS], atol=0.1)
        assert room.max_delay_samples((0, 1)) == pytest.approx(6, abs=0.1)
    assert db["Room_A"].irs.shape[-1] == 96  # 288 samples at 48 kHz
    entries = rirdb.list_entries(db)
    assert len(entries) == 2 * len(AZIMUTHS)
    e = entries[len(AZIMUTHS)]
    assert (e.room, e.position, e.azimuth_deg, e.lateral_deg, e.distance_m, e.mics) == \
        ("Room_A", 0, 270.0, -90.0, 1.5, (0, 1))
    assert e.mic_spacing_m == pytest.approx(0.18) and e.delay_samples == pytest.approx(6, abs=0.1)


def test_reader_prefers_the_16k_file_and_selects_rooms(fake_db):
    write_sofa(fake_db / "UniS_Anechoic_BRIR_48k.sofa", 48000, tail=True)
    assert rirdb.find_files(fake_db)["Anechoic"].name == "UniS_Anechoic_BRIR_16k.sofa"
    assert list(rirdb.read_database(fake_db, rooms=["Room_A"])) == ["Room_A"]
    with pytest.raises(ValueError, match=r"Room_Z.*holds \['Anechoic', 'Room_A'\]"):
        rirdb.read_database(fake_db, rooms=["Room_Z"])


def test_missing_folder_says_where_to_get_the_database(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found; .*git clone https://github.com/IoSR-Surrey/RealRoomBRIRs"):
        rirdb.read_database(tmp_path / "nowhere")


def test_a_folder_of_another_layout_is_refused_with_what_was_expected(tmp_path):
    (tmp_path / "rir_000.wav").write_bytes(b"RIFF")
    with pytest.raises(FileNotFoundError, match=r"holds no UniS_<Anechoic.*\.sofa file \(it holds rir_000\.wav\)"):
        rirdb.read_database(tmp_path)


def test_a_file_that_is_not_sofa_is_refused_by_name(fake_db):
    bad = fake_db / "UniS_Room_B_BRIR_16k.sofa"
    bad.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 5\n")  # an LFS pointer
    with pytest.raises(ValueError, match=r"UniS_Room_B_BRIR_16k\.sofa is not a SOFA \(HDF5\) file"):
        rirdb.read_database(fake_db)
    with h5py.File(bad, "w") as fh:
        fh["Data.IR"] = np.zeros((2, 2, 8))
    with pytest.raises(ValueError, match=r"UniS_Room_B_BRIR_16k\.sofa lacks .*'Data.SamplingRate'"):
        rirdb.read_database(fake_db, rooms=["Room_B"])


@pytest.fixture(scope="module")
def planner():
    utts = corpus.read_manifest(rir_benchmark.MANIFEST)
    return Planner.of_corpus(utts, rir_benchmark.CORPUS, specs.RenderConfig(), 0)


def test_two_mixtures_end_to_end_with_the_shipped_model(fake_db, planner, tmp_path):
    db = rirdb.read_database(fake_db)
    mixtures = rir_benchmark.plan_mixtures(planner, "fm", 2, rir_benchmark.common_azimuths(db), 0, 10.0)
    committed = specs.read_specs(ROOT / "data_manifests/datasets/librispeech-clips/fm2/test.jsonl.gz")[:2]
    assert [m.spec for m in mixtures] == committed  # the project's own test mixtures, speech and gains
    for m in mixtures:
        lat = rir_benchmark.lateral(m.azimuths_deg)
        assert m.azimuths_deg[0] != m.azimuths_deg[1] and abs(lat[0] - lat[1]) >= 10
        assert set(m.azimuths_deg) <= set(AZIMUTHS)

    mixture, refs = rir_benchmark.render_in_room(mixtures[0], db["Anechoic"], (0, 1))
    assert mixture.shape == (2, 32000) and refs.shape == (2, 32000)
    np.testing.assert_allclose(mixture[0], refs.sum(axis=0))  # mic 1 is the sum of the references
    again, _ = rir_benchmark.render_in_room(mixtures[0], db["Anechoic"], (0, 1))
    np.testing.assert_array_equal(mixture, again)

    separators = rir_benchmark.load_separators(["fm2-bpd"])
    rows = rir_benchmark.run(mixtures, db, separators, (0, 1), seed=0, progress=False)
    assert len(rows) == 2 * 2 * 3 * 2  # mixtures x rooms x (model, oracle DS, labels) x sources
    assert {r["method"] for r in rows} == {"fm2-bpd", "oracle_ds", "labels"}
    assert all(np.isfinite(r["sdri"]) and not r["silent_reference"] for r in rows)
    anechoic = [r for r in rows if r["room"] == "Anechoic"]
    assert np.mean([r["sdri"] for r in anechoic if r["method"] == "oracle_ds"]) > 8
    assert min(r["bpd_accuracy"] for r in anechoic) > 0.8  # pure delays of up to 6 samples: clean spatial cues

    table = rir_benchmark.summary_table(rows, db, (0, 1))
    assert "| Room_A (0.32 s, 0.18 m, 6.0 samples) | labels |" in table
    rir_benchmark.write_csv(tmp_path / "rows.csv", rows)
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == len(rows) + 1
