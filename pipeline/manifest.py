"""The utterance manifest: one CSV row per utterance of a corpus, the pipeline's first hand-off.

``data_manifests/corpora/<corpus>.csv`` has the columns of :class:`Utterance` (``utterance_id, path, speaker,
gender, num_samples, sample_rate, split, layout``, and ``start_sample, age, corpus`` where some row sets them);
``path`` is relative to the corpus folder. This module owns the record, its file and reading an utterance's audio;
:mod:`spatialdc.pipeline.layouts` makes manifests from corpus folders and :mod:`spatialdc.pipeline.corpus` splits and
unites them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from .atomic import write_text_atomic

SPLITS = ("train", "valid", "test")
GENDERS = ("f", "m")
GENDER_WORDS = {"f": "f", "female": "f", "m": "m", "male": "m"}  # how corpora's speaker lists write a gender
SPLIT_WORDS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}  # how corpora name their splits
DEFAULT_MANIFEST_DIR = Path("data_manifests/corpora")


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus.

    Attributes:
        utterance_id: corpus-unique id, e.g. ``"103-1240-0000"``.
        path: audio file path relative to the corpus folder.
        speaker: speaker id (string).
        gender: ``"f"`` or ``"m"``.
        num_samples: length in samples (one channel).
        sample_rate: samples per second (Hz).
        split: ``"train"``, ``"valid"``, ``"test"`` or ``""`` before splitting.
        layout: the corpus layout it was scanned from (:data:`spatialdc.pipeline.layouts.LAYOUTS`).
        start_sample: first sample of the utterance in its file (Kaldi ``segments``, lhotse supervisions; 0: the
            whole file).
        age: the speaker's age in years (Kaldi ``spk2age``), -1 if unknown.
        corpus: in a manifest of several corpora (:func:`spatialdc.pipeline.corpus.union_manifests`), the name of
            the corpus the utterance comes from (its ``path`` is relative to that corpus's folder); empty for a
            single corpus.
    """

    utterance_id: str
    path: str
    speaker: str
    gender: str
    num_samples: int
    sample_rate: int
    split: str = ""
    layout: str = "librispeech"
    start_sample: int = 0
    age: int = -1
    corpus: str = ""

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


FIELDS = [f.name for f in dataclasses.fields(Utterance)]
OPTIONAL_FIELDS = {"start_sample": 0, "age": -1, "corpus": ""}  # written only when a row differs from the default


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write utterances as CSV, atomically: columns :data:`FIELDS`, the optional ones (:data:`OPTIONAL_FIELDS`)
    only if some row sets them (so a manifest of a plain corpus keeps the columns it always had)."""
    utterances = list(utterances)
    used = {k for k, default in OPTIONAL_FIELDS.items() if any(getattr(u, k) != default for u in utterances)}
    fields = [f for f in FIELDS if f not in OPTIONAL_FIELDS or f in used]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for u in utterances:
        writer.writerow(dataclasses.asdict(u))
    write_text_atomic(path, buf.getvalue())


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        FileNotFoundError: missing file (with the command that makes it).
        ValueError: missing columns or a bad value, with the row number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found; make it with `dcgen manifest CORPUS_DIR`")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(FIELDS) - {"layout"} - set(OPTIONAL_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"manifest {path} lacks columns {sorted(missing)}")
        out = []
        for rowno, row in enumerate(reader, 2):
            try:
                u = Utterance(row["utterance_id"], row["path"], row["speaker"], row["gender"],
                              int(row["num_samples"]), int(row["sample_rate"]), row["split"],
                              row.get("layout") or "librispeech", int(row.get("start_sample") or 0),
                              int(row.get("age") or -1), row.get("corpus") or "")
            except ValueError as exc:
                raise ValueError(f"{path}:{rowno}: {exc}") from exc
            if u.gender not in GENDERS or u.split not in SPLITS:
                raise ValueError(f"{path}:{rowno}: gender {u.gender!r} / split {u.split!r} not in {GENDERS} / {SPLITS}")
            out.append(u)
    return out


CorpusRoots = dict  # corpus name -> folder, for manifests of several corpora


def corpus_root(corpus_dir: "str | Path | CorpusRoots", corpus: str) -> Path:
    """The folder an utterance's (or a spec source's) ``path`` is relative to: ``corpus_dir`` for a single corpus,
    ``corpus_dir[corpus]`` for a manifest of several (:func:`spatialdc.pipeline.corpus.union_manifests`).

    Raises:
        ValueError: an utterance of a corpus the mapping does not name (with the names it has).
    """
    if not corpus:
        return Path(corpus_dir) if not isinstance(corpus_dir, dict) else Path(next(iter(corpus_dir.values())))
    if not isinstance(corpus_dir, dict):
        if Path(corpus_dir).name == corpus:
            return Path(corpus_dir)
        raise ValueError(f"utterances of corpus {corpus!r} but only the folder {corpus_dir} was given; pass every "
                         f"corpus of the manifest with --corpus")
    if corpus not in corpus_dir:
        raise ValueError(f"utterances of corpus {corpus!r} but --corpus names only {sorted(corpus_dir)}; pass its "
                         f"folder too")
    return Path(corpus_dir[corpus])


def load_audio(utterance: Utterance, corpus_dir: "str | Path | CorpusRoots", sample_rate: int) -> np.ndarray:
    """Read one utterance as float64 samples in [-1, 1].

    Args:
        corpus_dir: the corpus folder, or for a manifest of several corpora the mapping name -> folder.

    Returns:
        array (S,) float64, S = ``utterance.num_samples`` (from ``start_sample`` of its file).

    Raises:
        FileNotFoundError: the file is gone.
        ValueError: unreadable file, a sample rate other than ``sample_rate``, or a file too short for the manifest.
    """
    path = corpus_root(corpus_dir, utterance.corpus) / utterance.path
    if not path.is_file():
        raise FileNotFoundError(f"audio {path} of utterance {utterance.utterance_id} not found; is --corpus right?")
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            fh.seek(utterance.start_sample)
            x = fh.read(utterance.num_samples, dtype="float64", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}. Replace the file or rebuild the manifest.") from exc
    if sr != sample_rate:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz; resample the corpus first")
    if x.shape[0] != utterance.num_samples:
        raise ValueError(f"{path}: {x.shape[0]} samples from sample {utterance.start_sample} but the manifest says "
                         f"{utterance.num_samples}; rebuild the manifest with `dcgen manifest`")
    return x[:, 0]
