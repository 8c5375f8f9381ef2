"""Output paths checked before any work: a folder to write into must not be a file or lie under one, and a file
to write must not be a folder (the messages name the path, the file in the way and the fix)."""

from __future__ import annotations

import os
from pathlib import Path


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a Path, checked to be a folder that exists or can be made.

    Raises:
        ValueError: ``path`` is a file, lies under a file, or under a folder this process may not write in.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; give a folder (it is made if missing)")
    _check_parents(path, option)
    return path


def check_out_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a Path, checked to be a file that can be written (made or replaced).

    Raises:
        ValueError: ``path`` is a folder, lies under a file, or under a folder this process may not write in.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name such as {path / 'out.csv'}")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` is a writable folder (the rest is made on writing)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path} lies under {parent}, which is a file; give a path under a folder")
            if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{option} {path}: cannot write in {parent} (permission denied); give a folder "
                                 f"you can write in")
            return
