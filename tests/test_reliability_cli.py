"""Nothing lost, nothing silently wrong (issue 25, the trainer and eval side): every probe of a hostile but fair user
as a test on tiny data. Each asserts the exit code, the message (it names the file or value and the fix) and that
nothing was lost or overwritten."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy.signal import resample_poly

from spatialdc.eval import evaluate as evaluate_module
from spatialdc.eval.dccount import main as dccount
from spatialdc.eval.dceval import main as dceval
from spatialdc.eval.dcsep import main as dcsep
from spatialdc.eval.separator import Separator
from spatialdc.trainer import loop
from spatialdc.trainer.cli import main as dctrain
from tests.test_trainer import tiny_config

LOCK = "dctrain.lock"
TINY = ["--hidden", "8", "--layers", "1", "--embedding-dim", "4", "--chunk-frames", "40", "--batch-size", "4",
        "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    loop.train(tiny_config(small_dataset, epochs=1), out, progress=False)
    return out / "best.pt"


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--shards", str(data / "train-*.h5"), "--valid", str(data / "valid-*.h5"), *TINY, "--out", str(out),
            *extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    """The run's files, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def write_lock(folder: Path, pid: int) -> None:
    """A lock file as a run of process ``pid`` on this host writes it."""
    (folder / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "2026-12-03T08:00:00",
                                           "command": "dctrain --out first-run", "proc_start": None}))


def damage_row(path: Path, row: int = 1) -> None:
    """Overwrite the stored magnitude of mixture ``row`` of a shard with junk bytes (the file still opens)."""
    with h5py.File(path, "r") as h5:
        info = h5["magnitude"].id.get_chunk_info(row)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(np.random.default_rng(0).integers(0, 256, info.size, dtype=np.uint8).tobytes())


# --- a run folder belongs to one run ------------------------------------------------------------------------------

def test_a_second_dctrain_into_a_folder_a_live_run_holds_is_refused_and_loses_nothing(small_dataset, tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(dctrain, run_args(small_dataset, out)).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # the first run, still going
    try:
        write_lock(out, holder.pid)
        before = snapshot(out)
        for extra in ([], ["--lr", "0.01"], ["--epochs", "3"]):  # same settings, other settings, a longer budget
            r = CliRunner().invoke(dctrain, run_args(small_dataset, out, *extra))
            assert r.exit_code == 1, r.output
            assert f"in use by another dctrain run (process {holder.pid}" in r.output
            assert "dctrain --out first-run" in r.output and str(out / LOCK) in r.output  # who holds it, the fix
            assert snapshot(out) == before  # checkpoints, config, log and the holder's lock untouched
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_reported_and_replaced_and_the_lock_goes_with_the_run(small_dataset, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a run killed with -9 leaves its lock behind
    write_lock(out, gone.pid)
    with caplog.at_level(logging.WARNING):
        r = CliRunner().invoke(dctrain, run_args(small_dataset, out))
    assert r.exit_code == 0, r.output
    assert f"replaced the stale lock of a run that is gone (process {gone.pid}" in caplog.text
    assert (out / "best.pt").is_file() and not (out / LOCK).exists()


def test_the_lock_is_held_while_training_and_released_on_errors_and_ctrl_c(small_dataset, tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(json.loads((out / LOCK).read_text()))
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    r = CliRunner().invoke(dctrain, run_args(small_dataset, out))
    assert r.exit_code == 1 and "Aborted" in r.output  # click's Ctrl-C
    assert seen and seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname()
    assert not (out / LOCK).exists() and not (out / "last.pt").exists()
    monkeypatch.undo()
    r = CliRunner().invoke(dctrain, run_args(small_dataset, out, "--valid", str(tmp_path / "nothing-*.h5")))
    assert r.exit_code == 1 and "no shard matches" in r.output and not (out / LOCK).exists()


def test_a_resumed_run_of_another_config_lists_every_key_that_differs_as_old_to_new(small_dataset, tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(dctrain, run_args(small_dataset, out)).exit_code == 0
    before = snapshot(out)
    r = CliRunner().invoke(dctrain, run_args(small_dataset, out, "--lr", "0.01", "--dropout", "0.1", "--epochs", "2"))
    assert r.exit_code == 1, r.output
    for change in ("--lr 0.001 -> 0.01", "--dropout 0.3 -> 0.1", "--epochs 1 -> 2"):
        assert change in r.output
    assert "Give a new --out" in r.output and snapshot(out) == before


# --- inputs refused at the door -----------------------------------------------------------------------------------

def test_an_out_that_is_a_file_or_lies_under_one_is_named_not_a_traceback(small_dataset, checkpoint, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    for out, says in ((afile, f"--out {afile} is a file"),
                      (afile / "run", f"--out {afile / 'run'} lies under {afile}")):
        r = CliRunner().invoke(dctrain, run_args(small_dataset, out))
        assert r.exit_code == 1 and says in r.output, r.output
        assert isinstance(r.exception, SystemExit)  # a clean error, no traceback
    wav = tmp_path / "talk.wav"
    sf.write(wav, np.random.default_rng(0).normal(size=16000) * 0.1, 16000)
    r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(afile / "stems")])
    assert r.exit_code == 1 and f"lies under {afile}, which is a file" in r.output, r.output
    assert isinstance(r.exception, SystemExit) and afile.read_text() == "keep me"


def test_an_unquoted_shard_glob_gets_a_hint_to_quote_it(small_dataset, checkpoint, tmp_path):
    train = [str(p) for p in sorted(small_dataset.glob("train-*.h5"))]  # what the shell makes of train-*.h5
    valid = str(small_dataset / "valid-*.h5")
    assert len(train) == 2
    quoted = f"'{small_dataset}/train-*.h5'"
    for command, args, option in (
            (dceval, ["--shards", *train, "--workers", "0"], "--shards"),
            (dctrain, ["--shards", *train, "--valid", valid, "--out", str(tmp_path / "run")], "--shards"),
            (dccount, ["--checkpoint", str(checkpoint), "--train", *train, "--valid", valid], "--train")):
        r = CliRunner().invoke(command, args)
        assert r.exit_code == 2 and "unexpected extra argument" in r.output, r.output
        assert f"{option} got 2 paths" in r.output and "Quote the glob" in r.output
        assert f"{option} {quoted}" in r.output  # the glob to give, quoted
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, "16000"])
def test_the_api_refuses_a_sample_rate_that_is_not_a_whole_number_of_hz(checkpoint, rate):
    x = np.random.default_rng(0).normal(size=16000) * 0.1
    with pytest.raises(ValueError, match=f"sample_rate must be a whole number of Hz >= 1.*got {rate!r}"):
        Separator(checkpoint).separate(x, rate)


def test_dceval_refuses_two_datasets_of_one_name_and_scores_overlapping_globs_once(small_dataset, checkpoint,
                                                                                    tmp_path):
    for name in ("a", "b"):
        shutil.copytree(small_dataset, tmp_path / name / "fm2")
    report = tmp_path / "both.csv"
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(tmp_path / "a/fm2/test-*.h5"),
                                    "--shards", str(tmp_path / "b/fm2/test-*.h5"), "--workers", "0", "--report",
                                    str(report), "--quiet"])
    assert r.exit_code == 1, r.output
    assert f"{tmp_path / 'a/fm2'} and {tmp_path / 'b/fm2'} hold mixtures of the same ids" in r.output
    assert "in a dceval run of its own" in r.output and not report.exists()
    report = tmp_path / "once.csv"
    r = CliRunner().invoke(dceval, ["--checkpoint", str(checkpoint), "--shards", str(tmp_path / "a/fm2/test-*.h5"),
                                    "--shards", str(tmp_path / "a/fm2/test-00000.h5"), "--workers", "0",
                                    "--report", str(report), "--quiet", "--no-plots", "--examples", "0"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(report.open()))
    keys = [(x["mixture_id"], x["method"], x["source"]) for x in rows]
    assert len(keys) == len(set(keys)) == 4 * 3 * 2  # 4 mixtures, 3 methods, 2 sources: each once
    assert "| fm2 | dc_bpd | 4 |" in r.output


def test_dcsep_warns_of_a_truncated_wav_with_both_lengths(checkpoint, small_corpus, tmp_path, caplog):
    a, _ = sf.read(sorted(small_corpus.glob("*.flac"))[0])
    wav = tmp_path / "cut.wav"
    sf.write(wav, np.resize(a, 4 * 16000) * 0.5, 16000, subtype="PCM_16")  # header: 4.0 s
    with open(wav, "r+b") as fh:
        fh.truncate(44 + int(1.2 * 16000) * 2)  # 1.2 s of data left
    with caplog.at_level(logging.WARNING):
        r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "stems")])
    assert r.exit_code == 0, r.output
    assert f"{wav} is truncated: its header says 4.00 s (64000 samples) but it holds 1.20 s (19200" in caplog.text
    assert sf.info(str(tmp_path / "stems" / "cut_speaker1.wav")).frames == 19200


# --- shard faults surface cleanly ---------------------------------------------------------------------------------

def test_dctrain_stops_at_a_damaged_shard_in_a_loader_worker_and_keeps_the_last_epoch(small_dataset, tmp_path):
    data, out = tmp_path / "fm2", tmp_path / "run"
    shutil.copytree(small_dataset, data)
    args = run_args(data, out, "--num-workers", "1", "--cache-gb", "0")
    assert CliRunner().invoke(dctrain, args).exit_code == 0
    damage_row(data / "train-00000.h5")  # after the input statistics were taken: the resumed run reads it in a worker
    before = {k: v for k, v in snapshot(out).items() if k != "config.json"}  # config.json: this session's settings
    r = CliRunner().invoke(dctrain, args + ["--epochs", "2"])
    assert r.exit_code == 1, r.output
    assert f"shard {data / 'train-00000.h5'}" in r.output and f"dcgen verify {data}" in r.output
    assert "Traceback" not in r.output and "DataLoader worker" not in r.output  # the reader's message alone
    assert {k: v for k, v in snapshot(out).items() if k != "config.json"} == before  # the first epoch's checkpoints
    assert not (out / LOCK).exists()


def _worker_crash(task):
    """A Dask task that dies as a worker does when decompressing a damaged shard crashes it."""
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_dask_worker_that_dies_is_reported_with_the_shards_and_dcgen_verify(small_dataset, tmp_path, monkeypatch):
    import dask

    monkeypatch.setattr(evaluate_module, "evaluate_task", _worker_crash)
    report = tmp_path / "r.csv"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        r = CliRunner().invoke(dceval, ["--shards", str(small_dataset / "test-*.h5"), "--workers", "2",
                                        "--report", str(report), "--quiet"])
    assert r.exit_code == 1, r.output
    assert "a Dask worker process died while scoring the mixtures of" in r.output
    assert f"`dcgen verify {small_dataset}`" in r.output and isinstance(r.exception, SystemExit)
    assert not report.exists()


# --- dcsep in constant memory -------------------------------------------------------------------------------------

def test_dcsep_streams_a_long_recording_in_bounded_blocks_with_the_in_memory_stems(checkpoint, small_corpus, tmp_path,
                                                                                   monkeypatch):
    files = sorted(small_corpus.glob("*.flac"))
    mix = 0.5 * np.resize(sf.read(files[0])[0], 30 * 16000) + 0.5 * np.resize(sf.read(files[-1])[0], 30 * 16000)
    wav = tmp_path / "talk.wav"  # 30 s at 44.1 kHz, stereo: resampled in blocks
    x44 = resample_poly(mix, 441, 160)
    sf.write(wav, np.stack([x44, 0.1 * x44[::-1]], axis=1), 44100, subtype="FLOAT")
    reads = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames if frames >= 0 else self.frames - self.tell())
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    r = CliRunner().invoke(dcsep, [str(wav), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "stream")])
    assert r.exit_code == 0, r.output
    monkeypatch.undo()
    chunk = 8 * 44100  # dcsep's 8 s chunks, in the file's samples
    assert reads and max(reads) <= chunk + 1000 and sum(r >= chunk for r in reads) < 10  # never the whole 30 s
    streamed = [sf.read(tmp_path / "stream" / f"talk_speaker{k}.wav")[0] for k in (1, 2)]
    sep = Separator(checkpoint)  # the same separation of the whole recording in memory
    from spatialdc.eval.recording import read_recording, write_stems

    x, _ = read_recording(wav)
    written = write_stems(sep.separate(x, 16000), tmp_path / "memory", "talk")
    for k, path in enumerate(written):
        assert np.array_equal(sf.read(path)[0], streamed[k])
    assert not list((tmp_path / "stream").glob(".*.tmp"))  # no temporary part left behind
