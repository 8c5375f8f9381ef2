"""Label sidecars: new label fields of a dataset's shards, written beside them without touching them.

A relabeling (``dcrelabel --name NAME DIR``, :mod:`spatialdc.eval.relabel`) writes, for every shard
``DIR/<split>-NNNNN.h5``, the file ``DIR/labels-NAME/<split>-NNNNN.labels.h5`` (a folder of its own: globs of
shards such as ``DIR/train-*.h5`` or ``data/*/train-*.h5`` never match a sidecar, and ``dcgen verify`` sees no
stray ``*.h5`` in the dataset folder). Sidecar version 1:

==========  =========  =====  ==============================================================
dataset     shape      dtype  meaning
==========  =========  =====  ==============================================================
``labels``  (M, F, T)  uint8  one label per bin, 0..N-1, in the shard's mixture order and bins
==========  =========  =====  ==============================================================

Attributes: ``kind`` (``"spatialdc-labels"``), ``sidecar_version``, ``name``, ``shard`` (the shard's file name),
``shard_sha256`` (SHA-256 of the shard's bytes when it was labeled), ``specs_sha256`` (the shard's), ``num_mixtures``,
``provenance`` (JSON: teacher checkpoint and the SHA-256 of its weights, rule, settings, command, package versions)
and ``attrs_sha256`` (of the others, :func:`~spatialdc.pipeline.shard_checks.attrs_sha256`). The labels carry HDF5's
``fletcher32`` per chunk and are compressed with bitshuffle + zstd, as the shards' arrays. One writer
(:func:`write_sidecar`: temporary name, then rename).

Readers ask a :class:`~spatialdc.pipeline.shards.ShardSet` for the field ``"labels:NAME"`` (:func:`label_field`);
:func:`open_sidecar` checks the sidecar against the shard first (once per process and file: the shard's SHA-256 is
computed once) and raises :class:`LabelsUnavailable`, naming the file and the command that makes it, when the
sidecar is missing, damaged, or was made for other bytes of the shard (stale: the shard was re-rendered).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from .atomic import atomic_path
from .shard_checks import ShardReadError, attrs_sha256, file_signature
from .shard_index import file_sha256

SIDECAR_KIND = "spatialdc-labels"
SIDECAR_VERSION = 1
FIELD_PREFIX = "labels:"
RELABEL_COMMAND = "dcrelabel"  # python -m spatialdc.eval.dcrelabel
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_COMPRESSION = hdf5plugin.Bitshuffle(cname="zstd", clevel=3)  # as the shards' arrays (spatialdc.pipeline.shards)
_LIBVER = ("v110", "v110")  # checksummed metadata, as the shards
_SHARD_SHA256: dict[tuple, str] = {}  # process-wide: file signature -> SHA-256 of the shard's bytes


class LabelsUnavailable(ShardReadError):
    """A label field that cannot be read for a shard: its sidecar is missing, damaged or stale. The message names
    the file and the command that makes it."""


def check_label_name(name: str) -> str:
    """A label field's name (``boot1``): letters, digits, ``_ . -``, at most 64 characters, starting with a letter
    or digit.

    Raises:
        ValueError: another name (naming it and what is allowed).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"label name {name!r}: use letters, digits, '_', '.' or '-' (at most 64, starting with a "
                         f"letter or digit), e.g. boot1")
    return name


def label_field(name: str) -> str:
    """The field a ShardSet reads for label name ``name``: ``"labels:" + name``."""
    return FIELD_PREFIX + check_label_name(name)


def sidecar_path(shard: str | Path, name: str) -> Path:
    """``DIR/labels-NAME/<shard stem>.labels.h5`` for shard ``DIR/<shard stem>.h5``."""
    shard = Path(shard)
    return shard.parent / f"labels-{check_label_name(name)}" / f"{shard.stem}.labels.h5"


def shard_sha256(shard: str | Path) -> str:
    """SHA-256 of a shard's bytes, computed once per process and file version (:func:`file_signature`)."""
    key = file_signature(shard)
    if key not in _SHARD_SHA256:
        _SHARD_SHA256[key] = file_sha256(shard)
    return _SHARD_SHA256[key]


def write_sidecar(path: str | Path, name: str, labels: np.ndarray, shard: str | Path, specs_sha256: str,
                  provenance: dict) -> None:
    """Write a label sidecar atomically (the module table).

    Args:
        path: where (:func:`sidecar_path`). name: the label name. labels: (M, F, T) integers in 0..255.
        shard: the shard the labels belong to (its SHA-256 and file name are recorded). specs_sha256: its attribute.
        provenance: JSON-serializable, how the labels were made.

    Raises:
        ValueError: labels that are not (M, F, T) with M >= 1, or outside 0..255.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] < 1 or labels.min() < 0 or labels.max() > 255:
        raise ValueError(f"labels for {shard} must be (M, F, T) in 0..255 with M >= 1, got {labels.shape}")
    attrs = {"kind": SIDECAR_KIND, "sidecar_version": SIDECAR_VERSION, "name": check_label_name(name),
             "shard": Path(shard).name, "shard_sha256": shard_sha256(shard), "specs_sha256": specs_sha256,
             "num_mixtures": int(labels.shape[0]), "provenance": json.dumps(provenance, sort_keys=True)}
    attrs["attrs_sha256"] = attrs_sha256(attrs)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", rdcc_nbytes=0, libver=_LIBVER) as h5:
            h5.create_dataset("labels", data=labels.astype(np.uint8), chunks=(1,) + labels.shape[1:],
                              track_times=False, fletcher32=True, **_COMPRESSION)
            h5.attrs.update(attrs)


def read_sidecar_attrs(path: str | Path) -> dict | None:
    """A sidecar's attributes (``provenance`` parsed), or None for a file that is missing, unreadable, of another
    kind or version, or whose attributes do not match their checksum."""
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            rows = h5["labels"].shape[0]
    except (OSError, KeyError, ValueError):
        return None
    if (attrs.get("kind") != SIDECAR_KIND or int(attrs.get("sidecar_version", -1)) != SIDECAR_VERSION
            or attrs_sha256(attrs) != attrs.get("attrs_sha256") or rows != int(attrs.get("num_mixtures", -1))):
        return None
    out = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
    out["provenance"] = json.loads(out["provenance"])
    return out


def sidecar_is_current(path: str | Path, shard: str | Path) -> bool:
    """Whether ``path`` is a complete, intact sidecar made for the shard's present bytes."""
    attrs = read_sidecar_attrs(path)
    return attrs is not None and attrs["shard_sha256"] == shard_sha256(shard)


def _remake_hint(shard: Path, name: str, attrs: dict | None) -> str:
    recorded = (attrs or {}).get("provenance", {}).get("command")
    command = (shlex.join(recorded) if recorded else
               f"{RELABEL_COMMAND} --checkpoint TEACHER.pt --name {name} {shlex.quote(str(shard.parent))}")
    return f"make it with `{command}` (it labels only the shards whose labels are missing or stale)"


def open_sidecar(shard: str | Path, name: str, num_mixtures: int) -> h5py.File:
    """Open the sidecar of label ``name`` of a shard holding ``num_mixtures`` mixtures, checked against the shard.

    Returns:
        the open file (read-only); its ``labels`` dataset is (M, F, T) uint8.

    Raises:
        LabelsUnavailable: no sidecar, a damaged one, one made for other bytes of the shard (stale) or of another
            count; the message names the file and the command that makes it.
    """
    shard = Path(shard)
    path = sidecar_path(shard, name)
    if not path.is_file():
        raise LabelsUnavailable(f"no labels {name!r} for shard {shard}: {path} does not exist; "
                                f"{_remake_hint(shard, name, None)}")
    attrs = read_sidecar_attrs(path)
    if attrs is None:
        raise LabelsUnavailable(f"label sidecar {path} is damaged or incomplete; delete it and "
                                f"{_remake_hint(shard, name, None)}")
    if attrs["shard_sha256"] != shard_sha256(shard) or attrs["num_mixtures"] != num_mixtures:
        raise LabelsUnavailable(f"label sidecar {path} is stale: it was made for other bytes of {shard} (the shard "
                                f"was rendered again or changed); {_remake_hint(shard, name, attrs)}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise LabelsUnavailable(f"label sidecar {path} cannot be opened ({exc}); "
                                f"{_remake_hint(shard, name, attrs)}") from exc
