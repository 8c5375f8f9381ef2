"""The building blocks of the separation reports' pages (:mod:`spatialdc.eval.html_report`): plain HTML filled
into ``report_template.html``, escaped text, audio tags, 16-bit WAVs and a folder that appears whole or not at all."""

from __future__ import annotations

import contextlib
import html
import os
import shlex
import shutil
import string
import tempfile
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf

from spatialdc.pipeline.provenance import command_line

from .recording import MODEL_SAMPLE_RATE

TEMPLATE = "report_template.html"


def escape(value) -> str:
    """``str(value)`` with HTML's special characters escaped (quotes included)."""
    return html.escape(str(value))


def db_text(value: float) -> str:
    """A dB value as the page shows it: the CSV's 4 decimals, then 2, so the page and the CSV agree exactly."""
    return f"{float(f'{value:.4f}'):.2f}"


def command_text(argv: Sequence[str]) -> str:
    """A command line as a person would type it: the program's name without its folder."""
    return shlex.join(command_line(argv))


def provenance_html(items: Sequence[tuple[str, str]]) -> str:
    """(name, value) pairs as a definition list: how a page was made."""
    return '<dl class="prov">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def audio_tag(src: str) -> str:
    """An audio player for the WAV at ``src`` (a path relative to the page)."""
    return f'<audio controls preload="metadata" src="{escape(src)}"></audio>'


def fill_page(title: str, heading: str, body: str) -> str:
    """The page: ``report_template.html`` (package data of spatialdc.eval) with the title and heading (escaped
    here) and ``body`` (HTML) filled in."""
    template = string.Template(resources.files("spatialdc.eval").joinpath(TEMPLATE).read_text(encoding="utf-8"))
    return template.substitute(title=escape(title), heading=escape(heading), body=body)


def write_wav(path: Path, x: np.ndarray, scale: float) -> None:
    """(S,) float samples times ``scale`` as a 16-bit PCM WAV at 16 kHz (the caller scales them into [-1, 1])."""
    sf.write(str(path), np.asarray(x, dtype=np.float64) * scale, MODEL_SAMPLE_RATE, subtype="PCM_16", format="WAV")


def safe_name(name: str) -> str:
    """``name`` as a folder name: characters other than letters, digits, ``-``, ``_`` and ``.`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@contextlib.contextmanager
def new_folder(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success it replaces ``final``, on error it is deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
