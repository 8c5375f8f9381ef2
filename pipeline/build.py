"""Render a dataset: split its specs into shards, render the shards in parallel (resuming: complete shards whose
bytes prove intact are kept, the others rendered again), then write the dataset's index and label-quality report
(``dcgen render``)."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import features, label_quality, shard_index, shards
from .atomic import write_text_atomic
from .corpus import CorpusSource
from .dataset_folder import claim_folder
from .label_quality import ShardQuality
from .parallel import chunked, run_tasks
from .paths import check_out_dir
from .planner import parse_sizes, plan_dataset
from .provenance import command_line, config_provenance, package_versions
from .render import render_mixture
from .specs import MixtureSpec, RenderConfig, specs_hash, write_specs
from .verify import check_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTask:
    """One Dask task: render these specs into ``path`` (``recorded_sha256``: the SHA-256 the folder's index.json
    records for the file, empty if it lists none)."""

    path: str
    specs: tuple
    corpus_dir: str | dict  # the corpus folder, or corpus name -> folder for specs of several corpora
    provenance: dict
    recorded_sha256: str = ""


@dataclass
class ShardResult:
    """What one task gave: the shard's index entry, the seconds it took, whether it was already complete (and so
    kept, not rendered again), why a file already there was rendered again (:func:`resume_state`; empty if none
    was there) and the label measures of the mixtures it rendered."""

    info: shard_index.ShardInfo
    seconds: float
    skipped: bool
    quality: ShardQuality
    rerendered: str = ""


def resume_state(path: Path, specs: list[MixtureSpec], recorded_sha256: str) -> str:
    """``"complete"`` if ``path`` is a whole shard of exactly these specs whose bytes prove intact: their SHA-256
    equals the one index.json records, or (a shard of a run stopped before it wrote the index) every chunk passes
    its checksum. Otherwise why it is rendered: ``"missing"``, ``"unreadable"``, ``"older schema"``, ``"other
    specs"`` or ``"checksum mismatch"``."""
    if not path.is_file():
        return "missing"
    if not shards.shard_matches(path, specs):
        version = shards.schema_version_of(path)
        return "unreadable" if version < 0 else "older schema" if version < shards.SCHEMA_VERSION else "other specs"
    if recorded_sha256:
        intact = shard_index.file_sha256(path) == recorded_sha256
    else:
        intact = not check_shard(str(path), len(specs))
    return "complete" if intact else "checksum mismatch"


def render_shard(task: ShardTask) -> ShardResult:
    """Render and write one shard, unless a complete, intact shard of the same specs is already there (resume)."""
    t0 = time.perf_counter()
    specs = list(task.specs)
    path = Path(task.path)
    state = resume_state(path, specs, task.recorded_sha256)
    skipped = state == "complete"
    quality = ShardQuality(specs[0].split, [])
    if not skipped:
        with features.single_threaded():  # one core per task, in a Dask worker or in a plain loop alike
            examples = [render_mixture(s, task.corpus_dir) for s in specs]
            quality = label_quality.measure_shard(examples)
            shards.write_shard(path, examples, task.provenance)
    return ShardResult(shard_index.ShardInfo.of_file(path, specs[0].split, len(specs), specs[0].index),
                       time.perf_counter() - t0, skipped, quality, "" if state in ("complete", "missing") else state)


def render_dataset(specs_by_split: dict[str, list[MixtureSpec]], corpus_dir: Path | dict, out_dir: Path,
                   shard_size: int, workers: int, threads_per_worker: int = 1, scheduler: str | None = None,
                   provenance: dict | None = None, progress: bool = True, overwrite: bool = False) -> dict:
    """Render specs into ``out_dir/<dataset>/<split>-NNNNN.h5``; skip shards already complete and intact (resume:
    :func:`resume_state`).

    Writes beside the shards: ``<split>.jsonl`` (the specs), ``index.json`` (every shard with its count and
    SHA-256) and ``label_quality.json`` (BPD vs DS agreement). Returns the summary dict.

    Raises:
        ValueError: no specs, or a folder holding a dataset of other settings and no ``overwrite`` (which clears
            it first): :func:`spatialdc.pipeline.dataset_folder.claim_folder`.
    """
    t0 = time.perf_counter()
    all_specs = [s for ss in specs_by_split.values() for s in ss]
    if not all_specs:
        raise ValueError("nothing to render: no specs")
    dataset = all_specs[0].dataset
    ddir = check_out_dir(out_dir) / dataset
    ddir.mkdir(parents=True, exist_ok=True)
    claim_folder(ddir, all_specs[0], overwrite)
    for stale in ddir.glob(".*.tmp"):  # half-written files of an interrupted run (writes are atomic renames)
        stale.unlink()
    provenance = dict(provenance or {}, versions=package_versions())
    for split, split_specs in specs_by_split.items():
        write_specs(ddir / f"{split}.jsonl", split_specs)
    old = _old_index_entries(ddir)
    tasks = shard_tasks(specs_by_split, ddir, corpus_dir, shard_size, provenance, {e.file: e.sha256 for e in old})
    results = list(run_tasks(render_shard, tasks, workers, threads_per_worker, scheduler, progress,
                             desc=f"render {dataset}"))
    results.sort(key=lambda r: r.info.file)
    kept = tuple(s for s in old if s.split not in specs_by_split)  # the other splits' shards stay listed
    shard_index.write_index(ddir, shard_index.DatasetIndex(dataset, dict(provenance, command=command_line()),
                                                 kept + tuple(r.info for r in results)))
    quality = label_quality.summarize([r.quality for r in results])
    if quality:
        write_text_atomic(ddir / "label_quality.json", json.dumps(quality, indent=1))
    return {
        "dataset": dataset, "mixtures": sum(r.info.num_mixtures for r in results), "shards": len(results),
        "shards_skipped": sum(r.skipped for r in results), "bytes": sum(r.info.bytes for r in results),
        "rerendered": dict(Counter(r.rerendered for r in results if r.rerendered)),
        "seconds": time.perf_counter() - t0, "out": str(ddir), "label_quality": quality,
    }


def _old_index_entries(ddir: Path) -> tuple[shard_index.ShardInfo, ...]:
    """The shards the folder's index.json lists (none if it has none, or an unreadable one: then every shard there
    proves itself chunk by chunk)."""
    if not (ddir / shard_index.INDEX_FILE).is_file():
        return ()
    try:
        return shard_index.read_index(ddir).shards
    except ValueError as exc:
        log.warning("%s; checking the shards there chunk by chunk instead", exc)
        return ()


def shard_tasks(specs_by_split: dict[str, list[MixtureSpec]], ddir: Path, corpus_dir: Path | dict,
                shard_size: int, provenance: dict, recorded: dict[str, str] | None = None) -> list[ShardTask]:
    """One task per shard ``ddir/<split>-NNNNN.h5`` of ``shard_size`` consecutive specs; each shard's provenance
    also names its split's specs by their SHA-256 (hashed once per split: 50 ms per 400 specs). ``recorded``: file
    name -> SHA-256 of the shards index.json lists."""
    tasks = []
    for split, specs in specs_by_split.items():
        split_provenance = dict(provenance, specs_sha256=specs_hash(specs))
        for k, chunk in enumerate(chunked(specs, shard_size)):
            where = {name: str(folder) for name, folder in corpus_dir.items()} if isinstance(corpus_dir, dict) else str(corpus_dir)
            name = f"{split}-{k:05d}.h5"
            tasks.append(ShardTask(str(ddir / name), tuple(chunk), where, split_provenance,
                                   (recorded or {}).get(name, "")))
    return tasks


def render(source: CorpusSource, out_dir: Path, gender: str, num_speakers: int,
           splits: Sequence[str], num_mixtures: str | None, config: RenderConfig, seed: int,
           shard_size: int, workers: int, threads_per_worker: int = 1, scheduler: str | None = None,
           progress: bool = True, overwrite: bool = False) -> dict:
    """Plan and render one dataset (``dcgen render``) from :func:`spatialdc.pipeline.corpus.open_corpora`'s
    source. Returns the summary of :func:`render_dataset`."""
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    sizes = parse_sizes(num_mixtures, splits)
    by_split = plan_dataset(source.utterances, source.corpus, config, seed, gender, num_speakers, sizes)
    return render_dataset(by_split, source.corpus, out_dir, shard_size, workers, threads_per_worker, scheduler,
                          config_provenance(config, seed, source.corpus, source.min_age), progress, overwrite)


def format_summary(summary: dict) -> str:
    """A few readable lines about a finished render."""
    again = "".join(f"; {n} re-rendered: {why}" for why, n in sorted(summary.get("rerendered", {}).items()))
    lines = [f"dataset {summary['dataset']}: {summary['mixtures']} mixtures in {summary['shards']} shards "
             f"({summary['shards_skipped']} already complete{again}) under {summary['out']}",
             f"  {summary['bytes'] / 1e6:.1f} MB on disk, {summary['bytes'] / max(summary['mixtures'], 1) / 1e3:.0f} kB "
             f"per mixture, {summary['seconds']:.1f} s"]
    for key, q in summary["label_quality"].items():
        oracle = (f"  oracle SDRi DS {q['oracle_ds_sdri']:.2f} / BPD {q['oracle_bpd_sdri']:.2f} dB "
                  f"({q['oracle_mixtures']} mixtures)" if "oracle_ds_sdri" in q else "")
        lines.append(f"  BPD vs DS labels, {key:<12} accuracy {100 * q['bpd_ds_accuracy']:.1f} %  "
                     f"NMI {q['bpd_ds_nmi']:.3f}  ({q['mixtures']} mixtures rendered now){oracle}")
    return "\n".join(lines)
