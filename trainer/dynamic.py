"""Dynamic mixing: fresh training mixtures every epoch, drawn and rendered on the fly in the data loader.

The training shards serve as the template: their render config, seed, dataset (genders, N) and corpora (from the
shards' provenance and specs) say what to draw; every epoch draws as many new mixtures as the shards hold, from the
same corpora's training speakers. Mixture ``i`` of epoch ``e`` is the spec that
:meth:`~spatialdc.pipeline.planner.Planner.plan_one` draws from ``rng_for(seed, dataset, "train", "dynamic",
train_seed, index)`` with index = e x epoch size + i, rendered by :func:`~spatialdc.pipeline.render.render_mixture`
(the render of ``dcgen render`` of that spec, only the training target computed), so a run is reproducible and
resumes to the same weights, and any mixture it trained on can be rendered again with ``dcgen render --from-specs``
(:func:`DynamicMixingDataset.spec`). Zeghidour & Grangier's Wavesplit (2021) credit much of their generalization
to dynamic mixing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline import features
from spatialdc.pipeline.corpus import open_corpora
from spatialdc.pipeline.planner import Planner
from spatialdc.pipeline.render import render_mixture
from spatialdc.pipeline.shards import ShardSet
from spatialdc.pipeline.specs import MixtureSpec, RenderConfig, parse_dataset_name

from .data import DeepClusteringDataset


@dataclass(frozen=True)
class MixingTemplate:
    """What a set of training shards was drawn from: the render config, the seed of its specs, its dataset
    (genders, N), the corpora and the age filter."""

    config: RenderConfig
    seed: int
    gender: str
    num_speakers: int
    corpora: tuple[str, ...]
    min_age: int = 0


def mixing_template(shards: ShardSet, shard: int = 0) -> MixingTemplate:
    """The template of one training shard (its provenance and first spec).

    Raises:
        ValueError: a shard without the provenance dynamic mixing needs, or of a split other than train.
    """
    attrs, path = shards.attrs[shard], shards.paths[shard]
    try:
        prov = json.loads(attrs["provenance"])
        config = RenderConfig(**prov["render_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its provenance does not say how it was rendered ({exc}); dynamic mixing "
                         f"needs shards written by `dcgen render`") from exc
    first_row = sum(1 for k, _ in shards.index if k < shard)
    spec = shards.read(first_row, ("spec",))["spec"]
    if spec.split != "train":
        raise ValueError(f"{path} holds {spec.split} mixtures; dynamic mixing draws training speakers, give "
                         f"training shards")
    gender, n = parse_dataset_name(spec.dataset)
    names = prov["corpus"] if isinstance(prov["corpus"], list) else [prov["corpus"]]
    return MixingTemplate(config, int(prov["seed"]), gender, n, tuple(names), int(prov.get("min_age", 0)))


def mixing_templates(shards: ShardSet) -> tuple[list[MixingTemplate], list[int]]:
    """The templates of training shards that may hold several datasets (e.g. f2, m2 and fm2 for a model of every
    gender mix): one per distinct template, and for every row of the shard set the number of its template, so
    that fresh mixture i is drawn like the shards' mixture i (the datasets keep their proportions).
    """
    templates: list[MixingTemplate] = []
    of_shard = []
    for k in range(len(shards.paths)):
        t = mixing_template(shards, k)
        if t not in templates:
            templates.append(t)
        of_shard.append(templates.index(t))
    return templates, [of_shard[k] for k, _ in shards.index]


class DynamicMixingDataset(DeepClusteringDataset):
    """Training examples rendered on the fly (see the module docstring); items as :class:`DeepClusteringDataset`'s.

    Args:
        templates: what to draw (:func:`mixing_templates`), one or several (e.g. f2, m2, fm2).
        corpus_dirs: the folders of the templates' corpora.
        epoch_size: mixtures per epoch. seed: the training seed (keys the draws with the template's seed).
        template_of: the template of each mixture index (default: all the first).
        Other arguments as for :class:`DeepClusteringDataset`.

    Raises:
        ValueError: ``corpus_dirs`` that do not name the templates' corpora, templates of several speaker counts.
    """

    def __init__(self, templates: MixingTemplate | Sequence[MixingTemplate], corpus_dirs: Sequence[str | Path],
                 epoch_size: int, target: str, stats: dict[str, np.ndarray], chunk_frames: int = 0,
                 silence_db: float = features.SILENCE_DB, seed: int = 0, freq_warp: float = 0.0,
                 label_weights: str = "silence", template_of: Sequence[int] | None = None, keep_share: float = 0.5):
        super().__init__(None, target, stats, chunk_frames, silence_db, seed, 0, freq_warp, label_weights, keep_share)
        self.templates = [templates] if isinstance(templates, MixingTemplate) else list(templates)
        self.template_of = list(template_of) if template_of is not None else [0] * epoch_size
        if len(self.template_of) != epoch_size:
            raise ValueError(f"template_of has {len(self.template_of)} entries for {epoch_size} mixtures per epoch")
        names = sorted(Path(d).name for d in corpus_dirs)
        for t in self.templates:
            if not set(t.corpora) <= set(names):
                raise ValueError(f"the training shards were drawn from corpora {list(t.corpora)} but --corpus "
                                 f"gives {names}; pass the folder of each (in any order)")
        if len({t.num_speakers for t in self.templates}) != 1:
            raise ValueError(f"training shards of several speaker counts {sorted({t.num_speakers for t in self.templates})}")
        self.corpus_dirs, self.epoch_size = [Path(d) for d in corpus_dirs], epoch_size
        self._planners: dict[int, tuple[Planner, Path | dict]] = {}

    def __len__(self) -> int:
        return self.epoch_size

    def num_speakers(self, i: int) -> int:
        return self.templates[0].num_speakers

    def __getstate__(self):  # DataLoader workers build their own planners (they hold audio-activity caches)
        state = self.__dict__.copy()
        state["_planners"] = {}
        return state

    def _planner(self, k: int) -> tuple[Planner, Path | dict]:
        if k not in self._planners:
            t = self.templates[k]
            dirs = [d for name in t.corpora for d in self.corpus_dirs if d.name == name]  # the template's order
            source = open_corpora(dirs, None, t.seed, t.min_age)
            planner = Planner.of_corpus(source.utterances, source.corpus, t.config, t.seed)
            planner.check(t.gender, t.num_speakers, "train")
            self._planners[k] = (planner, source.corpus)
        return self._planners[k]

    def spec(self, epoch: int, i: int) -> MixtureSpec:
        """The spec of mixture ``i`` of ``epoch``."""
        k = self.template_of[i]
        planner, _ = self._planner(k)
        t = self.templates[k]
        return planner.plan_one(t.gender, t.num_speakers, "train", epoch * self.epoch_size + i,
                                stream=("dynamic", self.seed))

    def _read(self, i: int, epoch: int) -> dict:
        spec = self.spec(epoch, i)
        corpus = self._planner(self.template_of[i])[1]
        ex = render_mixture(spec, corpus, outputs=(self.target,) if self.target in ("bpd", "ds") else ())
        data = {"magnitude": ex.magnitude, "npd": ex.npd, "spec": spec}
        if self.target in ("bpd", "ds"):
            data[self.target] = getattr(ex, self.target)
        return data
