"""Kaldi's layout: the ``data/`` directories of Kaldi recipes, read as lhotse's ``kaldi.py`` reads them.

``wav.scp`` (``RECORDING PATH``, paths relative to the corpus folder or absolute; commands ending in ``|`` are
refused), ``utt2spk``, ``spk2gender`` (required here: mixtures are planned by gender), optional ``spk2age`` and
``segments`` (``UTT RECORDING START END`` in seconds, END -1 = to the end of the recording). Without ``segments``
every ``utt2spk`` entry is a whole recording of the same id. A corpus folder is either one data directory or holds
several (``train/``, ``dev/`` or ``valid/``, ``test/``: the folder name gives the split). Errors name the file, the
line and the id.
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from ..audio import UnreadableAudio, warn_if_truncated
from ..manifest import GENDER_WORDS, SPLIT_WORDS, Utterance


def detect(root: Path) -> bool:
    """A Kaldi-layout folder holds ``wav.scp``, or sub-folders that do."""
    return bool(kaldi_data_dirs(root))


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


def scan_kaldi(corpus_dir: str | Path, unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan a corpus folder of Kaldi data directories (see the module docstring).

    Returns:
        utterances sorted by id; ``split`` from the data directory's name (train, dev/valid, test) or empty;
        ``age`` from ``spk2age`` (-1 where absent); ``start_sample`` from ``segments``.

    ``unreadable``: a list to note audio files that cannot be opened in, leaving them out, instead of raising
    (:func:`spatialdc.pipeline.layouts.scan_layout`).

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
        split = SPLIT_WORDS.get(ddir.name.lower(), "") if ddir != root else ""
        for u in _scan_kaldi_dir(root, ddir, split, unreadable):
            if u.utterance_id in seen:
                raise ValueError(f"utterance {u.utterance_id} is listed in {seen[u.utterance_id]} and in {ddir}; "
                                 f"utterance ids must be unique across the corpus")
            seen[u.utterance_id] = ddir
            out.append(u)
    return sorted(out, key=lambda u: u.utterance_id)


def _scan_kaldi_dir(root: Path, ddir: Path, split: str, unreadable: list[str] | None = None) -> list[Utterance]:
    """The utterances of one data directory ``ddir`` (paths relative to the corpus folder ``root``); recordings
    that cannot be opened are noted in ``unreadable`` and left out if it is a list."""
    gender_file = ddir / "spk2gender"
    if not gender_file.is_file():
        raise FileNotFoundError(f"{gender_file} not found: mixtures are planned by gender, so a Kaldi data directory "
                                f"needs spk2gender (lines 'SPEAKER f' or 'SPEAKER m'); write it, or describe the "
                                f"corpus with a CSV of path,speaker,gender (--layout csv)")
    recordings = _read_wav_scp(root, ddir)
    genders, ages = _read_speakers(ddir)
    utt2spk = _read_utt2spk(ddir, genders)
    segments = _read_table(ddir / "segments", 4, required=False)
    if segments:
        items = [(f[0], f[1], float(f[2]), float(f[3]), lineno) for lineno, f in segments]
    else:
        items = [(utt, utt, 0.0, -1.0, 0) for utt in utt2spk]
    infos: dict[str, sf._SoundFileInfo | None] = {}
    out = []
    for utt, rec, start_s, end_s, lineno in items:
        where = f"{ddir / 'segments'}:{lineno}" if segments else f"{ddir / 'utt2spk'}"
        if utt not in utt2spk:
            raise ValueError(f"{where}: utterance {utt} has no speaker in {ddir / 'utt2spk'}")
        if rec not in recordings:
            raise ValueError(f"{where}: recording {rec} of utterance {utt} is not in {ddir / 'wav.scp'}")
        path, scp_line = recordings[rec]
        if rec not in infos:
            infos[rec] = _recording_info(root, ddir, rec, path, scp_line, unreadable)
        if infos[rec] is None:
            continue
        sr, frames = int(infos[rec].samplerate), int(infos[rec].frames)
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


def _read_wav_scp(root: Path, ddir: Path) -> dict[str, tuple[Path, int]]:
    """Recording id -> (audio path, its line in ``wav.scp``); relative paths are taken from the corpus folder."""
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
    return recordings


def _read_speakers(ddir: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(speaker -> ``"f"`` / ``"m"`` from ``spk2gender``, speaker -> age in years from the optional ``spk2age``)."""
    gender_file = ddir / "spk2gender"
    genders = {}
    for lineno, fields in _read_table(gender_file, 2):
        g = GENDER_WORDS.get(fields[1].lower())
        if g is None:
            raise ValueError(f"{gender_file}:{lineno}: gender {fields[1]!r} of speaker {fields[0]} is not f or m")
        genders[fields[0]] = g
    ages = {}
    for lineno, fields in _read_table(ddir / "spk2age", 2, required=False):
        try:
            ages[fields[0]] = int(float(fields[1]))
        except ValueError:
            raise ValueError(f"{ddir / 'spk2age'}:{lineno}: age {fields[1]!r} is not a number") from None
    return genders, ages


def _read_utt2spk(ddir: Path, genders: dict[str, str]) -> dict[str, str]:
    """Utterance id -> speaker id from ``utt2spk``; every speaker must have a gender."""
    utt2spk = {}
    for lineno, fields in _read_table(ddir / "utt2spk", 2):
        if fields[0] in utt2spk:
            raise ValueError(f"{ddir / 'utt2spk'}:{lineno}: utterance {fields[0]} is listed twice")
        if fields[1] not in genders:
            raise ValueError(f"{ddir / 'utt2spk'}:{lineno}: speaker {fields[1]} of utterance {fields[0]} has no "
                             f"gender in {ddir / 'spk2gender'}; add it there")
        utt2spk[fields[0]] = fields[1]
    return utt2spk


def _recording_info(root: Path, ddir: Path, rec: str, path: Path, scp_line: int,
                    unreadable: list[str] | None = None) -> sf._SoundFileInfo | None:
    """soundfile's description of recording ``rec``, checked to exist and be mono (errors name its wav.scp line);
    None for a file that cannot be opened when ``unreadable`` is a list (noted there)."""
    if not path.is_file():
        raise FileNotFoundError(f"{ddir / 'wav.scp'}:{scp_line}: audio {path} of recording {rec} not found; "
                                f"restore the file or remove its line (paths are relative to {root})")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        if unreadable is None:
            raise UnreadableAudio(path, f"{exc} ({ddir / 'wav.scp'}:{scp_line})") from exc
        unreadable.append(f"{path}: {exc} ({ddir / 'wav.scp'}:{scp_line})")
        return None
    if info.channels != 1:
        raise ValueError(f"{path}: {info.channels} channels; corpus utterances must be mono")
    warn_if_truncated(path, info.frames, info.samplerate)
    return info
