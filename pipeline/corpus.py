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
LAYOUTS = ("librispeech", "timit", "csv", "kaldi", "lhotse")
TIMIT_VALID_FRACTION = 0.1  # of TIMIT's training speakers per gender, held out as valid


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
        layout: the corpus layout it was scanned from (:data:`LAYOUTS`).
        start_sample: first sample of the utterance in its file (Kaldi ``segments``, lhotse supervisions; 0: the
            whole file).
        age: the speaker's age in years (Kaldi ``spk2age``), -1 if unknown.
        corpus: in a manifest of several corpora (:func:`union_manifests`), the name of the corpus the utterance
            comes from (its ``path`` is relative to that corpus's folder); empty for a single corpus.
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
        info = _check_mono(p)
        out.append(Utterance(p.stem, p.relative_to(root).as_posix(), speaker, genders[speaker],
                             int(info.frames), int(info.samplerate)))
    return out


def _check_mono(p: Path) -> sf._SoundFileInfo:
    info = _audio_info(p)
    if info.channels != 1:
        raise ValueError(f"{p}: {info.channels} channels; corpus utterances must be mono")
    if info.frames < 1:
        raise ValueError(f"{p}: empty audio file; remove it and scan again")
    return info


def scan_timit(corpus_dir: str | Path) -> list[Utterance]:
    """Scan TIMIT in its LDC layout: ``TRAIN/`` and ``TEST/``, then ``DR1..DR8/``, then one folder per speaker whose
    first letter is the gender (``FCJF0``, ``MDAB0``), then ``*.WAV`` (NIST SPHERE or RIFF; names in any case).

    Returns:
        utterances sorted by id (``SPEAKER-SENTENCE``, e.g. ``FCJF0-SA1``), ``split`` = ``"train"`` or ``"test"``
        (TIMIT's own speaker split; :func:`assign_splits` later moves some training speakers to valid).

    Raises:
        FileNotFoundError: no TRAIN/TEST folders, or no audio in them.
        ValueError: a speaker folder not starting with F or M, a corrupt, empty or multi-channel file.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist; pass the TIMIT folder that holds TRAIN/ and TEST/")
    tops = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" not in tops or "test" not in tops:
        raise FileNotFoundError(f"{root} is not TIMIT-layout: it needs TRAIN/ and TEST/ folders (found "
                                f"{sorted(p.name for p in tops.values()) or 'none'})")
    out = []
    for split in ("train", "test"):
        for p in sorted(tops[split].rglob("*")):
            if p.suffix.lower() != ".wav" or not p.is_file():
                continue
            speaker_dir = p.parent.name
            gender = speaker_dir[:1].lower()
            if gender not in GENDERS:
                raise ValueError(f"{p}: speaker folder {speaker_dir!r} should start with F or M (TIMIT layout)")
            info = _check_mono(p)
            out.append(Utterance(f"{speaker_dir.upper()}-{p.stem.upper()}", p.relative_to(root).as_posix(),
                                 speaker_dir.upper(), gender, int(info.frames), int(info.samplerate), split, "timit"))
    if not out:
        raise FileNotFoundError(f"no .WAV files under {tops['train']} or {tops['test']}")
    return sorted(out, key=lambda u: u.utterance_id)


CSV_GENDERS = {"f": "f", "female": "f", "m": "m", "male": "m"}


def scan_csv(corpus_dir: str | Path, csv_path: str | Path | None = None) -> list[Utterance]:
    """Scan a folder described by a CSV with columns ``path, speaker, gender`` (paths relative to the folder;
    gender F/M/female/male; an optional ``split`` column of train/valid/test keeps the user's split).

    ``csv_path`` defaults to the only ``*.csv`` file at the top of ``corpus_dir``.

    Raises:
        FileNotFoundError: no CSV (or several, without ``csv_path``), or a listed file that does not exist.
        ValueError: missing columns, a bad gender or split, a corrupt, empty or multi-channel file.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")
    if csv_path is None:
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise FileNotFoundError(f"{root}: expected one CSV of path,speaker,gender at the top, found "
                                    f"{[p.name for p in found] or 'none'}")
        csv_path = found[0]
    csv_path = Path(csv_path)
    out = []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "speaker", "gender"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path} lacks columns {sorted(missing)} (needs path, speaker, gender)")
        for rowno, row in enumerate(reader, 2):
            gender = CSV_GENDERS.get(row["gender"].strip().lower())
            if gender is None:
                raise ValueError(f"{csv_path}:{rowno}: gender {row['gender']!r} is not F, M, female or male")
            split = (row.get("split") or "").strip().lower()
            if split and split not in SPLITS:
                raise ValueError(f"{csv_path}:{rowno}: split {split!r} is not one of {SPLITS}")
            p = root / row["path"].strip()
            if not p.is_file():
                raise FileNotFoundError(f"{csv_path}:{rowno}: audio {p} not found")
            info = _check_mono(p)
            rel = p.relative_to(root).as_posix()
            uid = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.rsplit(".", 1)[0])
            out.append(Utterance(uid, rel, row["speaker"].strip(), gender, int(info.frames), int(info.samplerate),
                                 split, "csv"))
    if not out:
        raise FileNotFoundError(f"{csv_path} lists no audio")
    return sorted(out, key=lambda u: u.utterance_id)


def detect_layout(corpus_dir: str | Path) -> str:
    """``"librispeech"`` (SPEAKERS.TXT), ``"timit"`` (TRAIN/ and TEST/) or ``"csv"`` (a top-level CSV).

    Raises:
        FileNotFoundError: none of these, with what each layout needs.
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist; pass --corpus DIR "
                                "(the bundled one is corpora/librispeech-clips)")
    if (root / "SPEAKERS.TXT").is_file():
        return "librispeech"
    from .layouts import kaldi_data_dirs, lhotse_manifests

    if kaldi_data_dirs(root):  # before TIMIT: Kaldi corpora also have train/ and test/ folders
        return "kaldi"
    if lhotse_manifests(root):
        return "lhotse"
    names = {p.name.lower() for p in root.iterdir() if p.is_dir()}
    if {"train", "test"} <= names:
        return "timit"
    if any(root.glob("*.csv")):
        return "csv"
    raise FileNotFoundError(f"{root}: unknown corpus layout. LibriSpeech needs SPEAKERS.TXT, TIMIT needs TRAIN/ and "
                            "TEST/, Kaldi a wav.scp (in the folder or in train/, test/...), lhotse a recordings and a "
                            "supervisions manifest, a CSV corpus one top-level CSV of path,speaker,gender")


def scan_corpus(corpus_dir: str | Path, seed: int, layout: str = "auto") -> list[Utterance]:
    """Scan a corpus of any supported layout and assign splits by speaker (see :func:`assign_splits`).

    Raises:
        FileNotFoundError / ValueError: as the scanner of the layout, or an unknown ``layout``.
    """
    if layout == "auto":
        layout = detect_layout(corpus_dir)
    if layout in ("kaldi", "lhotse"):  # their module imports lhotse's and Kaldi's readers: only when asked for
        from . import layouts

        scanner = getattr(layouts, f"scan_{layout}")
    else:
        scanner = {"librispeech": scan_librispeech, "timit": scan_timit, "csv": scan_csv}.get(layout)
    if scanner is None:
        raise ValueError(f"unknown corpus layout {layout!r}: choose auto or one of {LAYOUTS}")
    utts = scanner(corpus_dir)
    return assign_splits(utts, seed)


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
                                 "valid speakers from train")
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
            raise ValueError(f"only {len(speakers)} speakers of gender {gender!r}: need at least 3 to split by speaker")
        order = rng_for(seed, "speaker-split", gender).permutation(len(speakers))
        n_valid = max(1, round(len(speakers) * fractions["valid"]))
        n_test = max(1, round(len(speakers) * fractions["test"]))
        for rank, idx in enumerate(order):
            split_of[speakers[idx]] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return [dataclasses.replace(u, split=split_of[u.speaker]) for u in utterances]


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


def corpus_root(corpus_dir: "str | Path | CorpusRoots", corpus: str) -> Path:
    """The folder an utterance's (or a spec source's) ``path`` is relative to: ``corpus_dir`` for a single corpus,
    ``corpus_dir[corpus]`` for a manifest of several (:func:`union_manifests`).

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


CorpusRoots = dict  # corpus name -> folder, for manifests of several corpora


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
