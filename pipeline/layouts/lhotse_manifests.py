"""lhotse's layout: a folder with one RecordingSet and one SupervisionSet manifest (``*recordings*.jsonl[.gz]`` and
``*supervisions*.jsonl[.gz]``, as lhotse's recipes write them); every supervision with a speaker and a gender is an
utterance, its ``custom["split"]`` (if any) its split, its ``custom["age"]`` (if any) its speaker's age. lhotse
(``pip install lhotse``) reads them.
"""

from __future__ import annotations

from pathlib import Path

from ..manifest import GENDER_WORDS, SPLIT_WORDS, SPLITS, Utterance


def detect(root: Path) -> bool:
    """A lhotse-layout folder has a recordings and a supervisions manifest (raises ValueError if several)."""
    return lhotse_manifests(root) is not None


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


def scan_lhotse(corpus_dir: str | Path, unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan a folder with a lhotse RecordingSet and SupervisionSet (see the module docstring).

    ``unreadable`` is accepted for a uniform signature: this layout opens no audio (``dcgen manifest`` decodes
    every file afterwards).

    Raises:
        ImportError: lhotse is not installed (with the install command). FileNotFoundError: no manifests, or
        a recording's audio file missing. ValueError: a supervision without speaker or gender (the message names
        the manifest and the fix), a recording that is not one mono audio file, an unknown split.
    """
    try:  # lhotse is an optional dependency (the "lhotse" extra): imported only when its layout is scanned
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
        gender = GENDER_WORDS.get(str(sup.gender).lower())
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
        split = SPLIT_WORDS.get(split, split)
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
