"""LibriSpeech's layout: audio named ``SPEAKER-CHAPTER-UTT.flac`` (flat or nested), genders from ``SPEAKERS.TXT``
at the top of the corpus folder (the bundled ``corpora/librispeech-clips`` is one)."""

from __future__ import annotations

import re
from pathlib import Path

from ..audio import mono_file_info
from ..manifest import GENDERS, Utterance

AUDIO_SUFFIXES = (".flac", ".wav")


def detect(root: Path) -> bool:
    """A LibriSpeech-layout folder has ``SPEAKERS.TXT`` at its top."""
    return (root / "SPEAKERS.TXT").is_file()


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


def scan_librispeech(corpus_dir: str | Path, unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan a LibriSpeech-layout folder: audio named ``SPEAKER-CHAPTER-UTT.flac`` (flat or nested), genders
    from ``SPEAKERS.TXT`` at its top.

    Args:
        corpus_dir: the corpus folder.

    Returns:
        utterances sorted by id, ``split`` empty.

    ``unreadable``: a list to note audio files that cannot be opened in, leaving them out, instead of raising
    (:func:`spatialdc.pipeline.layouts.scan_layout`).

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
        info = mono_file_info(p, unreadable)
        if info is None:
            continue
        out.append(Utterance(p.stem, p.relative_to(root).as_posix(), speaker, genders[speaker],
                             int(info.frames), int(info.samplerate)))
    return out
