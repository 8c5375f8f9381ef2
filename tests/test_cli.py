import csv

from click.testing import CliRunner

from spatialdc.eval.dceval import main as dceval
from spatialdc.pipeline.cli import main as dcgen
from spatialdc.trainer.cli import main as dctrain


def test_the_chain_through_the_three_clis(small_corpus, tmp_path):
    runner = CliRunner()
    manifest = tmp_path / "m.csv"
    r = runner.invoke(dcgen, ["manifest", str(small_corpus), "--out", str(manifest)])
    assert r.exit_code == 0, r.output
    assert "test      1 female     1 male" in r.output
    r = runner.invoke(dcgen, ["render", "--corpus", str(small_corpus), "--manifest", str(manifest), "--speakers", "2",
                              "--gender", "fm", "--num-mixtures", "6,3,3", "--out", str(tmp_path / "data"),
                              "--shard-size", "3", "--workers", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "12 mixtures in 4 shards" in r.output and "BPD vs DS labels" in r.output
    data = tmp_path / "data" / "fm2"
    r = runner.invoke(dctrain, ["--shards", str(data / "train-*.h5"), "--valid", str(data / "valid-*.h5"),
                                "--out", str(tmp_path / "run"), "--layers", "1", "--hidden", "8", "--embedding-dim",
                                "4", "--epochs", "1", "--batch-size", "3", "--num-workers", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    report = tmp_path / "sdr.csv"
    r = runner.invoke(dceval, ["--checkpoint", str(tmp_path / "run" / "best.pt"), "--shards", str(data / "test-*.h5"),
                               "--report", str(report), "--workers", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(report.open()))
    assert {r["method"] for r in rows} == {"dc_bpd", "oracle_ds", "oracle_bpd"}
    assert len(rows) == 3 * 3 * 2  # mixtures x methods x sources
    assert {"sdr", "sir", "sar", "si_sdr", "sdri", "angles_deg", "gains", "genders"} <= set(rows[0])
    assert "| fm2 | oracle_ds |" in r.output and (tmp_path / "sdr.md").is_file()
    assert "| 2 | oracle_ds |" in (tmp_path / "sdr.md").read_text()  # the paper's layout, its numbers beside
    assert "(13.19)" in (tmp_path / "sdr.md").read_text()
    for fig in ("sdr.box.png", "sdr.spatial.png", "sdr.npd.png"):
        assert (tmp_path / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig


def test_bad_input_gives_clear_errors(small_corpus, tmp_path):
    runner = CliRunner()
    r = runner.invoke(dcgen, ["render", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert r.exit_code != 0 and "does not exist" in r.output
    r = runner.invoke(dcgen, ["render", "--gender", "x"])
    assert r.exit_code != 0 and "'x' is not one of 'f', 'm', 'fm'" in r.output
    r = runner.invoke(dcgen, ["render", "--split", "dev"])
    assert r.exit_code != 0 and "'dev' is not one of" in r.output
    r = runner.invoke(dcgen, ["render", "--corpus", str(small_corpus), "--manifest", str(tmp_path / "m.csv"),
                              "--gender", "f", "--speakers", "3", "--split", "test", "--num-mixtures", "2",
                              "--out", str(tmp_path), "--workers", "0"])
    assert r.exit_code != 0 and "has 1 usable speakers of gender 'f'" in r.output
    assert not list(tmp_path.glob("**/*.h5"))  # nothing half-written
    r = runner.invoke(dctrain, ["--shards", str(tmp_path / "none-*.h5"), "--valid", "x", "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and "no shard matches" in r.output


def test_dry_run_prints_sizes_renders_nothing_and_refuses_impossible_requests(small_corpus, tmp_path):
    runner = CliRunner()
    base = ["render", "--corpus", str(small_corpus), "--manifest", str(tmp_path / "m.csv"), "--out",
            str(tmp_path / "data"), "--dry-run"]
    r = runner.invoke(dcgen, base + ["--gender", "fm", "--num-mixtures", "60,10,20"])
    assert r.exit_code == 0, r.output
    lines = {ln.split()[1]: ln.split() for ln in r.output.splitlines() if ln.startswith("fm2")}
    assert [lines[s][2] for s in ("train", "valid", "test")] == ["60", "10", "20"]
    assert "total" in r.output and "GB" in r.output and "min" in r.output
    assert not (tmp_path / "data").exists()
    r = runner.invoke(dcgen, base + ["--speakers", "3", "--min-angle", "100"])  # 3 sources 100 degrees apart in 180
    assert r.exit_code != 0 and "3 sources cannot be pairwise 100.0 degrees apart" in r.output
    r = runner.invoke(dcgen, base + ["--mic-spacing", "1.0"])  # 1 m at 16 kHz: phases wrap almost everywhere
    assert r.exit_code != 0 and "wraps at all but 4 of 257 frequencies" in r.output and "spacing under 0.6" in r.output
    r = runner.invoke(dcgen, base + ["--mic-spacing", "0.05"])  # 5 cm wraps above 3.1 kHz: wrapped-phase labels
    assert r.exit_code == 0, r.output
    r = runner.invoke(dcgen, base + ["--all-datasets", "--num-mixtures", "6,2,2"])
    assert r.exit_code != 0 and "usable speakers" in r.output  # 3-speaker f needs 3 test speakers; the slice has 1


def test_render_from_committed_style_specs(small_corpus, small_specs, tmp_path):
    from spatialdc.pipeline import specs as specs_mod

    spec_dir = tmp_path / "specs" / "fm2"
    for split, ss in small_specs.items():
        specs_mod.write_specs(spec_dir / f"{split}.jsonl", ss[:2])
    runner = CliRunner()
    r = runner.invoke(dcgen, ["render", "--corpus", str(small_corpus), "--from-specs", str(spec_dir), "--out",
                              str(tmp_path / "data"), "--workers", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "6 mixtures" in r.output
    assert sorted(p.name for p in (tmp_path / "data" / "fm2").glob("*.h5")) == [
        "test-00000.h5", "train-00000.h5", "valid-00000.h5"]
