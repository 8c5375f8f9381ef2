"""``dcgen``: scan a corpus, plan mixture specs, render HDF5 shards."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import click

from . import build, corpus, dryrun, planner, shard_index, shards, specs
from .ingest import export_mixtures, ingest
from .layouts import LAYOUTS
from .manifest import DEFAULT_MANIFEST_DIR, GENDERS, SPLITS, write_manifest
from .parallel import dask_client
from .paths import check_out_dir, check_out_file
from .provenance import config_provenance
from .verify import verify_dataset

DEFAULT_CORPUS = "corpora/librispeech-clips"


def _manifest_path(corpus_dir: Path, manifest: str | None) -> Path:
    return Path(manifest) if manifest else DEFAULT_MANIFEST_DIR / f"{corpus_dir.name}.csv"


def _corpus_arg(dirs: list[Path]) -> Path | dict:
    """What rendering from specs reads from: the folder of one corpus, or name -> folder for several."""
    return dirs[0] if len(dirs) == 1 else {d.name: d for d in dirs}


def _config(sample_rate, duration, mic_spacing, min_angle, room="anechoic", speed_perturb=0.0, rt60=None,
            source_distance=None) -> specs.RenderConfig:
    extra = {k: v for k, v in (("rt60_range_s", rt60), ("source_distance_range_m", source_distance)) if v}
    return specs.RenderConfig(sample_rate=sample_rate, duration_s=duration, mic_spacing_m=mic_spacing,
                              min_angle_deg=min_angle, room=room, speed_perturb=speed_perturb, **extra)


def _range(ctx, param, value: str | None) -> tuple[float, float] | None:
    """'LO,HI' -> (LO, HI) floats."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give LOW,HIGH such as 0.2,0.3") from None
    if not 0 < lo <= hi:
        raise click.BadParameter(f"{value!r}: need 0 < LOW <= HIGH")
    return lo, hi


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Render two-microphone speech mixtures for spatial deep clustering (Tzinis et al. 2019)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("distributed", "dask"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


@main.command("manifest")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Manifest CSV to write [default: data_manifests/corpora/<corpus folder name>.csv].")
@click.option("--seed", type=int, default=0, help="Seed of the speaker split.")
@click.option("--layout", type=click.Choice(("auto",) + LAYOUTS), default="auto",
              help="Corpus layout: LibriSpeech (SPEAKERS.TXT), TIMIT (TRAIN/, TEST/), or a CSV of path,speaker,gender.")
@click.option("--split", "split", type=click.Choice(corpus.CORPUS_SPLITS), default="auto",
              help="auto: split speakers 75/10/15 % into train/valid/test (or keep the corpus's own split); test: "
                   "every speaker is a test speaker, for a corpus to evaluate on only (then `dcgen render --split "
                   "test` and `dceval`).")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave out audio files that cannot be decoded (listed and counted) instead of stopping.")
def manifest_cmd(corpus_dir: Path, out: Path | None, seed: int, layout: str, split: str,
                 skip_unreadable: bool) -> None:
    """Scan CORPUS_DIR into an utterance manifest, split by speaker (75/10/15 %; TIMIT keeps its own test
    speakers and takes valid speakers from its training speakers; --split test: all test). Every audio file is
    decoded once, so that a corrupt one is found now and not at render time."""
    try:
        out = check_out_file(out or _manifest_path(corpus_dir, None))
        utts, skipped = corpus.scan_corpus_checked(corpus_dir, seed, layout, split, skip_unreadable)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    write_manifest(out, utts)
    for name in SPLITS:
        n = {g: len({u.speaker for u in utts if u.split == name and u.gender == g}) for g in GENDERS}
        click.echo(f"{name:<5}  {n['f']:>4} female  {n['m']:>4} male speakers")
    if skipped:
        click.echo(f"left out {len(skipped)} unreadable audio file(s):\n  " + "\n  ".join(skipped))
    click.echo(f"wrote {out} ({len(utts)} utterances, {utts[0].layout} layout)")


def render_options(fn):
    opts = [
        click.option("--corpus", "corpus_dirs", type=click.Path(path_type=Path), multiple=True,
                     default=(DEFAULT_CORPUS,),
                     help="Corpus folder: LibriSpeech layout (SPEAKERS.TXT), TIMIT (TRAIN/, TEST/), Kaldi data "
                          "directories (wav.scp...), lhotse manifests, or a CSV of path,speaker,gender; see `dcgen "
                          "manifest`. Repeat it to draw speakers from several corpora (each split by speaker on its "
                          "own; speaker ids namespaced <corpus>/<speaker>)."),
        click.option("--manifest", default=None,
                     help="Utterance manifest of a single --corpus; made from it if missing "
                          "[default: data_manifests/corpora/<corpus>.csv]."),
        click.option("--min-age", type=int, default=0,
                     help="Keep only speakers of known age >= this (a Kaldi spk2age gives ages; speakers of unknown "
                          "age are kept). 0: everyone."),
        click.option("--speed-perturb", type=float, default=0.0,
                     help="Speed perturbation: each source resampled by a factor from U(1 - x, 1 + x) (Ko et al. "
                          "2015), e.g. 0.1. 0: none."),
        click.option("--speakers", type=click.IntRange(2, 19), default=2, help="Speakers per mixture (N)."),
        click.option("--gender", type=click.Choice(specs.DATASET_GENDERS), default="fm",
                     help="f, m, or fm (at least one of each)."),
        click.option("--split", type=click.Choice(SPLITS + ("all",)), default="all", help="Split(s)."),
        click.option("--num-mixtures", default=None,
                     help="N for one split; with --split all, N train and N/6, N/3 valid, test; or TRAIN,VALID,TEST. "
                          "[default: the paper's 5400,900,1800]"),
        click.option("--seed", type=int, default=0, help="Seed of every random draw."),
        click.option("--sample-rate", type=int, default=16000, help="Sample rate (Hz); the corpus must match."),
        click.option("--duration", type=float, default=2.0, help="Mixture length (s)."),
        click.option("--mic-spacing", type=float, default=0.01, help="Distance between the two mics (m)."),
        click.option("--min-angle", type=float, default=10.0, help="Smallest angle between two sources (degrees)."),
        click.option("--room", type=click.Choice(specs.ROOMS), default="anechoic",
                     help="anechoic (the paper) or reverberant: seeded shoebox rooms, RT60 0.2-0.6 s "
                          "(pyroomacoustics)."),
        click.option("--rt60", callback=_range, default=None,
                     help="Reverberant rooms: RT60 range LOW,HIGH in s [default: 0.2,0.6]; e.g. 0.2,0.3 for mild "
                          "rooms."),
        click.option("--source-distance", callback=_range, default=None,
                     help="Reverberant rooms: source distance range LOW,HIGH in m from the array [default: 1,2]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@main.command("render")
@render_options
@click.option("--all-datasets", is_flag=True,
              help="Render the paper's six datasets (f, m, fm x 2, 3 speakers); ignores --speakers and --gender.")
@click.option("--from-specs", "from_specs", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Render the specs in this folder (<split>.jsonl[.gz], as `dcgen plan` writes them) instead of "
                   "planning.")
@click.option("--out", type=click.Path(path_type=Path), default="data", help="Output root; shards go to OUT/<dataset>/.")
@click.option("--shard-size", type=int, default=100, help="Mixtures per HDF5 shard (one Dask task each).")
@click.option("--workers", type=int, default=2, help="Local Dask worker processes (0: no Dask, in this process).")
@click.option("--threads-per-worker", type=int, default=1, help="Threads per Dask worker.")
@click.option("--scheduler", default=None, help="Address tcp://HOST:PORT of an existing Dask scheduler to use instead.")
@click.option("--overwrite", is_flag=True, help="Replace a dataset of other settings in OUT/<dataset>/ (without it, "
                                                "render refuses and lists the settings that differ).")
@click.option("--dry-run", is_flag=True, help="Check the request and print mixtures, disk and time per split; "
                                              "render nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def render_cmd(corpus_dirs, manifest, min_age, speed_perturb, speakers, gender, split, num_mixtures, seed,
               sample_rate, duration, mic_spacing, min_angle, room, rt60, source_distance, all_datasets, from_specs, out, shard_size, workers,
               threads_per_worker, scheduler, overwrite, dry_run, quiet) -> None:
    """Plan and render datasets (e.g. --speakers 2 --gender fm) into sharded HDF5; re-running resumes (shards
    whose bytes no longer match their checksum are rendered again)."""
    splits = SPLITS if split == "all" else (split,)
    corpus_dir = _corpus_arg([Path(d) for d in corpus_dirs])
    datasets = specs.ALL_DATASETS if all_datasets else ((gender, speakers),)
    try:
        config = _config(sample_rate, duration, mic_spacing, min_angle, room, speed_perturb, rt60, source_distance)
        out = check_out_dir(out)
        if from_specs is not None:
            by_split = specs.read_spec_dir(from_specs, splits)
            if dry_run:
                click.echo(dryrun.format_dry_run(dryrun.dry_run_specs(by_split, workers)))
                return
            summary = build.render_dataset(by_split, corpus_dir, out, shard_size, workers, threads_per_worker,
                                           scheduler, config_provenance(config, seed, corpus_dir),
                                           progress=not quiet, overwrite=overwrite)
            click.echo(build.format_summary(summary))
            return
        source = corpus.open_corpora(corpus_dirs, Path(manifest) if manifest else None, seed, min_age)
        if dry_run:
            rows = dryrun.dry_run(source, datasets, splits, num_mixtures, config, seed, workers)
            click.echo(dryrun.format_dry_run(rows))
            return
        with contextlib.ExitStack() as stack:
            if len(datasets) > 1 and not scheduler and workers >= 1:  # one local cluster for all the datasets
                scheduler = stack.enter_context(dask_client(workers, threads_per_worker)).scheduler.address
            for g, n in datasets:
                summary = build.render(source, out, g, n, splits, num_mixtures, config, seed, shard_size,
                                       workers, threads_per_worker, scheduler, progress=not quiet,
                                       overwrite=overwrite)
                click.echo(build.format_summary(summary))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("plan")
@render_options
@click.option("--all-datasets", is_flag=True, help="Plan the paper's six datasets; ignores --speakers and --gender.")
@click.option("--specs-dir", type=click.Path(path_type=Path), default="data_manifests/datasets",
              help="Specs go to SPECS_DIR/<corpus>/<dataset>/<split>.jsonl.gz.")
def plan_cmd(corpus_dirs, manifest, min_age, speed_perturb, speakers, gender, split, num_mixtures, seed, sample_rate,
             duration, mic_spacing, min_angle, room, rt60, source_distance, all_datasets, specs_dir) -> None:
    """Write the mixture specs of datasets as gzipped JSONL without rendering (commit them to share a dataset;
    render them with `dcgen render --from-specs DIR`)."""
    splits = SPLITS if split == "all" else (split,)
    datasets = specs.ALL_DATASETS if all_datasets else ((gender, speakers),)
    try:
        config = _config(sample_rate, duration, mic_spacing, min_angle, room, speed_perturb, rt60, source_distance)
        check_out_dir(specs_dir, "--specs-dir")
        source = corpus.open_corpora([Path(d) for d in corpus_dirs], Path(manifest) if manifest else None, seed,
                                    min_age)
        planned = {(g, n): planner.plan_dataset(source.utterances, source.corpus, config, seed, g, n,
                                                planner.parse_sizes(num_mixtures, splits)) for g, n in datasets}
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    for (g, n), by_split in planned.items():
        for name, ss in by_split.items():
            path = Path(specs_dir) / source.name / specs.dataset_name(g, n) / f"{name}.jsonl.gz"
            specs.write_specs(path, ss)
            click.echo(f"wrote {path} ({len(ss)} mixtures, sha256 {specs.specs_hash(ss)[:12]})")


@main.command("ingest")
@click.argument("recordings", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mic-spacing", type=float, required=True, help="Distance between the two microphones (m).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: OUT/rec<K>/train-*.h5 (K speakers per window), ingest_report.json.")
@click.option("--speakers", default="2", help="Speakers per window (K of the spatial labels), or 'auto' to estimate "
                                              "it per window from the spatial cues.")
@click.option("--max-speakers", type=int, default=3, help="Largest K 'auto' may give.")
@click.option("--channels", default="1,2", help="The two channels (1-based) of the microphones, e.g. 1,2.")
@click.option("--window", "window_s", type=float, default=2.0, help="Window length (s).")
@click.option("--hop", "hop_s", type=float, default=2.0, help="Window hop (s).")
@click.option("--shard-size", type=int, default=100, help="Windows per shard.")
def ingest_cmd(recordings, mic_spacing, out, speakers, max_speakers, channels, window_s, hop_s, shard_size) -> None:
    """Cut two-channel RECORDINGS (WAV/FLAC, any rate, any length) into windows with spatial labels and no
    references: training shards for `dctrain --target bpd`. Windows that are silent or hold one talker are dropped
    and counted."""
    try:
        pair = tuple(int(c) for c in channels.split(","))
        if len(pair) != 2:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{channels!r}: give two channel numbers such as 1,2", param_hint="--channels")
    if speakers != "auto" and not (speakers.isdigit() and int(speakers) >= 2):
        raise click.BadParameter(f"{speakers!r}: give a count >= 2 or 'auto'", param_hint="--speakers")
    try:
        report = ingest(recordings, out, mic_spacing, None if speakers == "auto" else int(speakers), max_speakers,
                        pair, window_s, hop_s, shard_size)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report.summary())
    click.echo(f"wrote {out}/rec*/ and {out}/ingest_report.json")


@main.command("export")
@click.option("--from-specs", "from_specs", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="A dataset folder with <split>.jsonl specs (as `dcgen render` leaves them).")
@click.option("--corpus", "corpus_dirs", type=click.Path(path_type=Path), multiple=True, default=(DEFAULT_CORPUS,),
              help="The corpus folder(s) the specs were planned from.")
@click.option("--split", type=click.Choice(SPLITS), default="test", help="Split to export.")
@click.option("--max-mixtures", type=int, default=None, help="Export only the first N mixtures.")
@click.option("--subtype", type=click.Choice(["FLOAT", "PCM_16"]), default="FLOAT",
              help="FLOAT: exact float32 (ingest reproduces the render's features); PCM_16: as a recorder writes.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
def export_cmd(from_specs, corpus_dirs, split, max_mixtures, subtype, out) -> None:
    """Write rendered mixtures as stereo WAVs (mic 1, mic 2) with their references beside them
    (<mixture_id>.ref<k>.wav) and specs.jsonl, to test `dcgen ingest` on recordings with known answers."""
    try:
        ss = specs.read_spec_dir(from_specs, (split,))[split][:max_mixtures]
        paths = export_mixtures(ss, _corpus_arg([Path(d) for d in corpus_dirs]), out, subtype)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(paths)} stereo recordings with their references to {out}")


@main.command("verify")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify_cmd(dataset_dir: Path) -> None:
    """Re-read every shard of DATASET_DIR (e.g. data/fm2) against its index.json: counts, checksums, schema, NaNs."""
    try:
        problems = verify_dataset(dataset_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if problems:
        for p in problems:
            click.echo(f"PROBLEM {p}", err=True)
        raise click.ClickException(f"{len(problems)} problem(s) in {dataset_dir}; delete the named shards and re-run "
                                   "the `dcgen render` command that made them (it renders only what is missing)")
    version = shard_index.read_index(dataset_dir).schema_version
    old = (f" (schema version {version}: no per-chunk checksums, so readers check each file's SHA-256 first; the "
           f"same `dcgen render` rewrites them as version {shards.SCHEMA_VERSION})" if version < shards.SCHEMA_VERSION
           else "")
    click.echo(f"{dataset_dir}: every shard matches index.json{old}")


if __name__ == "__main__":
    main()
