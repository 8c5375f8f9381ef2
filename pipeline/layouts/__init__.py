"""The corpus layouts ``dcgen manifest`` reads, in one registry. Each layout is a module with ``detect(root) ->
bool`` (does this folder have the layout?) and a scanner ``scan_<layout>(corpus_dir, unreadable=None) ->
list[Utterance]``
(:class:`~spatialdc.pipeline.manifest.Utterance` rows sorted by id, paths relative to the corpus folder, the corpus's
own split where it has one, speaker ages where it gives them; splitting is :mod:`spatialdc.pipeline.corpus`'s job).

===========  ====================================================  =========================
layout       recognized by                                         module
===========  ====================================================  =========================
librispeech  ``SPEAKERS.TXT`` at the top                           :mod:`.librispeech`
kaldi        ``wav.scp`` in the folder or in its sub-folders       :mod:`.kaldi`
lhotse       a recordings and a supervisions manifest              :mod:`.lhotse_manifests`
timit        ``TRAIN/`` and ``TEST/`` folders                      :mod:`.timit`
csv          a CSV of ``path, speaker, gender`` at the top         :mod:`.csv_list`
===========  ====================================================  =========================

To add a layout: write its module and add it to :data:`REGISTRY` at the place where detection should try it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..manifest import Utterance
from . import csv_list, kaldi, librispeech, lhotse_manifests, timit


@dataclass(frozen=True)
class Layout:
    """A corpus layout: how to recognize its folder, and its scanner."""

    detect: Callable[[Path], bool]
    scan: Callable[..., list[Utterance]]  # (corpus_dir, unreadable=None)


# In the order detect_layout tries them: Kaldi before TIMIT (Kaldi corpora also have train/ and test/ folders), a
# top-level CSV last (any folder may hold one).
REGISTRY: dict[str, Layout] = {
    "librispeech": Layout(librispeech.detect, librispeech.scan_librispeech),
    "kaldi": Layout(kaldi.detect, kaldi.scan_kaldi),
    "lhotse": Layout(lhotse_manifests.detect, lhotse_manifests.scan_lhotse),
    "timit": Layout(timit.detect, timit.scan_timit),
    "csv": Layout(csv_list.detect, csv_list.scan_csv),
}
LAYOUTS = tuple(REGISTRY)


def detect_layout(corpus_dir: str | Path) -> str:
    """The name of the first layout of :data:`REGISTRY` whose ``detect`` recognizes the folder.

    Raises:
        FileNotFoundError: no such folder, or none of the layouts (with what each needs).
        ValueError: an ambiguous lhotse folder (several recordings or supervisions manifests).
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist; pass --corpus DIR "
                                "(the bundled one is corpora/librispeech-clips)")
    for name, layout in REGISTRY.items():
        if layout.detect(root):
            return name
    raise FileNotFoundError(f"{root}: unknown corpus layout. LibriSpeech needs SPEAKERS.TXT, TIMIT needs TRAIN/ and "
                            "TEST/, Kaldi a wav.scp (in the folder or in train/, test/...), lhotse a recordings and a "
                            "supervisions manifest, a CSV corpus one top-level CSV of path,speaker,gender")


def scan_layout(corpus_dir: str | Path, layout: str = "auto", unreadable: list[str] | None = None) -> list[Utterance]:
    """Scan a corpus folder with the scanner of ``layout`` (``"auto"``: :func:`detect_layout`'s); ``split`` is the
    corpus's own where it has one, else empty. With ``unreadable`` (a list), audio files libsndfile cannot open are
    noted there (``"PATH: why"``) and left out instead of raising.

    Raises:
        FileNotFoundError / ValueError: as the layout's scanner, or an unknown ``layout`` (with the known ones).
    """
    if layout == "auto":
        layout = detect_layout(corpus_dir)
    if layout not in REGISTRY:
        raise ValueError(f"unknown corpus layout {layout!r}: choose auto or one of {LAYOUTS}")
    return REGISTRY[layout].scan(corpus_dir, unreadable=unreadable)
