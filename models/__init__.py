"""The models that ship with the project (``spatialdc.models``): ``NAME.pt``, an inference checkpoint (weights, input
statistics, config, provenance and its card, no optimizer state), and ``NAME.md``, the same card for people
(command, corpora, speakers, mixtures, CPU budget, validation and test numbers). Files are package data, opened with
``importlib.resources`` so they work from a wheel as from a clone.

    dcsep --list-models
    dcsep talk.wav                      # the default model, DEFAULT_MODEL
    dcsep talk.wav --model f2-bpd
    dceval --checkpoint models/fm2-bpd.pt --shards 'data/fm2/test-*.h5'
    python -m spatialdc.eval.ship runs/x/best.pt --name NAME ...   # ship a trained model (writes NAME.pt, NAME.md)

A data package: it imports nothing of spatialdc (the tools import it).
"""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path
from typing import Iterator

import torch

# pyproject.toml maps the folder models/ to spatialdc.models; nothing installs a bare "models"
if __name__ != "spatialdc.models":
    raise ImportError(f"import spatialdc.models, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")

# The model dcsep and Separator.from_pretrained() use without a name: any-bpd (trained on f2, m2 and fm2 mixtures)
# since its first version beat fm2-bpd's mean over the f2, m2 and fm2 validation sets (3.55 against 2.09 dB, paired
# +1.46 +- 0.20 dB over 900 mixtures; RESULTS.md, "Shipped models").
DEFAULT_MODEL = "any-bpd"


def names() -> list[str]:
    """Names of the shipped models (``NAME.pt`` files of this package), sorted."""
    return sorted(p.name[:-3] for p in resources.files(__name__).iterdir() if p.name.endswith(".pt"))


@contextlib.contextmanager
def model_path(name: str | None = None) -> Iterator[Path]:
    """A file-system path to shipped model ``name`` (default :data:`DEFAULT_MODEL`), valid inside the ``with``.

    Raises:
        ValueError: no shipped model of that name (the message lists those there are).
    """
    name = name or DEFAULT_MODEL
    ref = resources.files(__name__) / f"{name}.pt"
    if not ref.is_file():
        there = ", ".join(names()) or "none"
        raise ValueError(f"no shipped model {name!r}; shipped models: {there} (dcsep --list-models), or give a "
                         f"checkpoint of your own")
    with resources.as_file(ref) as path:
        yield path


def model_file(name: str) -> Path:
    """The file of shipped model ``name`` where the package lies on the file system (a clone or an installed
    wheel, not a zip): a lasting path, e.g. to record in a run's lineage.

    Raises:
        ValueError: no such model, or a package that is not on the file system (use :func:`model_path`).
    """
    with model_path(name) as path:
        pass
    if not path.is_file():  # as_file made a temporary copy (a zipped package) and removed it
        raise ValueError(f"shipped model {name} is not a file on disk here; use spatialdc.models.model_path")
    return path


def count_head_file(name: str) -> Path | None:
    """The count head shipped with model ``name`` (``NAME.count_head.json`` beside it, fitted by ``dccount`` on
    that file's weights), or None."""
    path = model_file(name).with_suffix(".count_head.json")
    return path if path.is_file() else None


def card(name: str) -> dict:
    """The card stored in shipped model ``name`` (written by ``python -m spatialdc.eval.ship``,
    :func:`spatialdc.eval.ship.make_card`).

    Raises:
        ValueError: no such model, or a model without a card.
    """
    with model_path(name) as path:
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or not state.get("card"):
        raise ValueError(f"shipped model {name} has no card")
    return state["card"]


def summary_line(name: str) -> str:
    """One line per model for ``dcsep --list-models``: name, target, training data, budget, its test numbers."""
    c = card(name)
    tests = "; ".join(f"{k} {v['sdri_mean']:.2f} dB" for k, v in c.get("test", {}).items()) or "no test numbers"
    default = " (default)" if name == DEFAULT_MODEL else ""
    campaign = c.get("campaign")
    budget = (f"{campaign['steps']} steps, {campaign['cpu_hours']:.1f} CPU-hours in {len(campaign['rows'])} shipped "
              f"version(s)" if campaign else c["budget"])
    count = "; count head" if c.get("count_head") else ""
    return (f"{name}{default}: DC {c['target'].upper()} trained on {c['training_data']}, {budget}; "
            f"test SDRi {tests}{count}")
