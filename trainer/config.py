"""The training configuration: one frozen dataclass, stored in every checkpoint, from which the model is rebuilt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spatialdc.pipeline.label_sidecar import check_label_name

from .device import check_device_name
from .precision import PRECISIONS
from .schedule import LR_SCALINGS

TARGETS = ("ds", "bpd", "rpd")
LR_SCHEDULES = ("none", "plateau")
LABEL_WEIGHTS = ("silence", "confidence", "direct-path")
# The fields that take one of a few values, with those values (checked by TrainConfig).
CHOICES = {"target": TARGETS, "precision": PRECISIONS, "lr_schedule": LR_SCHEDULES, "label_weights": LABEL_WEIGHTS,
           "lr_scaling": LR_SCALINGS}
# Fields a resumed run may change: how long to go on and how data is loaded, nothing that changes what a step does.
# The device too: a run goes on where the compute is (its arithmetic differs by float rounding, trainer/device.py).
RESUMABLE_CHANGES = frozenset({"epochs", "max_minutes", "max_cpu_minutes", "max_steps", "patience", "num_workers",
                               "cache_gb", "device"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        shards, valid: glob patterns of training / validation shards.
        target: ``"ds"`` (oracle dominant source), ``"bpd"`` (K-means on NPD) or ``"rpd"`` (raw NPD).
        layers, hidden: BLSTM layers and units per direction.
        embedding_dim: D, the embedding size per TF bin.
        dropout: dropout on the output of every BLSTM layer (the paper: on the last one).
        lr: Adam learning rate. batch_size: mixtures per step. epochs: passes over the training shards.
        chunk_frames: random chunk of T frames per training mixture (0: whole mixtures); validation uses whole ones.
        clip_grad: gradient-norm clipping (0: none).
        patience: stop after this many epochs without a better validation loss (0: never).
        silence_db: bins more than this many dB under the loudest bin are left out of the loss.
        seed: seeds initialization, chunking and shuffling.
        num_workers: DataLoader worker processes (0: load in the training process; on 2 cores a loader process
            competes with the torch threads: 88.3 % of the bare model's throughput with 0, 76.8 % with 1, RESULTS.md).
        max_minutes: wall-clock budget, validation included (0: none). The epoch in progress is cut short early
            enough to leave time for one more validation (as long as the last one took), then validated and saved.
        max_steps: stop after this many optimizer steps in all (0: none); the epoch in progress is validated, saved.
        valid_mixtures: validate on the first this many validation mixtures (0: all; validation is about a quarter
            of an epoch's time at the paper's 900).
        cache_gb: keep up to this many GB of decoded training mixtures in memory, so that epochs after the first
            skip HDF5 decompression (0: none; the paper-size fm2 training set needs 1.7 GB).
        lr_schedule: ``"none"``, or ``"plateau"``: halve the learning rate after an epoch whose validation loss is
            not better than the best so far (torch ``ReduceLROnPlateau``, factor 0.5, patience 0).
        freq_warp: vocal tract length perturbation of the training chunks (0: none): each chunk's frequency axis is
            warped by a factor drawn uniformly from [1 - freq_warp, 1 + freq_warp]
            (:func:`trainer.data.vtlp_source_bins`), the same warp for input, targets and loss weights. Validation
            is never warped. Off by default: at 0.1 it did not lower the validation loss of a model trained from
            scratch, but as fine-tuning of a plateaued model (``init_from``) it did, 0.1785 -> 0.1763 (RESULTS.md).
        precision: ``"auto"`` (the fast step: fused normalization and loss, bf16 output layer where the CPU has
            native bf16), ``"fp32"`` (the reference step: the weights of earlier versions bit for bit) or ``"bf16"``
            (forced); see :mod:`spatialdc.trainer.precision`. The step used is recorded in checkpoints.
        dynamic_mixing: draw fresh training mixtures every epoch, rendered on the fly in the loader
            (:mod:`spatialdc.trainer.dynamic`), as many per epoch as the training shards hold and like them (their
            render config, dataset and corpora; speakers of the corpora's training split); the shards themselves
            are then only the template (and give the input statistics). Validation stays on the validation shards.
        corpus: with ``dynamic_mixing``, the folders of the corpora the training shards were drawn from
            (default: the bundled corpus); their manifests are read from ``data_manifests/corpora/<name>.csv``.
        label_weights: ``"silence"`` (0 for silent bins, 1 elsewhere) or ``"confidence"`` (BPD targets: times the
            confidence of each bin's label, :func:`spatialdc.pipeline.label_weights.bpd_confidence`) or
            ``"direct-path"`` (BPD targets, for reverberant rooms: 1 only on the bins of
            :func:`spatialdc.pipeline.label_weights.direct_path_bins`, onsets with the most confident labels, at most
            ``keep_share`` of the non-silent bins; 0 elsewhere).
        keep_share: with ``"direct-path"``, the largest share of the non-silent bins trained on (0.5 for mild rooms,
            0.35 for harsher ones; RESULTS.md, the label ladder).
        labels: empty (the shards' own BPD labels), or the name of a label field made by ``dcrelabel --name NAME``
            (bootstrapped labels in sidecars beside the shards, :mod:`spatialdc.pipeline.label_sidecar`): the
            targets of the training and the validation mixtures, read as BPD labels (``target`` ``"bpd"``); the
            loss weights as ``label_weights`` says, computed from these labels. Every shard needs a current sidecar
            (checked before the first step; the error names the missing file and the command that makes it).
        max_cpu_minutes: budget in CPU time of the training process (all its threads; loader processes not
            counted), 0: none. Unlike ``max_minutes`` it does not depend on what else the machine runs, so runs
            made beside other work (niced) get the same budget; a 2-thread run uses up to 2 CPU-minutes per minute.
        init_from: a ``dctrain`` checkpoint file or a shipped model's name (``models/NAME.pt``) whose weights and
            input statistics start this run (the next leg of a campaign, or fine-tuning, e.g. with ``freq_warp``
            after the validation loss has stopped falling); the optimizer, step count and schedule start fresh,
            and the run records the start model's lineage (:mod:`spatialdc.trainer.lineage`: cumulative steps,
            CPU-hours, recipe). The architecture (layers, hidden, embedding_dim, number of frequencies) must match.
            Empty: random initialization.

        device: ``"auto"`` (a CUDA GPU where torch sees one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
            (:func:`spatialdc.trainer.device.resolve_device`); the device used is recorded in log.csv and the
            checkpoints. A resumed run may move to another device.
        lr_scaling: ``"none"``, ``"linear"`` or ``"sqrt"``: the learning rate used is ``lr`` times (global batch / 8)
            or its square root (:func:`spatialdc.trainer.schedule.scaled_lr`), so that ``lr`` stays the rate of the
            reference batch of 8 mixtures when a GPU trains on larger batches.
        warmup_steps: ramp the learning rate up linearly over this many first steps (0: none;
            :func:`spatialdc.trainer.schedule.warm_up`), as the linear rule wants (Goyal et al. 2017).

    A resumed run (same ``--out``) may change only the fields in ``RESUMABLE_CHANGES`` (its budget and loading).

    With several processes (``torchrun``, see :mod:`spatialdc.trainer.distributed`), ``batch_size`` is per process: one step
    averages the gradients of world_size x batch_size mixtures.
    """

    shards: str
    valid: str
    target: str = "bpd"
    layers: int = 2
    hidden: int = 300
    embedding_dim: int = 20
    dropout: float = 0.3
    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 10
    chunk_frames: int = 100
    clip_grad: float = 5.0
    patience: int = 0
    silence_db: float = 40.0
    seed: int = 0
    num_workers: int = 0
    max_minutes: float = 0.0
    max_steps: int = 0
    valid_mixtures: int = 0
    lr_schedule: str = "none"
    cache_gb: float = 4.0
    freq_warp: float = 0.0
    init_from: str = ""
    precision: str = "auto"
    max_cpu_minutes: float = 0.0
    dynamic_mixing: bool = False
    corpus: tuple[str, ...] = ("corpora/librispeech-clips",)
    label_weights: str = "silence"
    keep_share: float = 0.5
    device: str = "auto"
    lr_scaling: str = "none"
    warmup_steps: int = 0
    labels: str = ""

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {allowed}")
        for name in ("layers", "hidden", "embedding_dim", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("chunk_frames", "num_workers", "patience", "max_minutes", "max_steps", "valid_mixtures",
                     "cache_gb", "max_cpu_minutes", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.freq_warp < 0.5:
            raise ValueError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")
        if self.label_weights in ("confidence", "direct-path") and self.target != "bpd":
            raise ValueError(f"--label-weights {self.label_weights} rates BPD labels; the target is {self.target!r}")
        if not 0 < self.keep_share <= 1:
            raise ValueError(f"--keep-share must be in (0, 1], got {self.keep_share}")
        if self.labels:
            check_label_name(self.labels)
            if self.target != "bpd":
                raise ValueError(f"--labels {self.labels} are BPD-like labels: train them with --target bpd, not "
                                 f"{self.target!r}")
            if self.dynamic_mixing:
                raise ValueError(f"--labels {self.labels} label the shards' own mixtures; --dynamic-mixing draws new "
                                 f"ones, which have none: drop one of the two")
        check_device_name(self.device)
        object.__setattr__(self, "corpus", tuple(self.corpus))  # JSON gives lists

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config of :meth:`to_dict`'s dict (a checkpoint's ``config``); fields it lacks (added since it was
        written) take their defaults.

        Raises:
            ValueError: keys that are no field of this version's config (named in the message), or values
                ``__post_init__`` refuses.
        """
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"training config keys {unknown} are not fields of this version's TrainConfig; it was "
                             f"written by another version of spatialdc: use that version, or drop the keys")
        return cls(**d)
