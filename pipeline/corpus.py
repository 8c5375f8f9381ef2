"""Scan a speech corpus into an utterance manifest (one CSV row per utterance), split by speaker.

The manifest is the first hand-off of the pipeline: ``data_manifests/corpora/<corpus>.csv`` with columns
``utterance_id, path, speaker, gender, num_samples, sample_rate, split`` where ``path`` is relative to the
corpus folder. Splits are by speaker (never by utterance), stratified by gender, seeded.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from .atomic import write_text_atomic
from .rng import rng_for

SPLITS = ("train", "valid", "test")
GENDERS = ("f", "m")
AUDIO_SUFFIXES = (".flac", ".wav")
DEFAULT_SPLIT_FRACTIONS = {"train": 0.75, "valid": 0.10, "test": 0.15}


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
    """

    utterance_id: str
    path: str
    speaker: str
    gender: str
    num_samples: int
    sample_rate: int
    split: str = ""

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


FIELDS = [f.name for f in dataclasses.fields(Utterance)]


def read_librispeech_speakers(path: Path) -> dict[str, str]:
    """Parse LibriSpeech's ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``, ``;`` comments).

    Returns:
        dict speaker id -> ``"f"`` or ``"m"``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line whose SEX field is not F or M.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a LibriSpeech-layout corpus needs SPEAKERS.TXT for the genders")
    genders: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 2:
            continue
        sex = fields[1].lower()
        if sex not in GENDERS:
            raise ValueError(f"{path}:{lineno}: gender {fields[1]!r} is neither F nor M")
        genders[fields[0]] = sex
    return genders


def _audio_info(path: Path) -> sf._SoundFileInfo:
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError for corrupt files
        raise ValueError(f"cannot read audio file {path}: {exc}. Replace or remove the file, then scan again.") from exc


def scan_librispeech(corpus_dir: str | Path) -> list[Utterance]:
    """Scan a LibriSpeech-layout folder: audio named ``SPEAKER-CHAPTER-UTT.flac`` (flat or nested), genders
    from ``SPEAKERS.TXT`` at its top.

    Args:
        corpus_dir: the corpus folder.

    Returns:
        utterances sorted by id, ``split`` empty.

    Raises:
        FileNotFoundError: the folder or ``SPEAKERS.TXT`` is missing, or it holds no audio.
        ValueError: a corrupt audio file, a multi-channel file, or a speaker missing from ``SPEAKERS.TXT``.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist; pass the folder that holds SPEAKERS.TXT")
    genders = read_librispeech_speakers(root / "SPEAKERS.TXT")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no .flac or .wav files under {root}")
    pattern = re.compile(r"^(\d+)-(\d+)-(\d+)$")
    out = []
    for p in files:
        m = pattern.match(p.stem)
        if not m:
            raise ValueError(f"{p}: name is not SPEAKER-CHAPTER-UTTERANCE as in LibriSpeech")
        speaker = m.group(1)
        if speaker not in genders:
            raise ValueError(f"{p}: speaker {speaker} is not listed in {root / 'SPEAKERS.TXT'}")
        info = _audio_info(p)
        if info.channels != 1:
            raise ValueError(f"{p}: {info.channels} channels; corpus utterances must be mono")
        out.append(Utterance(p.stem, p.relative_to(root).as_posix(), speaker, genders[speaker],
                             int(info.frames), int(info.samplerate)))
    return out


def assign_splits(utterances: Sequence[Utterance], seed: int,
                  fractions: dict[str, float] | None = None) -> list[Utterance]:
    """Assign every speaker to one split, separately per gender (stratified), seeded.

    Per gender with ``n`` speakers: ``round(n * valid)`` go to valid, ``round(n * test)`` to test, the rest to
    train, after a shuffle drawn from ``rng_for(seed, "speaker-split", gender)``.

    Raises:
        ValueError: fractions that do not sum to 1, or a gender with too few speakers for three splits.
    """
    fractions = dict(fractions or DEFAULT_SPLIT_FRACTIONS)
    if set(fractions) != set(SPLITS) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must give train, valid, test summing to 1, got {fractions}")
    split_of: dict[str, str] = {}
    for gender in GENDERS:
        speakers = sorted({u.speaker for u in utterances if u.gender == gender}, key=lambda s: (len(s), s))
        if not speakers:
            continue
        if len(speakers) < 3:
            raise ValueError(f"only {len(speakers)} speakers of gender {gender!r}: need at least 3 to split by speaker")
        order = rng_for(seed, "speaker-split", gender).permutation(len(speakers))
        n_valid = max(1, round(len(speakers) * fractions["valid"]))
        n_test = max(1, round(len(speakers) * fractions["test"]))
        for rank, idx in enumerate(order):
            split_of[speakers[idx]] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return [dataclasses.replace(u, split=split_of[u.speaker]) for u in utterances]


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write utterances as CSV (columns :data:`FIELDS`), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
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
        missing = set(FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"manifest {path} lacks columns {sorted(missing)}")
        out = []
        for rowno, row in enumerate(reader, 2):
            try:
                u = Utterance(row["utterance_id"], row["path"], row["speaker"], row["gender"],
                              int(row["num_samples"]), int(row["sample_rate"]), row["split"])
            except ValueError as exc:
                raise ValueError(f"{path}:{rowno}: {exc}") from exc
            if u.gender not in GENDERS or u.split not in SPLITS:
                raise ValueError(f"{path}:{rowno}: gender {u.gender!r} / split {u.split!r} not in {GENDERS} / {SPLITS}")
            out.append(u)
    return out


def load_audio(utterance: Utterance, corpus_dir: str | Path, sample_rate: int) -> np.ndarray:
    """Read one utterance as float64 samples in [-1, 1].

    Returns:
        array (S,) float64, S = ``utterance.num_samples``.

    Raises:
        FileNotFoundError: the file is gone.
        ValueError: unreadable file, a sample rate other than ``sample_rate``, or a length other than the manifest's.
    """
    path = Path(corpus_dir) / utterance.path
    if not path.is_file():
        raise FileNotFoundError(f"audio {path} of utterance {utterance.utterance_id} not found; is --corpus right?")
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}. Replace the file or rebuild the manifest.") from exc
    if sr != sample_rate:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz; resample the corpus first")
    if x.shape[0] != utterance.num_samples:
        raise ValueError(f"{path}: {x.shape[0]} samples but the manifest says {utterance.num_samples}; "
                         "rebuild the manifest with `dcgen manifest`")
    return x[:, 0]
