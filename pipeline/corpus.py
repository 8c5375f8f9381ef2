"""Corpora into the manifests mixtures are planned from: scan a corpus folder (any layout of
:mod:`spatialdc.pipeline.layouts`), split its speakers, unite several corpora, and open the corpora of a render.

Splits are by speaker (never by utterance), stratified by gender, seeded; a corpus with its own split keeps it.
Manifests are read and written by :mod:`spatialdc.pipeline.manifest` (``data_manifests/corpora/<corpus>.csv``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .audio import decode_problem
from .layouts import scan_layout
from .manifest import DEFAULT_MANIFEST_DIR, GENDERS, SPLITS, Utterance, read_manifest, write_manifest
from .rng import rng_for

log = logging.getLogger(__name__)
DEFAULT_SPLIT_FRACTIONS = {"train": 0.75, "valid": 0.10, "test": 0.15}
TIMIT_VALID_FRACTION = 0.1  # of TIMIT's training speakers per gender, held out as valid


CORPUS_SPLITS = ("auto", "test")  # dcgen manifest --split: by speaker (or the corpus's own), or all for testing
EVAL_ONLY_HINT = ("a corpus to evaluate on only? `dcgen manifest CORPUS_DIR --split test` makes every speaker a test "
                  "speaker")
MAX_LISTED = 20  # unreadable files named in an error; the rest are counted


def scan_corpus(corpus_dir: str | Path, seed: int, layout: str = "auto", split: str = "auto",
                skip_unreadable: bool = False) -> list[Utterance]:
    """The utterances of :func:`scan_corpus_checked` (unreadable files skipped are logged)."""
    return scan_corpus_checked(corpus_dir, seed, layout, split, skip_unreadable)[0]


def scan_corpus_checked(corpus_dir: str | Path, seed: int, layout: str = "auto", split: str = "auto",
                        skip_unreadable: bool = False) -> tuple[list[Utterance], list[str]]:
    """Scan a corpus of any supported layout (:func:`spatialdc.pipeline.layouts.scan_layout`), decode every audio
    file it uses (:func:`spatialdc.pipeline.audio.decode_problem`: a corrupt FLAC passes a header check and would
    fail at render) and assign splits: by speaker (``split="auto"``, see :func:`assign_splits`), or every speaker
    to test (``split="test"``: a corpus to evaluate on only).

    Returns:
        (the utterances, the unreadable files left out with ``skip_unreadable``: ``"PATH: why"`` each).

    Raises:
        ValueError: unreadable audio files without ``skip_unreadable`` (lists them, and the option), no readable
            utterance, an unknown ``split``; FileNotFoundError / ValueError as the scanner of the layout.
    """
    if split not in CORPUS_SPLITS:
        raise ValueError(f"unknown corpus split {split!r}: choose one of {CORPUS_SPLITS}")
    unreadable: list[str] = []
    utts = scan_layout(corpus_dir, layout, unreadable)
    bad = set()
    for path in sorted({u.path for u in utts}):
        problem = decode_problem(Path(corpus_dir) / path)
        if problem:
            bad.add(path)
            unreadable.append(f"{Path(corpus_dir) / path}: {problem}")
    if unreadable and not skip_unreadable:
        listed = "\n  ".join(unreadable[:MAX_LISTED]) + (f"\n  ... and {len(unreadable) - MAX_LISTED} more"
                                                         if len(unreadable) > MAX_LISTED else "")
        raise ValueError(f"{len(unreadable)} audio file(s) of {corpus_dir} cannot be read:\n  {listed}\nReplace "
                         f"them, or leave them out with `dcgen manifest {corpus_dir} --skip-unreadable`")
    if unreadable:
        log.warning("left out %d unreadable audio file(s) of %s: %s", len(unreadable), corpus_dir,
                    "; ".join(unreadable[:MAX_LISTED]))
    utts = [u for u in utts if u.path not in bad]
    if not utts:
        raise ValueError(f"{corpus_dir}: no readable utterance left")
    if split == "test":
        return [dataclasses.replace(u, split="test") for u in utts], unreadable
    return assign_splits(utts, seed), unreadable


def assign_splits(utterances: Sequence[Utterance], seed: int,
                  fractions: dict[str, float] | None = None) -> list[Utterance]:
    """Assign every speaker to one split, separately per gender (stratified), seeded.

    Per gender with ``n`` speakers: ``round(n * valid)`` go to valid, ``round(n * test)`` to test, the rest to
    train, after a shuffle drawn from ``rng_for(seed, "speaker-split", gender)``. A corpus that comes with its own
    split keeps it: when every utterance already has a split, only training speakers are re-drawn, and when no
    speaker is in valid, :data:`TIMIT_VALID_FRACTION` of the training speakers of each gender move to valid
    (TIMIT's way: its own train / test speakers, valid taken from train).

    Raises:
        ValueError: fractions that do not sum to 1, a gender with too few speakers for three splits, or a corpus
            whose utterances are only partly split.
    """
    fractions = dict(fractions or DEFAULT_SPLIT_FRACTIONS)
    if set(fractions) != set(SPLITS) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must give train, valid, test summing to 1, got {fractions}")
    preset = [bool(u.split) for u in utterances]
    if any(preset) and not all(preset):
        raise ValueError("some utterances come with a split and some do not; give a split for all or none")
    if all(preset) and utterances:
        if any(u.split == "valid" for u in utterances):
            return list(utterances)
        split_of = {}
        for gender in GENDERS:
            train = sorted({u.speaker for u in utterances if u.gender == gender and u.split == "train"},
                           key=lambda s: (len(s), s))
            if len(train) < 2:
                raise ValueError(f"only {len(train)} training speakers of gender {gender!r}: need at least 2 to take "
                                 f"valid speakers from train; {EVAL_ONLY_HINT}")
            order = rng_for(seed, "speaker-split", gender).permutation(len(train))
            n_valid = max(1, round(len(train) * TIMIT_VALID_FRACTION))
            split_of.update({train[idx]: "valid" for idx in order[:n_valid]})
        return [dataclasses.replace(u, split=split_of.get(u.speaker, u.split)) for u in utterances]
    split_of: dict[str, str] = {}
    for gender in GENDERS:
        speakers = sorted({u.speaker for u in utterances if u.gender == gender}, key=lambda s: (len(s), s))
        if not speakers:
            continue
        if len(speakers) < 3:
            raise ValueError(f"only {len(speakers)} speakers of gender {gender!r}: need at least 3 to split by "
                             f"speaker; {EVAL_ONLY_HINT}")
        order = rng_for(seed, "speaker-split", gender).permutation(len(speakers))
        n_valid = max(1, round(len(speakers) * fractions["valid"]))
        n_test = max(1, round(len(speakers) * fractions["test"]))
        for rank, idx in enumerate(order):
            split_of[speakers[idx]] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return [dataclasses.replace(u, split=split_of[u.speaker]) for u in utterances]


def union_manifests(corpora: Sequence[tuple[str, Sequence[Utterance]]]) -> list[Utterance]:
    """One manifest of several corpora, each already split by speaker within itself: speaker and utterance ids are
    namespaced as ``<corpus>/<id>`` (so speakers of different corpora never merge and stay in their own split), and
    every row records its corpus (its ``path`` stays relative to that corpus's folder).

    Args:
        corpora: (name, utterances) per corpus, names unique.

    Raises:
        ValueError: fewer than two corpora, a name given twice, or a corpus whose utterances are not split.
    """
    names = [name for name, _ in corpora]
    if len(corpora) < 2:
        raise ValueError("a union needs at least two corpora")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"corpus {twice[0]!r} is given twice; give each corpus folder once")
    out = []
    for name, utts in corpora:
        for u in utts:
            if u.split not in SPLITS:
                raise ValueError(f"{name}: utterance {u.utterance_id} has no split; split each corpus first")
            out.append(dataclasses.replace(u, utterance_id=f"{name}/{u.utterance_id}", speaker=f"{name}/{u.speaker}",
                                           corpus=name))
    return out


def load_or_make_manifest(corpus_dir: Path, manifest: Path | None, seed: int,
                          layout: str = "auto") -> list[Utterance]:
    """Read the manifest, or scan ``corpus_dir`` (any layout of :func:`scan_corpus`) and write it."""
    if manifest is not None and manifest.is_file():
        return read_manifest(manifest)
    utts = scan_corpus(corpus_dir, seed, layout)
    if manifest is not None:
        write_manifest(manifest, utts)
        log.info("wrote manifest %s (%d utterances)", manifest, len(utts))
    return utts


@dataclass
class CorpusSource:
    """The utterances to plan from and where their audio is.

    Attributes:
        utterances: the manifest (for several corpora, their union: :func:`union_manifests`).
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
        source = CorpusSource(union_manifests(per_corpus), {d.name: d for d in dirs},
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
