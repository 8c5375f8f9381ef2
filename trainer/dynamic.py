"""Dynamic mixing: fresh training mixtures every epoch, drawn and rendered on the fly in the data loader.

The training shards serve as the template: their render config, seed, dataset (genders, N) and corpora (from the
shards' provenance and specs) say what to draw; every epoch draws as many new mixtures as the shards hold, from the
same corpora's training speakers. Mixture ``i`` of epoch ``e`` is the spec that
:meth:`~spatialdc.pipeline.specs.Planner.plan_one` draws from ``rng_for(seed, dataset, "train", "dynamic",
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

from spatialdc.pipeline import build, corpus as corpus_mod, features
from spatialdc.pipeline.render import render_mixture
from spatialdc.pipeline.shards import ShardSet
from spatialdc.pipeline.specs import MixtureSpec, Planner, RenderConfig, parse_dataset_name

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


def mixing_template(shards: ShardSet) -> MixingTemplate:
    """The template of training shards (from the first shard's provenance and first spec).

    Raises:
        ValueError: shards without the provenance dynamic mixing needs, or of a split other than train.
    """
    attrs = shards.attrs[0]
    try:
        prov = json.loads(attrs["provenance"])
        config = RenderConfig(**prov["render_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{shards.paths[0]}: its provenance does not say how it was rendered ({exc}); dynamic mixing "
                         f"needs shards written by `dcgen render`") from exc
    spec = shards.read(0, ("spec",))["spec"]
    if spec.split != "train":
        raise ValueError(f"{shards.paths[0]} holds {spec.split} mixtures; dynamic mixing draws training speakers, "
                         f"give training shards")
    gender, n = parse_dataset_name(spec.dataset)
    names = prov["corpus"] if isinstance(prov["corpus"], list) else [prov["corpus"]]
    return MixingTemplate(config, int(prov["seed"]), gender, n, tuple(names), int(prov.get("min_age", 0)))


class DynamicMixingDataset(DeepClusteringDataset):
    """Training examples rendered on the fly (see the module docstring); items as :class:`DeepClusteringDataset`'s.

    Args:
        template: what to draw (:func:`mixing_template`). corpus_dirs: the folders of ``template.corpora``.
        epoch_size: mixtures per epoch. seed: the training seed (keys the draws with the template's seed).
        Other arguments as for :class:`DeepClusteringDataset`.

    Raises:
        ValueError: ``corpus_dirs`` that do not name the template's corpora.
    """

    def __init__(self, template: MixingTemplate, corpus_dirs: Sequence[str | Path], epoch_size: int, target: str,
                 stats: dict[str, np.ndarray], chunk_frames: int = 0, silence_db: float = features.SILENCE_DB,
                 seed: int = 0, freq_warp: float = 0.0, label_weights: str = "silence"):
        super().__init__(None, target, stats, chunk_frames, silence_db, seed, 0, freq_warp, label_weights)
        names = tuple(Path(d).name for d in corpus_dirs)
        if sorted(names) != sorted(template.corpora):
            raise ValueError(f"the training shards were drawn from corpora {list(template.corpora)} but --corpus "
                             f"gives {list(names)}; pass the folder of each (in any order)")
        self.template, self.corpus_dirs, self.epoch_size = template, [Path(d) for d in corpus_dirs], epoch_size
        self.dataset_name = f"{template.gender}{template.num_speakers}"
        self._planner: Planner | None = None
        self._corpus: Path | dict | None = None

    def __len__(self) -> int:
        return self.epoch_size

    def num_speakers(self, i: int) -> int:
        return self.template.num_speakers

    def __getstate__(self):  # DataLoader workers build their own planner (it holds audio-activity caches)
        state = self.__dict__.copy()
        state["_planner"] = None
        return state

    def _ensure_planner(self) -> Planner:
        if self._planner is None:
            t = self.template
            dirs = [d for name in t.corpora for d in self.corpus_dirs if d.name == name]  # the template's order
            source = build.open_corpora(dirs, None, t.seed, t.min_age)
            self._corpus = source.corpus
            self._planner = Planner(source.utterances,
                                    lambda u: corpus_mod.load_audio(u, source.corpus, t.config.sample_rate),
                                    t.config, t.seed)
            self._planner.check(t.gender, t.num_speakers, "train")
        return self._planner

    def spec(self, epoch: int, i: int) -> MixtureSpec:
        """The spec of mixture ``i`` of ``epoch``."""
        planner = self._ensure_planner()
        index = epoch * self.epoch_size + i
        return planner.plan_one(self.template.gender, self.template.num_speakers, "train", index,
                                stream=("dynamic", self.seed))

    def _read(self, i: int) -> dict:
        spec = self.spec(self.epoch, i)
        ex = render_mixture(spec, self._corpus, outputs=(self.target,) if self.target in ("bpd", "ds") else ())
        data = {"magnitude": ex.magnitude, "npd": ex.npd, "spec": spec}
        if self.target in ("bpd", "ds"):
            data[self.target] = getattr(ex, self.target)
        return data
