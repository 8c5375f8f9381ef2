"""Provenance: what every output records of how it was made (shards, index files, checkpoints, reports, model
cards): the installed versions of the packages that shape it, the command that made it, and a render's settings."""

from __future__ import annotations

import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Sequence

from .specs import RenderConfig

VERSIONED_PACKAGES = ("numpy", "scipy", "h5py", "scikit-learn", "soundfile", "torch", "dask", "mir_eval")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape our outputs (missing ones are left out)."""
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES + ("spatial-deep-clustering",):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """A command (default: this process's ``sys.argv``) as a user would type it: the program's name without the
    folder it was installed in (``dceval ...``, not ``/home/me/.venv/bin/dceval ...``), so outputs that record it
    carry no machine's paths."""
    argv = sys.argv if argv is None else argv
    return [Path(argv[0]).name, *argv[1:]] if argv else []


def config_provenance(config: RenderConfig, seed: int, corpus_dir: Path | dict, min_age: int = 0) -> dict:
    """What shards record of how they were made (options at their defaults since they were added are left out)."""
    render_config = asdict(config)
    defaults = asdict(RenderConfig())
    for key in ("speed_perturb", "rt60_range_s", "source_distance_range_m"):  # added later: recorded when set
        if render_config[key] == defaults[key]:
            del render_config[key]
    names = list(corpus_dir) if isinstance(corpus_dir, dict) else Path(corpus_dir).name
    out = {"render_config": render_config, "seed": seed, "corpus": names}
    if min_age:
        out["min_age"] = min_age
    return out
