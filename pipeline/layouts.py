"""Corpus layouts of the speech field beyond LibriSpeech, TIMIT and CSV: Kaldi data directories and lhotse
manifests. Each scanner returns :class:`~spatialdc.pipeline.corpus.Utterance` rows with paths relative to the corpus
folder, the corpus's own split where it has one, and speaker ages where it gives them.

- **Kaldi** (the ``data/`` directories of Kaldi recipes, read as lhotse's ``kaldi.py`` reads them): ``wav.scp``
  (``RECORDING PATH``, paths relative to the corpus folder or absolute; commands ending in ``|`` are refused),
  ``utt2spk``, ``spk2gender`` (required here: mixtures are planned by gender), optional ``spk2age`` and
  ``segments`` (``UTT RECORDING START END`` in seconds, END -1 = to the end of the recording). Without
  ``segments`` every ``utt2spk`` entry is a whole recording of the same id. A corpus folder is either one data
  directory or holds several (``train/``, ``dev/`` or ``valid/``, ``test/``: the folder name gives the split).
- **lhotse**: a folder with one RecordingSet and one SupervisionSet manifest (``*recordings*.jsonl[.gz]`` and
  ``*supervisions*.jsonl[.gz]``, as lhotse's recipes write them); every supervision with a speaker and a gender is an
  utterance, its ``custom["split"]`` (if any) its split. lhotse (``pip install lhotse``) reads them.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from .corpus import SPLITS, Utterance

KALDI_SPLIT_NAMES = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}
_GENDER_WORDS = {"f": "f", "female": "f", "m": "m", "male": "m"}


def kaldi_data_dirs(root: str | Path) -> list[Path]:
    """The Kaldi data directories of a corpus folder: itself if it holds ``wav.scp``, else its sub-folders that do."""
    root = Path(root)
    if (root / "wav.scp").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "wav.scp").is_file())


def _read_table(path: Path, min_fields: int, required: bool = True) -> list[tuple[int, list[str]]]:
    """Lines of a Kaldi table as (line number, whitespace-split fields); blank lines skipped.

    Raises:
        FileNotFoundError: a required file is missing (the message names it). ValueError: a short line.
    """
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path} not found: a Kaldi data directory needs it")
        return []
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_fields:
            raise ValueError(f"{path}:{lineno}: expected at least {min_fields} fields, got {line!r}")
        out.append((lineno, fields))
    return out


def scan_kaldi(corpus_dir: str | Path) -> list[Utterance]:
    """Scan a corpus folder of Kaldi data directories (see the module docstring).

    Returns:
        utterances sorted by id; ``split`` from the data directory's name (train, dev/valid, test) or empty;
        ``age`` from ``spk2age`` (-1 where absent); ``start_sample`` from ``segments``.

    Raises:
        FileNotFoundError: no data directory, a missing ``wav.scp``, ``utt2spk`` or ``spk2gender`` (named with the
            fix), or an audio file listed but missing (with the ``wav.scp`` line).
        ValueError: a piped ``wav.scp`` entry, an utterance whose speaker has no gender, an unknown gender, a
            recording or utterance listed twice, a segment past the end of its recording, a multi-channel file.
    """
    root = Path(corpus_dir)
    dirs = kaldi_data_dirs(root)
    if not dirs:
        raise FileNotFoundError(f"{root}: no Kaldi data directory (a folder with wav.scp) in it or under it")
    out: list[Utterance] = []
    seen: dict[str, Path] = {}
    for ddir in dirs:
        split = KALDI_SPLIT_NAMES.get(ddir.name.lower(), "") if ddir != root else ""
        for u in _scan_kaldi_dir(root, ddir, split):
            if u.utterance_id in seen:
                raise ValueError(f"utterance {u.utterance_id} is listed in {seen[u.utterance_id]} and in {ddir}; "
                                 f"utterance ids must be unique across the corpus")
            seen[u.utterance_id] = ddir
            out.append(u)
    return sorted(out, key=lambda u: u.utterance_id)


def _scan_kaldi_dir(root: Path, ddir: Path, split: str) -> list[Utterance]:
    gender_file = ddir / "spk2gender"
    if not gender_file.is_file():
        raise FileNotFoundError(f"{gender_file} not found: mixtures are planned by gender, so a Kaldi data directory "
                                f"needs spk2gender (lines 'SPEAKER f' or 'SPEAKER m'); write it, or describe the "
                                f"corpus with a CSV of path,speaker,gender (--layout csv)")
    recordings: dict[str, tuple[Path, int]] = {}
    for lineno, fields in _read_table(ddir / "wav.scp", 2):
        rec, spec = fields[0], " ".join(fields[1:])
        if spec.endswith("|") or len(fields) > 2:
            raise ValueError(f"{ddir / 'wav.scp'}:{lineno}: {spec!r} is a command, not a file; convert the audio to "
                             f"WAV or FLAC files and list their paths")
        if rec in recordings:
            raise ValueError(f"{ddir / 'wav.scp'}:{lineno}: recording {rec} is listed twice")
        path = Path(spec) if Path(spec).is_absolute() else root / spec  # relative to the corpus root, not the cwd
        recordings[rec] = (path, lineno)
    genders = {}
    for lineno, fields in _read_table(gender_file, 2):
        g = _GENDER_WORDS.get(fields[1].lower())
        if g is None:
            raise ValueError(f"{gender_file}:{lineno}: gender {fields[1]!r} of speaker {fields[0]} is not f or m")
        genders[fields[0]] = g
    ages = {}
    for lineno, fields in _read_table(ddir / "spk2age", 2, required=False):
        try:
            ages[fields[0]] = int(float(fields[1]))
        except ValueError:
            raise ValueError(f"{ddir / 'spk2age'}:{lineno}: age {fields[1]!r} is not a number") from None
    utt2spk = {}
    for lineno, fields in _read_table(ddir / "utt2spk", 2):
        if fields[0] in utt2spk:
            raise ValueError(f"{ddir / 'utt2spk'}:{lineno}: utterance {fields[0]} is listed twice")
        if fields[1] not in genders:
            raise ValueError(f"{ddir / 'utt2spk'}:{lineno}: speaker {fields[1]} of utterance {fields[0]} has no "
                             f"gender in {gender_file}; add it there")
        utt2spk[fields[0]] = fields[1]
    segments = _read_table(ddir / "segments", 4, required=False)
    if segments:
        items = [(f[0], f[1], float(f[2]), float(f[3]), lineno) for lineno, f in segments]
    else:
        items = [(utt, utt, 0.0, -1.0, 0) for utt in utt2spk]
    infos: dict[str, sf._SoundFileInfo] = {}
    out = []
    for utt, rec, start_s, end_s, lineno in items:
        where = f"{ddir / 'segments'}:{lineno}" if segments else f"{ddir / 'utt2spk'}"
        if utt not in utt2spk:
            raise ValueError(f"{where}: utterance {utt} has no speaker in {ddir / 'utt2spk'}")
        if rec not in recordings:
            raise ValueError(f"{where}: recording {rec} of utterance {utt} is not in {ddir / 'wav.scp'}")
        path, scp_line = recordings[rec]
        if rec not in infos:
            if not path.is_file():
                raise FileNotFoundError(f"{ddir / 'wav.scp'}:{scp_line}: audio {path} of recording {rec} not found; "
                                        f"restore the file or remove its line (paths are relative to {root})")
            try:
                infos[rec] = sf.info(str(path))
            except Exception as exc:
                raise ValueError(f"cannot read audio file {path} ({ddir / 'wav.scp'}:{scp_line}): {exc}") from exc
            if infos[rec].channels != 1:
                raise ValueError(f"{path}: {infos[rec].channels} channels; corpus utterances must be mono")
        info = infos[rec]
        sr, frames = int(info.samplerate), int(info.frames)
        start = int(round(start_s * sr))
        end = frames if end_s < 0 else int(round(end_s * sr))
        if not 0 <= start < end <= frames:
            raise ValueError(f"{where}: segment {start_s}-{end_s} s of {utt} lies outside recording {rec} "
                             f"({frames / sr:.2f} s)")
        spk = utt2spk[utt]
        out.append(Utterance(utt, path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
                             spk, genders[spk], end - start, sr, split, "kaldi", start_sample=start,
                             age=ages.get(spk, -1)))
    return out


def lhotse_manifests(root: str | Path) -> tuple[Path, Path] | None:
    """(recordings, supervisions) manifest files of a corpus folder, or None if it has not exactly one of each.

    Raises:
        ValueError: several recording or supervision manifests (ambiguous).
    """
    root = Path(root)
    recs = sorted(p for p in root.glob("*recordings*.jsonl*") if p.is_file())
    sups = sorted(p for p in root.glob("*supervisions*.jsonl*") if p.is_file())
    if not recs and not sups:
        return None
    if len(recs) != 1 or len(sups) != 1:
        raise ValueError(f"{root}: expected one lhotse recordings and one supervisions manifest, found "
                         f"{[p.name for p in recs]} and {[p.name for p in sups]}; keep one of each (merge parts with "
                         f"lhotse combine)")
    return recs[0], sups[0]


def scan_lhotse(corpus_dir: str | Path) -> list[Utterance]:
    """Scan a folder with a lhotse RecordingSet and SupervisionSet (see the module docstring).

    Raises:
        ImportError: lhotse is not installed (with the install command). FileNotFoundError: no manifests, or
        a recording's audio file missing. ValueError: a supervision without speaker or gender (the message names
        the manifest and the fix), a recording that is not one mono audio file, an unknown split.
    """
    try:
        from lhotse import RecordingSet, SupervisionSet
    except ImportError as exc:
        raise ImportError("reading lhotse manifests needs lhotse: pip install lhotse") from exc
    root = Path(corpus_dir)
    found = lhotse_manifests(root)
    if found is None:
        raise FileNotFoundError(f"{root}: no lhotse manifests (*recordings*.jsonl.gz, *supervisions*.jsonl.gz)")
    rec_path, sup_path = found
    recordings = RecordingSet.from_file(rec_path).to_eager()
    supervisions = SupervisionSet.from_file(sup_path).to_eager()
    if not isinstance(recordings, RecordingSet) or not isinstance(supervisions, SupervisionSet):
        raise ValueError(f"{rec_path} / {sup_path}: not a RecordingSet and a SupervisionSet")
    out = []
    for sup in supervisions:
        if not sup.speaker or not sup.gender:
            raise ValueError(f"{sup_path}: supervision {sup.id} has no {'speaker' if not sup.speaker else 'gender'}; "
                             f"mixtures are planned by speaker and gender: add them to the SupervisionSet (e.g. "
                             f"from the corpus's speaker list) and save it again")
        gender = _GENDER_WORDS.get(str(sup.gender).lower())
        if gender is None:
            raise ValueError(f"{sup_path}: supervision {sup.id} has gender {sup.gender!r}, not f/m/female/male")
        rec = recordings[sup.recording_id]
        if len(rec.sources) != 1 or rec.sources[0].type != "file" or rec.num_channels != 1:
            raise ValueError(f"{rec_path}: recording {rec.id} is not one mono audio file (sources "
                             f"{[s.type for s in rec.sources]}, {rec.num_channels} channels)")
        source = Path(rec.sources[0].source)
        path = source if source.is_absolute() else root / source
        if not path.is_file():
            raise FileNotFoundError(f"{rec_path}: audio {path} of recording {rec.id} not found")
        custom = sup.custom or {}
        split = str(custom.get("split", "")).lower()
        split = KALDI_SPLIT_NAMES.get(split, split)
        if split and split not in SPLITS:
            raise ValueError(f"{sup_path}: supervision {sup.id} has split {split!r}, not one of {SPLITS}")
        start = int(round(sup.start * rec.sampling_rate))
        num = min(int(round(sup.duration * rec.sampling_rate)), rec.num_samples - start)
        age = custom.get("age", -1)
        out.append(Utterance(sup.id, path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
                             str(sup.speaker), gender, num, int(rec.sampling_rate), split, "lhotse",
                             start_sample=start, age=int(age) if age is not None else -1))
    if not out:
        raise FileNotFoundError(f"{sup_path} holds no supervisions")
    return sorted(out, key=lambda u: u.utterance_id)

