"""The data loaders of a training run: this rank's share of each seeded global batch of training mixtures, and
the first validation mixtures, with the device-dependent settings of :func:`~spatialdc.trainer.device.loader_settings`.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from spatialdc.pipeline.shards import ShardSet

from . import distributed
from .config import TrainConfig
from .data import DeepClusteringDataset
from .device import loader_settings
from .dynamic import DynamicMixingDataset, mixing_templates

log = logging.getLogger(__name__)


class EpochLoader(DataLoader):
    """A DataLoader iterated once per epoch whose worker processes, if any, live as long as it does
    (``persistent_workers``): they start once per run, and each keeps its cache of decoded mixtures. ``settings``:
    the device-dependent rest (:func:`~spatialdc.trainer.device.loader_settings`: pinned memory, prefetch).

    Every fresh DataLoader iterator draws a seed for its workers from torch's global RNG, even without workers; a
    persistent iterator that is reset draws none. This one draws it on every ``iter`` anyway, so the global RNG
    (dropout, ...) advances the same with any number of workers, as it did when the loop made a loader per epoch.
    """

    def __init__(self, dataset, batch_size: int, sampler, settings: dict):
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **settings)
        self._iterated = False

    def __iter__(self):
        if self.persistent_workers and self._iterated:
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # what a fresh iterator draws
        self._iterated = True
        return super().__iter__()


def make_loaders(config: TrainConfig, train_set: ShardSet, valid_set: ShardSet, stats: dict, rank: int = 0,
                 world_size: int = 1, device: torch.device = torch.device("cpu")) -> tuple[EpochLoader, EpochLoader]:
    """The training loader (this rank's share of each seeded global batch, ``(epoch, index)`` keys: call
    ``loader.sampler.set_epoch(e)`` before epoch e) and the validation loader (this rank's share of the first
    ``config.valid_mixtures``, whole mixtures), with ``config.num_workers`` persistent workers each, set up to feed
    ``device`` (:func:`~spatialdc.trainer.device.loader_settings`).

    The training data are the shards' mixtures, or with ``config.dynamic_mixing`` fresh ones drawn like them; the
    decoded-mixture cache of ``config.cache_gb`` is shared out between the workers.

    Raises:
        ValueError: dynamic mixing from shards or corpora it cannot draw from (:class:`DynamicMixingDataset`).
    """
    if config.dynamic_mixing:
        templates, template_of = mixing_templates(train_set)
        train_data = DynamicMixingDataset(templates, config.corpus, len(train_set), config.target, stats,
                                          config.chunk_frames, config.silence_db, config.seed, config.freq_warp,
                                          config.label_weights, template_of, config.keep_share)
    else:
        train_data = DeepClusteringDataset(train_set, config.target, stats, config.chunk_frames, config.silence_db,
                                           config.seed, cache_bytes=int(config.cache_gb * 1e9) // max(
                                               config.num_workers, 1), freq_warp=config.freq_warp,
                                           label_weights=config.label_weights, keep_share=config.keep_share,
                                           labels=config.labels)
    valid_data = DeepClusteringDataset(valid_set, config.target, stats, 0, config.silence_db, config.seed,
                                       labels=config.labels)
    num_valid = min(len(valid_data), config.valid_mixtures or len(valid_data))
    sampler = distributed.GlobalBatchSampler(len(train_data), config.batch_size, rank, world_size, config.seed,
                                             drop_last=len(train_data) > config.batch_size * world_size,
                                             epoch_keys=True)
    settings = loader_settings(device, config.num_workers)
    if device.type == "cuda" and config.num_workers == 0:
        log.warning("a GPU fed by the training process alone waits for its batches: give --num-workers (most of "
                    "the cores)")
    return (EpochLoader(train_data, config.batch_size, sampler, settings),
            EpochLoader(valid_data, config.batch_size, list(range(rank, num_valid, world_size)), settings))
