"""Reliability probes of the pipeline (issue 25): damaged shards, a dataset folder of other settings, bad inputs at
the door, an evaluation-only corpus. Each probe asserts the exit code, the message (the file and the fix) and that
nothing was lost or overwritten. Each failed before the change it guards: a byte flipped in a chunk crashed readers
and ``dcgen verify`` (rc -11: a segmentation fault in bitshuffle's zstd decoder) and was counted complete by a
resumed render; other settings replaced a dataset without a word; bad values gave tracebacks or silent nonsense.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from spatialdc.pipeline import audio, shard_index, shards, specs
from spatialdc.pipeline.cli import main as dcgen
from spatialdc.pipeline.shards import ShardSet, expand_shards

READ_ALL = """
import sys
from spatialdc.pipeline.shards import ShardSet, expand_shards
try:
    data = ShardSet(expand_shards(sys.argv[1]))
    for i in range(len(data)):
        data.read(i)
    print("read all")
except ValueError as exc:
    print(type(exc).__name__, exc)
"""


def python(code: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash shows as a negative return code: -11 for a segfault)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def command(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` (the CLIs as a user runs them, where a crash cannot take pytest down)."""
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def flip_block_header(path: Path, name: str = "magnitude", row: int = 1) -> None:
    """Flip one byte in the middle of chunk ``row`` of ``name``: in the size field of the middle bitshuffle block
    (``[8-byte length][4-byte block size]`` then ``[4-byte compressed size][zstd bytes]`` per block), the damage
    that makes the decoder read out of bounds."""
    with h5py.File(path, "r") as h5:
        info = h5[name].id.get_chunk_info(row)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        raw = fh.read(info.size)
        pos, blocks = 12, []
        while pos + 4 <= len(raw):
            size = struct.unpack(">I", raw[pos:pos + 4])[0]
            if pos + 4 + size > len(raw):
                break
            blocks.append(pos)
            pos += 4 + size
        at = info.byte_offset + blocks[len(blocks) // 2]
        assert len(blocks) > 4 and info.size // 4 < at - info.byte_offset < 3 * info.size // 4  # the middle
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ 0x10]))


def downgrade_to_schema_2(ddir: Path) -> None:
    """Rewrite a dataset folder's shards as version 2 wrote them (the same arrays and attributes; no fletcher32,
    HDF5's earliest format), with their SHA-256 in index.json: what the campaign's data is."""
    for path in sorted(ddir.glob("*.h5")):
        with h5py.File(path, "r") as h5:
            arrays = {k: h5[k][()] for k in h5}
            attrs = {k: v for k, v in h5.attrs.items() if k != "attrs_sha256"}
        with h5py.File(path, "w", rdcc_nbytes=0) as h5:
            for k, data in arrays.items():
                if k == "spec":
                    h5.create_dataset(k, data=data, dtype=h5py.string_dtype(), track_times=False)
                else:
                    h5.create_dataset(k, data=data, chunks=(1,) + data.shape[1:], track_times=False,
                                      **shards.COMPRESSION)
            h5.attrs.update(dict(attrs, schema_version=2))
    index = json.loads((ddir / "index.json").read_text())
    for entry in index["shards"]:
        entry["sha256"] = shard_index.file_sha256(ddir / entry["file"])
        entry["bytes"] = (ddir / entry["file"]).stat().st_size
    index["schema_version"] = 2
    (ddir / "index.json").write_text(json.dumps(index))


def snapshot(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 of every file in a folder."""
    return {p.name: shard_index.file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def dataset_copy(small_dataset, tmp_path) -> Path:
    out = tmp_path / "fm2"
    shutil.copytree(small_dataset, out)
    return out


@pytest.fixture(scope="module")
def manifest(small_corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "m.csv"
    r = CliRunner().invoke(dcgen, ["manifest", str(small_corpus), "--out", str(path)])
    assert r.exit_code == 0, r.output
    return path


def render_args(corpus_dir, manifest, out, *extra) -> list[str]:
    return ["render", "--corpus", str(corpus_dir), "--manifest", str(manifest), "--gender", "fm", "--speakers", "2",
            "--split", "test", "--num-mixtures", "4", "--shard-size", "2", "--workers", "0", "--quiet",
            "--out", str(out), *extra]


# 1. Shards prove themselves ---------------------------------------------------------------------------------------

def test_a_byte_flipped_in_a_chunk_is_a_shard_read_error_not_a_segfault(dataset_copy):
    flip_block_header(dataset_copy / "test-00000.h5")
    r = python(READ_ALL, dataset_copy / "test-*.h5")
    assert r.returncode == 0, f"rc {r.returncode} (-11: segfault)\n{r.stderr[-2000:]}"
    assert r.stdout.startswith("ShardReadError"), r.stdout
    assert "test-00000.h5" in r.stdout and f"dcgen verify {dataset_copy}" in r.stdout


def test_every_damaged_byte_of_a_chunk_is_caught_before_decompression(dataset_copy):
    """A byte flipped at 16 places of a chunk (its header, block headers, compressed data, its checksum): every
    read is a ShardReadError; none gives wrong values (zstd frames carry no checksum of their own) or crashes."""
    code = """
import shutil, sys, h5py, numpy as np
from spatialdc.pipeline.shards import ShardSet, ShardReadError
src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as h5:
    info = h5["npd"].id.get_chunk_info(2)
outcomes = []
for off in np.linspace(0, info.size - 1, 16).astype(int):
    shutil.copy(src, dst)
    with open(dst, "r+b") as fh:
        fh.seek(info.byte_offset + off); b = fh.read(1)[0]; fh.seek(info.byte_offset + off); fh.write(bytes([b ^ 0x24]))
    try:
        ShardSet([dst]).read(2)
        outcomes.append("read")
    except ShardReadError:
        outcomes.append("error")
print(" ".join(outcomes))
"""
    r = python(code, dataset_copy / "test-00000.h5", dataset_copy.parent / "damaged.h5")
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stderr[-2000:]}"
    assert r.stdout.split() == ["error"] * 16, r.stdout


def test_schema_2_shards_still_read_and_a_damaged_one_is_refused_before_decompression(dataset_copy, small_dataset,
                                                                                        tmp_path):
    downgrade_to_schema_2(dataset_copy)
    old, new = ShardSet(expand_shards(str(dataset_copy / "test-*.h5"))), ShardSet(
        expand_shards(str(small_dataset / "test-*.h5")))
    for i in range(len(new)):
        a, b = old.read(i), new.read(i)
        assert all(np.array_equal(a[k], b[k]) for k in shards.ARRAY_FIELDS)
    old.close()
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(dataset_copy / "test-00000.h5", alone)  # an old shard away from its index.json cannot be checked
    with pytest.raises(shards.ShardReadError, match="cannot be checked before it is read.*index.json"):
        ShardSet([alone / "test-00000.h5"])
    flip_block_header(dataset_copy / "test-00000.h5")
    r = python(READ_ALL, dataset_copy / "test-*.h5")
    assert r.returncode == 0, f"rc {r.returncode} (-11: segfault)\n{r.stderr[-2000:]}"
    assert r.stdout.startswith("ShardReadError") and "SHA-256 differs" in r.stdout, r.stdout
    assert "test-00000.h5" in r.stdout and "dcgen verify" in r.stdout


def test_dcgen_verify_names_a_damaged_shard_and_never_crashes(dataset_copy, small_dataset):
    flip_block_header(dataset_copy / "test-00000.h5")
    r = command("spatialdc.pipeline.cli", "verify", dataset_copy)
    assert r.returncode == 1, f"rc {r.returncode} (-11: segfault)\n{r.stderr[-2000:]}"
    assert "test-00000.h5: checksum differs" in r.stderr and "test-00000.h5: magnitude[1] unreadable" in r.stderr
    assert "delete the named shards" in r.stderr and "Traceback" not in r.stderr
    # schema 2, and an index.json that took in the damaged bytes' checksums (as a resumed render did before)
    shutil.copy(small_dataset / "test-00000.h5", dataset_copy)
    downgrade_to_schema_2(dataset_copy)
    for name in ("train-00000.h5", "valid-00000.h5"):
        flip_block_header(dataset_copy / name)
    index = json.loads((dataset_copy / "index.json").read_text())
    for entry in index["shards"]:
        entry["sha256"] = shard_index.file_sha256(dataset_copy / entry["file"])
    (dataset_copy / "index.json").write_text(json.dumps(index))
    r = command("spatialdc.pipeline.cli", "verify", dataset_copy)
    assert r.returncode == 1, f"rc {r.returncode} (-11: segfault)\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr and r.stderr.count("PROBLEM") == 2, r.stderr  # checked on after a crash
    for name in ("train-00000.h5", "valid-00000.h5"):
        assert f"{name}: the HDF5 reader crashed on it" in r.stderr


def test_a_resumed_render_rerenders_a_damaged_shard_with_the_right_bytes(small_corpus, manifest, tmp_path):
    args = render_args(small_corpus, manifest, tmp_path / "data")
    assert CliRunner().invoke(dcgen, args).exit_code == 0
    ddir = tmp_path / "data" / "fm2"
    good = snapshot(ddir)
    flip_block_header(ddir / "test-00000.h5")
    r = CliRunner().invoke(dcgen, args)
    assert r.exit_code == 0, r.output
    assert "(1 already complete; 1 re-rendered: checksum mismatch)" in r.output
    assert snapshot(ddir)["test-00000.h5"] == good["test-00000.h5"]
    assert {e.file: e.sha256 for e in shard_index.read_index(ddir).shards} == {
        k: v for k, v in good.items() if k.endswith(".h5")}
    # a run stopped before it wrote index.json: the shards prove themselves chunk by chunk
    (ddir / "index.json").unlink()
    flip_block_header(ddir / "test-00001.h5", "ds", 0)
    r = CliRunner().invoke(dcgen, args)
    assert "(1 already complete; 1 re-rendered: checksum mismatch)" in r.output
    now = snapshot(ddir)  # label_quality.json: of the mixtures rendered now, by design
    assert all(now[name] == sha for name, sha in good.items() if name != "label_quality.json")


def test_dceval_and_dctrain_name_a_damaged_shard_and_dcgen_verify(dataset_copy, tmp_path):
    flip_block_header(dataset_copy / "test-00000.h5")
    flip_block_header(dataset_copy / "train-00001.h5")
    for workers in ("0", "2"):  # in this process, and in Dask worker processes
        r = command("spatialdc.eval.dceval", "--shards", dataset_copy / "test-*.h5", "--workers", workers,
                    "--report", tmp_path / f"r{workers}.csv", "--no-plots", "--examples", "0", "--quiet")
        assert r.returncode == 1, f"--workers {workers}: rc {r.returncode}\n{r.stderr[-3000:]}"
        assert "test-00000.h5" in r.stderr and "dcgen verify" in r.stderr and "Traceback" not in r.stderr
    r = command("spatialdc.trainer", "--shards", dataset_copy / "train-*.h5", "--valid", dataset_copy / "valid-*.h5",
                "--hidden", "8", "--layers", "1", "--epochs", "1", "--batch-size", "2", "--out", tmp_path / "run",
                "--quiet")
    assert r.returncode == 1, f"rc {r.returncode}\n{r.stderr[-3000:]}"
    assert "train-00001.h5" in r.stderr and "dcgen verify" in r.stderr and "Traceback" not in r.stderr


# 2. A dataset folder belongs to one config ------------------------------------------------------------------------

def test_render_into_a_folder_of_other_settings_refuses_and_keeps_it(small_corpus, manifest, tmp_path):
    out = tmp_path / "data"
    assert CliRunner().invoke(dcgen, render_args(small_corpus, manifest, out)).exit_code == 0
    before = snapshot(out / "fm2")
    r = CliRunner().invoke(dcgen, render_args(small_corpus, manifest, out, "--mic-spacing", "0.02", "--seed", "1"))
    assert r.exit_code == 1, r.output
    assert "--mic-spacing 0.01 -> 0.02" in r.output and "--seed 0 -> 1" in r.output and "--overwrite" in r.output
    assert str(out / "fm2") in r.output and snapshot(out / "fm2") == before
    r = CliRunner().invoke(dcgen, render_args(small_corpus, manifest, out, "--duration", "1.5"))
    assert r.exit_code == 1 and "--duration 2.0 -> 1.5" in r.output and snapshot(out / "fm2") == before
    r = CliRunner().invoke(dcgen, render_args(small_corpus, manifest, out, "--mic-spacing", "0.02", "--overwrite"))
    assert r.exit_code == 0, r.output
    after = snapshot(out / "fm2")
    assert after.keys() == before.keys() and after["test-00000.h5"] != before["test-00000.h5"]
    assert ShardSet([out / "fm2" / "test-00000.h5"]).read(0, ("spec",))["spec"].mic_spacing_m == 0.02


# 3. Inputs refused at the door ------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--mic-spacing", "0", "mic spacing (--mic-spacing) must be > 0 m, got 0.0"),
    ("--mic-spacing", "-0.01", "mic spacing (--mic-spacing) must be > 0 m, got -0.01"),
    ("--sample-rate", "0", "sample rate (--sample-rate) must be a whole number of Hz >= 1, got 0"),
    ("--duration", "0", "(--duration) must be > 0 s"),
])
def test_render_refuses_a_setup_without_cues_or_time(small_corpus, manifest, tmp_path, option, value, message):
    r = CliRunner().invoke(dcgen, render_args(small_corpus, manifest, tmp_path / "data", option, value))
    assert r.exit_code == 1 and message in r.output, r.output
    assert not (tmp_path / "data").exists()


def test_sample_rates_and_spacings_below_one_are_refused_in_the_api():
    with pytest.raises(ValueError, match="mic spacing .* must be > 0 m, got 0"):
        specs.RenderConfig(mic_spacing_m=0)
    with pytest.raises(ValueError, match="sample rate .* >= 1, got 0"):
        specs.RenderConfig(sample_rate=0)
    with pytest.raises(ValueError, match="input sample rate must be a whole number of Hz >= 1, got 0"):
        audio.resample(np.zeros(100), 0, 16000)
    with pytest.raises(ValueError, match="output sample rate .* got -8000"):
        audio.resample(np.zeros(100), 16000, -8000)


def stereo_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    x = np.random.default_rng(seed).standard_normal((int(16000 * seconds), 2)) * 0.05
    sf.write(path, x, 16000)
    return path


def test_ingest_refuses_a_spacing_of_zero_and_an_ingest_that_keeps_no_window(tmp_path):
    rec = stereo_wav(tmp_path / "short.wav", 1.0)
    r = CliRunner().invoke(dcgen, ["ingest", str(rec), "--mic-spacing", "0", "--out", str(tmp_path / "in")])
    assert r.exit_code == 1 and "mic spacing (--mic-spacing) must be > 0 m" in r.output, r.output
    r = CliRunner().invoke(dcgen, ["ingest", str(rec), "--mic-spacing", "0.01", "--out", str(tmp_path / "in")])
    assert r.exit_code == 1, r.output
    assert "no window of 1 recording(s) was kept" in r.output and "1 shorter than a window" in r.output
    assert "wrote" not in r.output and not list(tmp_path.glob("in/rec*"))


def test_out_paths_that_are_or_lie_under_a_file_are_refused(small_corpus, manifest, small_dataset, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    under = blocker / "out"
    rec = stereo_wav(tmp_path / "rec.wav", 3.0)
    for args in (render_args(small_corpus, manifest, under),
                 ["ingest", str(rec), "--mic-spacing", "0.01", "--out", str(under)],
                 ["export", "--from-specs", str(small_dataset), "--corpus", str(small_corpus), "--out", str(under)],
                 ["manifest", str(small_corpus), "--out", str(under / "m.csv")]):
        r = CliRunner().invoke(dcgen, args)
        assert r.exit_code == 1, (args[0], r.output)
        assert f"lies under {blocker}, which is a file" in r.output and r.exception.__class__ is SystemExit, args[0]
    r = CliRunner().invoke(dcgen, render_args(small_corpus, manifest, blocker))
    assert r.exit_code == 1 and f"--out {blocker} is a file, not a folder" in r.output, r.output
    assert blocker.read_text() == "not a folder"


def test_a_truncated_wav_is_read_with_a_warning_of_both_lengths(small_corpus, tmp_path, caplog):
    full = stereo_wav(tmp_path / "full.wav", 4.0)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:data.index(b"data") + 8 + int(1.2 * 16000) * 4])  # 16-bit stereo: 4 bytes a frame
    with caplog.at_level("WARNING"):
        x, sr = audio.read_audio_file(cut)
    assert x.shape == (int(1.2 * 16000), 2)
    assert "cut.wav is truncated: its header says 4.00 s (64000 samples) but it holds 1.20 s (19200" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        audio.read_audio_file(full)
    assert "truncated" not in caplog.text
    # and in manifest scanning: a corpus (CSV layout) with a truncated utterance
    corpus = tmp_path / "csvcorpus"
    corpus.mkdir()
    rows = ["path,speaker,gender"]
    for k, flac in enumerate(sorted(small_corpus.glob("*.flac"))):
        shutil.copy(flac, corpus / flac.name)
        rows.append(f"{flac.name},{flac.name.split('-')[0]},{'f' if k < 8 else 'm'}")
    mono, rate = sf.read(corpus / sorted(small_corpus.glob("*.flac"))[0].name)
    sf.write(corpus / "long.wav", mono, rate, subtype="PCM_16")
    data = (corpus / "long.wav").read_bytes()
    (corpus / "long.wav").write_bytes(data[:data.index(b"data") + 8 + 2 * rate])  # 1 s of 16-bit mono left
    rows.append("long.wav,x1,f")
    (corpus / "list.csv").write_text("\n".join(rows) + "\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        r = CliRunner().invoke(dcgen, ["manifest", str(corpus), "--out", str(tmp_path / "m.csv")])
    assert r.exit_code == 0, r.output
    assert f"long.wav is truncated: its header says {len(mono) / rate:.2f} s" in caplog.text and "1.00 s" in caplog.text


def test_dcgen_manifest_lists_corrupt_audio_and_skips_it_when_asked(small_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    flacs = sorted(corpus.glob("*.flac"))
    broken = bytearray(flacs[3].read_bytes())  # frames damaged in the middle: the header still reads
    broken[len(broken) // 2: len(broken) // 2 + 8] = bytes(8)
    flacs[3].write_bytes(bytes(broken))
    flacs[5].write_bytes(b"\0" * 200 + flacs[5].read_bytes()[200:])  # a header libsndfile cannot open
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(dcgen, ["manifest", str(corpus), "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert "2 audio file(s)" in r.output and flacs[3].name in r.output and flacs[5].name in r.output
    assert "--skip-unreadable" in r.output and not out.exists()
    r = CliRunner().invoke(dcgen, ["manifest", str(corpus), "--out", str(out), "--skip-unreadable"])
    assert r.exit_code == 0, r.output
    assert "left out 2 unreadable audio file(s)" in r.output
    listed = out.read_text()
    assert flacs[3].name not in listed and flacs[5].name not in listed and flacs[4].name in listed


# 4. An evaluation-only corpus -------------------------------------------------------------------------------------

def test_an_evaluation_only_corpus_renders_its_test_split_and_is_scored(small_corpus, tmp_path):
    r = CliRunner().invoke(dcgen, ["manifest", "--help"])
    assert "every speaker is a test speaker" in " ".join(r.output.split())  # however --help wraps it
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(dcgen, ["manifest", str(small_corpus), "--split", "test", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "train     0 female     0 male" in r.output and "test      8 female     8 male" in r.output
    r = CliRunner().invoke(dcgen, render_args(small_corpus, out, tmp_path / "data"))
    assert r.exit_code == 0, r.output
    r = command("spatialdc.eval.dceval", "--shards", tmp_path / "data" / "fm2" / "test-*.h5", "--workers", "0",
                "--report", tmp_path / "sdr.csv", "--no-plots", "--examples", "0", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "sdr.csv").is_file()
