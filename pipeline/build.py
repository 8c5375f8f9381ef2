"""Render a dataset: plan specs, split them into shards, render shards in parallel, resume, index, report."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from . import corpus as corpus_mod
from . import features, labels, shards, specs as specs_mod
from .atomic import write_text_atomic
from .parallel import chunked, run_tasks
from .render import render_mixture

log = logging.getLogger(__name__)
VERSIONED_PACKAGES = ("numpy", "scipy", "h5py", "scikit-learn", "soundfile", "torch", "dask", "mir_eval")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape our outputs (missing ones are left out)."""
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES + ("spatial-deep-clustering",):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """A command (default: this process's ``sys.argv``) as a user would type it: the program's name without the
    folder it was installed in (``dceval ...``, not ``/home/me/.venv/bin/dceval ...``), so outputs that record it
    carry no machine's paths."""
    argv = sys.argv if argv is None else argv
    return [Path(argv[0]).name, *argv[1:]] if argv else []


@dataclass(frozen=True)
class ShardTask:
    """One Dask task: render these specs into ``path``."""

    path: str
    specs: tuple
    corpus_dir: str | dict  # the corpus folder, or corpus name -> folder for specs of several corpora
    provenance: dict


@dataclass
class ShardResult:
    path: str
    split: str
    num_mixtures: int
    first_index: int
    bytes: int
    sha256: str
    seconds: float
    skipped: bool
    bpd_accuracy: list = field(default_factory=list)  # per mixture, BPD vs DS on non-silent bins
    bpd_nmi: list = field(default_factory=list)
    genders: list = field(default_factory=list)
    oracle_sdri: list = field(default_factory=list)  # (gender mix, DS SDRi, BPD SDRi) of every ORACLE_EVERY-th mixture


def label_agreement(ex) -> tuple[float, float]:
    """(accuracy under the best permutation, NMI) of BPD against DS labels over the non-silent bins."""
    counts = labels.contingency(ex.bpd, ex.ds, ex.spec.num_speakers, features.active_bins(ex.magnitude))
    return labels.accuracy_from_contingency(counts), labels.nmi_from_contingency(counts)


ORACLE_EVERY = 50  # oracle-mask SDRi at render time on mixtures whose index is a multiple of this (3 BSS Evals, ~0.2 s)


def oracle_sdri(ex) -> tuple[float, float]:
    """Mean SDRi (dB) over the sources of the oracle DS and oracle BPD binary masks applied to mic 1 (BSS Eval v3,
    batched: the mixture and both masks scored against one factorization); NaN for a mixture with a silent reference."""
    from spatialdc.pipeline.metrics import bss_eval_sets

    n, mic1 = ex.spec.num_speakers, ex.mixture[0]
    masks = np.concatenate([features.binary_masks(lab, n) for lab in (ex.ds, ex.bpd)])  # (2 N, F, T)
    masked = np.split(features.apply_masks(mic1, masks), 2)  # one STFT of mic 1 for both oracles
    base, *oracles = bss_eval_sets(ex.sources, [np.tile(mic1, (n, 1))] + masked)
    return tuple(float(np.mean(s.sdr - base.sdr)) for s in oracles)


def render_shard(task: ShardTask) -> ShardResult:
    """Render and write one shard, unless a complete shard of the same specs is already there (resume)."""
    t0 = time.perf_counter()
    specs = list(task.specs)
    path = Path(task.path)
    skipped = path.is_file() and shards.shard_matches(path, specs)
    accs, nmis, oracles = [], [], []
    if not skipped:
        with features.single_threaded():  # one core per task, in a Dask worker or in a plain loop alike
            examples, accs, nmis, oracles = _render_examples(specs, task.corpus_dir)
            shards.write_shard(path, examples, task.provenance)
    return ShardResult(str(path), specs[0].split, len(specs), specs[0].index, path.stat().st_size,
                       shards.file_sha256(path), time.perf_counter() - t0, skipped, accs, nmis,
                       ["".join(sorted(set(s.genders))) for s in specs], oracles)


def _render_examples(specs, corpus_dir):
    """Render the mixtures of one shard and measure their label quality (BPD vs DS; oracle SDRi on a sample)."""
    accs, nmis, oracles = [], [], []
    examples = [render_mixture(s, corpus_dir) for s in specs]
    for ex in examples:
        acc, nmi = label_agreement(ex)
        accs.append(acc)
        nmis.append(nmi)
        if ex.spec.index % ORACLE_EVERY == 0:
            oracles.append(("".join(sorted(set(ex.spec.genders))),) + oracle_sdri(ex))
    return examples, accs, nmis, oracles


def parse_sizes(num_mixtures: str | None, splits: Sequence[str]) -> dict[str, int]:
    """Mixtures per split. ``None``: the paper's 5400 / 900 / 1800. One integer with one split: that many.
    One integer with all splits: train = n, valid = n / 6, test = n / 3 (the paper's ratios).
    ``"600,100,200"``: train, valid, test.

    Raises:
        ValueError: a malformed value, with what is accepted.
    """
    if num_mixtures is None:
        return {s: specs_mod.PAPER_SIZES[s] for s in splits}
    try:
        values = [int(v) for v in str(num_mixtures).split(",")]
    except ValueError:
        raise ValueError(f"--num-mixtures {num_mixtures!r}: give N or TRAIN,VALID,TEST such as 600,100,200") from None
    if any(v < 1 for v in values) or len(values) not in (1, 3):
        raise ValueError(f"--num-mixtures {num_mixtures!r}: give N or TRAIN,VALID,TEST, each >= 1")
    if len(values) == 3:
        return {s: values[corpus_mod.SPLITS.index(s)] for s in splits}
    if len(splits) == 1:
        return {splits[0]: values[0]}
    return {"train": values[0], "valid": max(1, round(values[0] / 6)), "test": max(1, round(values[0] / 3))}


def load_or_make_manifest(corpus_dir: Path, manifest: Path | None, seed: int,
                          layout: str = "auto") -> list[corpus_mod.Utterance]:
    """Read the manifest, or scan ``corpus_dir`` (any layout of :func:`pipeline.corpus.scan_corpus`) and write it."""
    if manifest is not None and manifest.is_file():
        return corpus_mod.read_manifest(manifest)
    utts = corpus_mod.scan_corpus(corpus_dir, seed, layout)
    if manifest is not None:
        corpus_mod.write_manifest(manifest, utts)
        log.info("wrote manifest %s (%d utterances)", manifest, len(utts))
    return utts


DEFAULT_MANIFEST_DIR = Path("data_manifests/corpora")


@dataclass
class CorpusSource:
    """The utterances to plan from and where their audio is.

    Attributes:
        utterances: the manifest (for several corpora, their union: :func:`spatialdc.pipeline.corpus.union_manifests`).
        corpus: the corpus folder, or for several corpora the mapping name -> folder (what rendering reads from).
        name: the corpus's name (its folder name), or the names joined by ``+``.
    """

    utterances: list
    corpus: Path | dict
    name: str
    min_age: int = 0


def open_corpora(corpus_dirs: Sequence[Path], manifest: Path | None, seed: int, min_age: int = 0) -> CorpusSource:
    """Read (or scan and write) the manifest of each corpus folder and, for several, their union; keep speakers of
    known age >= ``min_age`` (speakers of unknown age are kept: e.g. LibriSpeech's readers, all adults).

    Args:
        corpus_dirs: one or more corpus folders (their folder names name them).
        manifest: the manifest of a single corpus [default: data_manifests/corpora/<name>.csv]; with several
            corpora each has its default manifest.

    Raises:
        FileNotFoundError: a missing folder. ValueError: the same corpus given twice, --manifest with several
            corpora, or --min-age with no speaker of known age (no spk2age).
    """
    dirs = [Path(d) for d in corpus_dirs]
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"corpus folder {d} does not exist; pass --corpus DIR "
                                    "(the bundled one is corpora/librispeech-clips)")
    seen: dict = {}
    for d in dirs:
        for key in (d.resolve(), d.name):
            if key in seen:
                raise ValueError(f"the same corpus is given twice: {seen[key]} and {d} (corpora are named by their "
                                 f"folder); give each corpus once")
            seen[key] = d
    if len(dirs) > 1 and manifest is not None:
        raise ValueError("--manifest names one corpus's manifest; with several --corpus folders each uses "
                         f"{DEFAULT_MANIFEST_DIR}/<name>.csv")
    per_corpus = [(d.name, load_or_make_manifest(d, manifest or DEFAULT_MANIFEST_DIR / f"{d.name}.csv", seed))
                  for d in dirs]
    if len(dirs) == 1:
        source = CorpusSource(per_corpus[0][1], dirs[0], dirs[0].name)
    else:
        source = CorpusSource(corpus_mod.union_manifests(per_corpus), {d.name: d for d in dirs},
                              "+".join(d.name for d in dirs))
    if min_age:
        if not any(u.age >= 0 for u in source.utterances):
            raise ValueError(f"--min-age {min_age}: no speaker of {source.name} has a known age (a Kaldi spk2age "
                             f"file gives them); drop --min-age")
        young = {u.speaker for u in source.utterances if 0 <= u.age < min_age}
        source.utterances = [u for u in source.utterances if u.speaker not in young]
        source.min_age = min_age
        log.info("--min-age %d: left out %d speakers under %d years", min_age, len(young), min_age)
    return source


def plan_dataset(utterances, corpus_dir: Path | dict, config: specs_mod.RenderConfig, seed: int, gender: str,
                 num_speakers: int, sizes: dict[str, int]) -> dict[str, list[specs_mod.MixtureSpec]]:
    """Specs per split for one dataset (raises ValueError with the numbers if impossible)."""
    planner = specs_mod.Planner(utterances, lambda u: corpus_mod.load_audio(u, corpus_dir, config.sample_rate),
                                config, seed)
    for split in sizes:  # fail at once, before any planning work, if any split is impossible
        planner.check(gender, num_speakers, split)
    return {split: planner.plan(gender, num_speakers, split, n) for split, n in sizes.items()}


def render_dataset(specs_by_split: dict[str, list[specs_mod.MixtureSpec]], corpus_dir: Path | dict, out_dir: Path,
                   shard_size: int, workers: int, threads_per_worker: int = 1, scheduler: str | None = None,
                   provenance: dict | None = None, progress: bool = True) -> dict:
    """Render specs into ``out_dir/<dataset>/<split>-NNNNN.h5``; skip shards already complete (resume).

    Writes beside the shards: ``<split>.jsonl`` (the specs), ``index.json`` (every shard with its count and
    SHA-256) and ``label_quality.json`` (BPD vs DS agreement). Returns the summary dict.
    """
    t0 = time.perf_counter()
    all_specs = [s for ss in specs_by_split.values() for s in ss]
    if not all_specs:
        raise ValueError("nothing to render: no specs")
    dataset = all_specs[0].dataset
    ddir = out_dir / dataset
    ddir.mkdir(parents=True, exist_ok=True)
    for stale in ddir.glob(".*.tmp"):  # half-written files of an interrupted run (writes are atomic renames)
        stale.unlink()
    provenance = dict(provenance or {}, versions=package_versions())
    for split, specs in specs_by_split.items():
        specs_mod.write_specs(ddir / f"{split}.jsonl", specs)
    tasks = shard_tasks(specs_by_split, ddir, corpus_dir, shard_size, provenance)
    results = list(run_tasks(render_shard, tasks, workers, threads_per_worker, scheduler, progress,
                             desc=f"render {dataset}"))
    results.sort(key=lambda r: r.path)
    index_path = ddir / "index.json"
    old = json.loads(index_path.read_text()) if index_path.is_file() else {"shards": []}
    kept = [s for s in old.get("shards", []) if s["split"] not in specs_by_split]
    entries = kept + [{"file": Path(r.path).name, "split": r.split, "num_mixtures": r.num_mixtures,
                       "first_index": r.first_index, "bytes": r.bytes, "sha256": r.sha256} for r in results]
    write_text_atomic(index_path, json.dumps({"schema_version": shards.SCHEMA_VERSION, "dataset": dataset,
                                              "provenance": dict(provenance, command=command_line()),
                                              "shards": sorted(entries, key=lambda e: e["file"])}, indent=1))
    quality = label_quality(results)
    if quality:
        write_text_atomic(ddir / "label_quality.json", json.dumps(quality, indent=1))
    return {
        "dataset": dataset, "mixtures": sum(r.num_mixtures for r in results), "shards": len(results),
        "shards_skipped": sum(r.skipped for r in results), "bytes": sum(r.bytes for r in results),
        "seconds": time.perf_counter() - t0, "out": str(ddir), "label_quality": quality,
    }


def shard_tasks(specs_by_split: dict[str, list[specs_mod.MixtureSpec]], ddir: Path, corpus_dir: Path | dict,
                shard_size: int, provenance: dict) -> list[ShardTask]:
    """One task per shard ``ddir/<split>-NNNNN.h5`` of ``shard_size`` consecutive specs; each shard's provenance
    also names its split's specs by their SHA-256 (hashed once per split: 50 ms per 400 specs)."""
    tasks = []
    for split, specs in specs_by_split.items():
        split_provenance = dict(provenance, specs_sha256=specs_mod.specs_hash(specs))
        for k, chunk in enumerate(chunked(specs, shard_size)):
            where = {name: str(folder) for name, folder in corpus_dir.items()} if isinstance(corpus_dir, dict) else str(corpus_dir)
            tasks.append(ShardTask(str(ddir / f"{split}-{k:05d}.h5"), tuple(chunk), where, split_provenance))
    return tasks


def label_quality(results: Sequence[ShardResult]) -> dict:
    """Per split and per split/gender mix, over the shards rendered in this run: mean BPD-vs-DS accuracy (best
    permutation) and NMI over non-silent bins, and the mean oracle DS and BPD mask SDRi (dB) on every
    :data:`ORACLE_EVERY`-th mixture (the paper's oracle rows)."""
    out: dict = {}
    for r in results:
        for acc, nmi, g in zip(r.bpd_accuracy, r.bpd_nmi, r.genders):
            for key in (r.split, f"{r.split}/{g}"):
                out.setdefault(key, {"accuracy": [], "nmi": [], "ds": [], "bpd": []})
                out[key]["accuracy"].append(acc)
                out[key]["nmi"].append(nmi)
        for g, ds, bpd in r.oracle_sdri:
            for key in (r.split, f"{r.split}/{g}"):
                out[key]["ds"].append(ds)
                out[key]["bpd"].append(bpd)
    report = {}
    for k, v in sorted(out.items()):
        report[k] = {"mixtures": len(v["accuracy"]), "bpd_ds_accuracy": float(np.mean(v["accuracy"])),
                     "bpd_ds_nmi": float(np.mean(v["nmi"]))}
        if v["ds"]:
            report[k].update(oracle_mixtures=len(v["ds"]), oracle_ds_sdri=float(np.nanmean(v["ds"])),
                             oracle_bpd_sdri=float(np.nanmean(v["bpd"])))
    return report


def config_provenance(config: specs_mod.RenderConfig, seed: int, corpus_dir: Path | dict, min_age: int = 0) -> dict:
    """What shards record of how they were made (options at their defaults since they were added are left out)."""
    render_config = asdict(config)
    defaults = asdict(specs_mod.RenderConfig())
    for key in ("speed_perturb", "rt60_range_s", "source_distance_range_m"):  # added later: recorded when set
        if render_config[key] == defaults[key]:
            del render_config[key]
    names = list(corpus_dir) if isinstance(corpus_dir, dict) else Path(corpus_dir).name
    out = {"render_config": render_config, "seed": seed, "corpus": names}
    if min_age:
        out["min_age"] = min_age
    return out


def render(source: CorpusSource, out_dir: Path, gender: str, num_speakers: int,
           splits: Sequence[str], num_mixtures: str | None, config: specs_mod.RenderConfig, seed: int,
           shard_size: int, workers: int, threads_per_worker: int = 1, scheduler: str | None = None,
           progress: bool = True) -> dict:
    """Plan and render one dataset (``dcgen render``) from :func:`open_corpora`'s source. Returns the summary of
    :func:`render_dataset`."""
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    sizes = parse_sizes(num_mixtures, splits)
    by_split = plan_dataset(source.utterances, source.corpus, config, seed, gender, num_speakers, sizes)
    return render_dataset(by_split, source.corpus, out_dir, shard_size, workers, threads_per_worker, scheduler,
                          config_provenance(config, seed, source.corpus, source.min_age), progress)


def format_summary(summary: dict) -> str:
    """A few readable lines about a finished render."""
    lines = [f"dataset {summary['dataset']}: {summary['mixtures']} mixtures in {summary['shards']} shards "
             f"({summary['shards_skipped']} already complete) under {summary['out']}",
             f"  {summary['bytes'] / 1e6:.1f} MB on disk, {summary['bytes'] / max(summary['mixtures'], 1) / 1e3:.0f} kB "
             f"per mixture, {summary['seconds']:.1f} s"]
    for key, q in summary["label_quality"].items():
        oracle = (f"  oracle SDRi DS {q['oracle_ds_sdri']:.2f} / BPD {q['oracle_bpd_sdri']:.2f} dB "
                  f"({q['oracle_mixtures']} mixtures)" if "oracle_ds_sdri" in q else "")
        lines.append(f"  BPD vs DS labels, {key:<12} accuracy {100 * q['bpd_ds_accuracy']:.1f} %  "
                     f"NMI {q['bpd_ds_nmi']:.3f}  ({q['mixtures']} mixtures rendered now){oracle}")
    return "\n".join(lines)


# Disk and time per mixture, measured on the 2-core reference machine (`dcgen render --all-datasets`, 2026-11-26,
# bitshuffle + zstd): 396-399 kB per 2-speaker and 467-471 kB per 3-speaker mixture, i.e. about 71 kB per source
# signal on top of 256 kB (mic 2, features, labels); 2 workers rendered 8,100 mixtures in 92-98 s (2 speakers)
# and 124-132 s (3 speakers), planning included.
BYTES_PER_SOURCE = 71_000
BYTES_FIXED = 256_000
SECONDS_PER_MIXTURE_PER_WORKER = {2: 0.024, 3: 0.031}


def estimate(num_speakers: int, num_mixtures: int, workers: int) -> tuple[int, float]:
    """(bytes on disk, seconds) projected for ``num_mixtures`` mixtures of N speakers on ``workers`` workers."""
    per = SECONDS_PER_MIXTURE_PER_WORKER.get(num_speakers, 0.007 * num_speakers + 0.010)
    return (num_mixtures * (BYTES_FIXED + BYTES_PER_SOURCE * num_speakers),
            num_mixtures * per / max(workers, 1))


def dry_run(source: CorpusSource, datasets: Sequence[tuple[str, int]], splits: Sequence[str],
            num_mixtures: str | None, config: specs_mod.RenderConfig, seed: int, workers: int) -> list[dict]:
    """Check every requested (gender, N, split) and project its size and time; render nothing.

    Raises:
        ValueError / FileNotFoundError: an impossible request, with the numbers (as ``dcgen render`` would).
    """
    planner = specs_mod.Planner(source.utterances,
                                lambda u: corpus_mod.load_audio(u, source.corpus, config.sample_rate), config, seed)
    rows = []
    for gender, n in datasets:
        for split, count in parse_sizes(num_mixtures, splits).items():
            planner.check(gender, n, split)
            nbytes, seconds = estimate(n, count, workers)
            rows.append({"dataset": specs_mod.dataset_name(gender, n), "split": split, "mixtures": count,
                         "speakers_available": sum(len(planner.eligible(split, g)) for g in set(gender)),
                         "bytes": nbytes, "seconds": seconds})
    return rows


def format_dry_run(rows: Sequence[dict]) -> str:
    lines = [f"{'dataset':<8}{'split':<7}{'mixtures':>9}{'speakers':>10}{'disk':>11}{'time':>10}"]
    for r in rows:
        lines.append(f"{r['dataset']:<8}{r['split']:<7}{r['mixtures']:>9}{r['speakers_available']:>10}"
                     f"{r['bytes'] / 1e9:>9.2f}GB{r['seconds'] / 60:>8.1f}min")
    lines.append(f"{'total':<15}{sum(r['mixtures'] for r in rows):>9}{'':>10}"
                 f"{sum(r['bytes'] for r in rows) / 1e9:>9.2f}GB{sum(r['seconds'] for r in rows) / 60:>8.1f}min")
    return "\n".join(lines)


ALL_DATASETS = tuple((g, n) for n in (2, 3) for g in specs_mod.DATASET_GENDERS)


def read_spec_dir(spec_dir: Path, splits: Sequence[str]) -> dict[str, list[specs_mod.MixtureSpec]]:
    """The specs of one dataset from ``spec_dir/<split>.jsonl.gz`` or ``<split>.jsonl`` (as ``dcgen plan`` writes).

    Raises:
        FileNotFoundError: none of the requested splits has a spec file (names the folder and the fix).
        ValueError: a malformed line, or files of several datasets mixed in one folder.
    """
    by_split = {}
    for s in splits:
        for name in (f"{s}.jsonl.gz", f"{s}.jsonl"):
            if (spec_dir / name).is_file():
                by_split[s] = specs_mod.read_specs(spec_dir / name)
                break
    by_split = {s: v for s, v in by_split.items() if v}
    if not by_split:
        raise FileNotFoundError(f"{spec_dir} has no spec file for split(s) {', '.join(splits)}; "
                                "write them with `dcgen plan` or pick another --split")
    names = {x.dataset for v in by_split.values() for x in v}
    if len(names) != 1:
        raise ValueError(f"{spec_dir} mixes specs of datasets {sorted(names)}; keep one dataset per folder")
    return by_split


def dry_run_specs(by_split: dict[str, list[specs_mod.MixtureSpec]], workers: int) -> list[dict]:
    """:func:`dry_run` rows for specs already planned."""
    rows = []
    for split, ss in by_split.items():
        n = ss[0].num_speakers
        nbytes, seconds = estimate(n, len(ss), workers)
        rows.append({"dataset": ss[0].dataset, "split": split, "mixtures": len(ss),
                     "speakers_available": len({spk for x in ss for spk in x.speakers}),
                     "bytes": nbytes, "seconds": seconds})
    return rows
