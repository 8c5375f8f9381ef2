"""``dctrain``: train a deep-clustering model on shards."""

from __future__ import annotations

import logging

import click

from . import distributed
from .config import LABEL_WEIGHTS, LR_SCHEDULES, TARGETS, TrainConfig
from .glob_hint import GlobOptionsCommand
from .device import DEVICE_HELP
from .precision import PRECISIONS
from .loop import train
from .schedule import LR_SCALINGS

D = TrainConfig.__dataclass_fields__


_LABELS_HELP = ("Train (and validate) on the label field NAME that `dcrelabel --name NAME` wrote beside the shards "
                "(bootstrapped labels) instead of the shards' own BPD labels; --target bpd. Default: the shards' BPD "
                "labels.")


@click.command(cls=GlobOptionsCommand, glob_options=("--shards", "--valid"),
               context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--shards", required=True, help="Glob of training shards, e.g. 'data/fm2/train-*.h5' (quote it).")
@click.option("--valid", required=True, help="Glob of validation shards, e.g. 'data/fm2/valid-*.h5'.")
@click.option("--target", type=click.Choice(TARGETS), default=D["target"].default,
              help="Y: ds = oracle dominant source, bpd = K-means on NPD (unsupervised), rpd = raw NPD.")
@click.option("--out", required=True, help="Run directory (config, log.csv, best.pt, last.pt, loss.png).")
@click.option("--layers", type=int, default=D["layers"].default, help="BLSTM layers.")
@click.option("--hidden", type=int, default=D["hidden"].default, help="BLSTM units per direction.")
@click.option("--embedding-dim", type=int, default=D["embedding_dim"].default, help="Embedding size D per TF bin.")
@click.option("--dropout", type=float, default=D["dropout"].default, help="Dropout on BLSTM outputs.")
@click.option("--lr", type=float, default=D["lr"].default, help="Adam learning rate.")
@click.option("--epochs", type=int, default=D["epochs"].default, help="Epochs.")
@click.option("--batch-size", type=int, default=D["batch_size"].default,
              help="Mixtures per step (per process under torchrun).")
@click.option("--chunk-frames", type=int, default=D["chunk_frames"].default,
              help="Random chunk of this many frames per training mixture (0 = whole mixture).")
@click.option("--clip-grad", type=float, default=D["clip_grad"].default, help="Gradient-norm clipping (0 = off).")
@click.option("--patience", type=int, default=D["patience"].default,
              help="Stop after this many epochs without a better validation loss (0 = never).")
@click.option("--seed", type=int, default=D["seed"].default, help="Seed.")
@click.option("--num-workers", type=int, default=D["num_workers"].default, help="DataLoader worker processes.")
@click.option("--max-minutes", type=float, default=D["max_minutes"].default,
              help="Wall-clock budget: stop (validate, save) once this many minutes are spent (0 = none).")
@click.option("--max-cpu-minutes", type=float, default=D["max_cpu_minutes"].default,
              help="Budget in CPU time of the training process (all threads): the same budget whatever else the "
                   "machine runs (0 = none).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=D["precision"].default,
              help="auto: fused normalization + loss, bf16 output layer where the CPU has native bf16 (AVX-512 BF16 "
                   "/ AMX) or the GPU has bf16; fp32: the reference step (earlier versions' weights bit for bit); "
                   "bf16: forced.")
@click.option("--device", default=D["device"].default, help=DEVICE_HELP + " A resumed run may change it.")
@click.option("--lr-scaling", type=click.Choice(LR_SCALINGS), default=D["lr_scaling"].default,
              help="Scale --lr (the rate of a batch of 8) to the global batch: linear (x B/8, Goyal et al. 2017, "
                   "with --warmup-steps) or sqrt (x sqrt(B/8), Malladi et al. 2022, for Adam); none: --lr as given.")
@click.option("--warmup-steps", type=int, default=D["warmup_steps"].default,
              help="Ramp the learning rate up linearly over this many first steps (0 = none).")
@click.option("--max-steps", type=int, default=D["max_steps"].default,
              help="Stop after this many optimizer steps in all (0 = none).")
@click.option("--valid-mixtures", type=int, default=D["valid_mixtures"].default,
              help="Validate on the first N validation mixtures (0 = all).")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=D["lr_schedule"].default,
              help="plateau: halve the learning rate after an epoch without a better validation loss.")
@click.option("--cache-gb", type=float, default=D["cache_gb"].default,
              help="GB of decoded training mixtures kept in memory (later epochs skip decompression; 0 = off).")
@click.option("--freq-warp", type=float, default=D["freq_warp"].default,
              help="VTLP augmentation: warp each training chunk's frequency axis by a factor in [1 - x, 1 + x] "
                   "(0 = off).")
@click.option("--init-from", default=D["init_from"].default, show_default=False,
              help="Start from this checkpoint's weights and input statistics (fine-tuning, or the next leg of a "
                   "campaign; fresh optimizer): a checkpoint file or a shipped model's name (dcsep --list-models), "
                   "e.g. any-bpd. Same --layers/--hidden/--embedding-dim as that model.")
@click.option("--dynamic-mixing", is_flag=True, default=D["dynamic_mixing"].default,
              help="Fresh training mixtures every epoch, drawn and rendered in the loader like the training shards "
                   "(same render config, dataset and corpora; the shards are only the template).")
@click.option("--corpus", multiple=True, default=D["corpus"].default,
              help="With --dynamic-mixing: the corpus folder(s) the training shards were drawn from (repeatable).")
@click.option("--label-weights", type=click.Choice(LABEL_WEIGHTS), default=D["label_weights"].default,
              help="silence: 0 for silent bins, 1 elsewhere; confidence: times how clearly each bin's NPD belongs to "
                   "its BPD cluster (Seetharaman et al. 2019); direct-path: 1 only on onset bins with the most "
                   "confident BPD labels (at most --keep-share of the non-silent bins), for reverberant rooms.")
@click.option("--keep-share", type=float, default=D["keep_share"].default, show_default=True,
              help="With --label-weights direct-path: the largest share of non-silent bins trained on (0.5 for mild "
                   "rooms, 0.35 for harsher ones; RESULTS.md, the label ladder).")
@click.option("--labels", default=D["labels"].default, show_default=False, help=_LABELS_HELP)
@click.option("--threads", type=int, default=0, help="Torch CPU threads (0 = torch's default).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(out, threads, quiet, **options) -> None:
    """Train a BLSTM deep-clustering network (Hershey et al. 2016) on DS, BPD or RPD targets; re-running the same
    command resumes from OUT/last.pt (with a larger --epochs or --max-minutes it goes on longer).

    Several processes: torchrun --standalone --nproc-per-node 2 -m spatialdc.trainer [same options] (DDP: gloo on
    CPUs, NCCL on GPUs, one process per GPU)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if threads:
        torch.set_num_threads(threads)
    try:
        config = TrainConfig(**options)
        summary = train(config, out, progress=not quiet)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        distributed.shutdown()
    click.echo(f"trained {summary['epochs']} epochs ({summary['steps']} steps) in {summary['seconds']:.0f} s; "
               f"best validation loss {summary['best_valid_loss']:.4f}; checkpoints in {summary['out']}")


if __name__ == "__main__":
    main()
