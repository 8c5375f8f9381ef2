"""TIMIT's LDC layout: ``TRAIN/`` and ``TEST/``, then ``DR1..DR8/``, then one folder per speaker whose first letter
is the gender, then ``*.WAV`` files."""

from __future__ import annotations

from pathlib import Path

from ..audio import mono_file_info
from ..manifest import GENDERS, Utterance


def detect(root: Path) -> bool:
    """A TIMIT-layout folder has ``TRAIN/`` and ``TEST/`` folders (names in any case)."""
    return {"train", "test"} <= {p.name.lower() for p in root.iterdir() if p.is_dir()}


def scan_timit(corpus_dir: str | Path, unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan TIMIT in its LDC layout: ``TRAIN/`` and ``TEST/``, then ``DR1..DR8/``, then one folder per speaker whose
    first letter is the gender (``FCJF0``, ``MDAB0``), then ``*.WAV`` (NIST SPHERE or RIFF; names in any case).

    Returns:
        utterances sorted by id (``SPEAKER-SENTENCE``, e.g. ``FCJF0-SA1``), ``split`` = ``"train"`` or ``"test"``
        (TIMIT's own speaker split; :func:`spatialdc.pipeline.corpus.assign_splits` later moves some training
        speakers to valid).

    ``unreadable``: a list to note audio files that cannot be opened in, leaving them out, instead of raising
    (:func:`spatialdc.pipeline.layouts.scan_layout`).

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
            info = mono_file_info(p, unreadable)
            if info is None:
                continue
            out.append(Utterance(f"{speaker_dir.upper()}-{p.stem.upper()}", p.relative_to(root).as_posix(),
                                 speaker_dir.upper(), gender, int(info.frames), int(info.samplerate), split, "timit"))
    if not out:
        raise FileNotFoundError(f"no .WAV files under {tops['train']} or {tops['test']}")
    return sorted(out, key=lambda u: u.utterance_id)
