"""A corpus described by a CSV list: one row per audio file with its ``path``, ``speaker`` and ``gender`` (and
optionally its ``split``), for corpora of no known layout."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..audio import mono_file_info
from ..manifest import GENDER_WORDS, SPLITS, Utterance


def detect(root: Path) -> bool:
    """A CSV-described folder has a CSV file at its top."""
    return any(root.glob("*.csv"))


def scan_csv(corpus_dir: str | Path, csv_path: str | Path | None = None,
             unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan a folder described by a CSV with columns ``path, speaker, gender`` (paths relative to the folder;
    gender F/M/female/male; an optional ``split`` column of train/valid/test keeps the user's split).

    ``csv_path`` defaults to the only ``*.csv`` file at the top of ``corpus_dir``.

    ``unreadable``: a list to note audio files that cannot be opened in, leaving them out, instead of raising
    (:func:`spatialdc.pipeline.layouts.scan_layout`).

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
            gender = GENDER_WORDS.get(row["gender"].strip().lower())
            if gender is None:
                raise ValueError(f"{csv_path}:{rowno}: gender {row['gender']!r} is not F, M, female or male")
            split = (row.get("split") or "").strip().lower()
            if split and split not in SPLITS:
                raise ValueError(f"{csv_path}:{rowno}: split {split!r} is not one of {SPLITS}")
            p = root / row["path"].strip()
            if not p.is_file():
                raise FileNotFoundError(f"{csv_path}:{rowno}: audio {p} not found")
            info = mono_file_info(p, unreadable)
            if info is None:
                continue
            rel = p.relative_to(root).as_posix()
            uid = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.rsplit(".", 1)[0])
            out.append(Utterance(uid, rel, row["speaker"].strip(), gender, int(info.frames), int(info.samplerate),
                                 split, "csv"))
    if not out:
        raise FileNotFoundError(f"{csv_path} lists no audio")
    return sorted(out, key=lambda u: u.utterance_id)
