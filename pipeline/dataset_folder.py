"""A dataset folder belongs to one set of render settings: ``dcgen render`` into a folder that holds shards made with
other settings (another mic spacing, seed, room, duration, sample rate) refuses and lists them, instead of replacing
the shards one by one; ``--overwrite`` clears the folder first.

The settings are read from the specs (every spec records them), so renders planned by ``dcgen render`` and renders
of ``--from-specs`` compare alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import h5py

from .specs import MixtureSpec, read_specs

log = logging.getLogger(__name__)

SETTINGS: dict[str, Callable[[MixtureSpec], object]] = {  # the option that sets it -> its value in a spec
    "--mic-spacing": lambda s: s.mic_spacing_m,
    "--seed": lambda s: s.seed,
    "--room": lambda s: s.room,
    "--duration": lambda s: round(s.num_samples / s.sample_rate, 6),
    "--sample-rate": lambda s: s.sample_rate,
    "speed of sound (m/s)": lambda s: s.sound_speed_m_s,
    "--speed-perturb": lambda s: bool(s.speeds),
}
DATASET_FILES = ("*.h5", "index.json", "label_quality.json", "*.jsonl", "*.jsonl.gz")


def existing_spec(ddir: Path) -> MixtureSpec | None:
    """A spec of what the folder holds: the first of its ``<split>.jsonl`` files (written when a render starts),
    else the first mixture of its first shard; None for a folder without either (or unreadable ones)."""
    for path in sorted(ddir.glob("*.jsonl")):
        try:
            found = read_specs(path)
        except (OSError, ValueError):
            continue
        if found:
            return found[0]
    for path in sorted(ddir.glob("*.h5")):
        try:
            with h5py.File(path, "r") as h5:
                text = h5["spec"][0]
            return MixtureSpec.from_json(text.decode("utf-8") if isinstance(text, bytes) else text)
        except Exception:  # a damaged or foreign file says nothing about the settings; resume re-renders it
            continue
    return None


def setting_differences(old: MixtureSpec, new: MixtureSpec) -> list[tuple[str, object, object]]:
    """(setting, old value, new value) of every setting of :data:`SETTINGS` that differs."""
    return [(name, get(old), get(new)) for name, get in SETTINGS.items() if get(old) != get(new)]


def claim_folder(ddir: Path, new: MixtureSpec, overwrite: bool = False) -> None:
    """Make sure ``ddir`` holds nothing of other settings before rendering specs like ``new`` into it; with
    ``overwrite``, delete the dataset files it holds (:data:`DATASET_FILES`) instead.

    Raises:
        ValueError: the folder holds a dataset of other settings (lists them, old and new, and the two ways out).
    """
    if overwrite:
        removed = [p for pattern in DATASET_FILES for p in ddir.glob(pattern) if p.is_file()]
        for p in removed:
            p.unlink()
        if removed:
            log.info("--overwrite: removed %d files of the dataset in %s", len(removed), ddir)
        return
    old = existing_spec(ddir)
    if old is None:
        return
    diff = setting_differences(old, new)
    if diff:
        listed = "; ".join(f"{name} {a} -> {b}" for name, a, b in diff)
        raise ValueError(f"{ddir} holds a dataset rendered with other settings ({listed}); nothing was changed. "
                         f"Render into another --out, or add --overwrite to replace it")
