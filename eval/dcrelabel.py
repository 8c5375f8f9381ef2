"""``dcrelabel``: label every shard of a dataset folder with a teacher network (bootstrapped labels, written as label
sidecars beside the shards; :mod:`spatialdc.eval.relabel`)."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import click

from spatialdc.pipeline.manifest import SPLITS
from spatialdc.trainer.device import DEVICE_HELP

from .bootstrap import RULES, BootstrapSettings
from .relabel import relabel_dataset

SETTING_HELP = {  # one option per field of BootstrapSettings, its default the dataclass's
    "rule": "How the teacher labels the bins that are not confident (spatialdc.eval.bootstrap): posterior = the "
            "nearest of the confident bins' mean embeddings weighed with the spatial posterior; nearest-mean; "
            "seeded / kmeans = K-means on the embeddings.",
    "keep_share": "Confident bins: onsets with the most confident spatial labels, at most this share of the "
                  "non-silent bins (as dctrain --label-weights direct-path --keep-share).",
    "cluster_db": "K-means centres are fitted on the bins within this many dB of the loudest.",
    "seed": "Seed of the K-means initializations.",
    "concentration": "With --rule posterior: the weight of the embeddings against the spatial log-posterior "
                     "(larger: trust the teacher more).",
}


def setting_options(fn):
    """The options of :class:`BootstrapSettings`' fields (``--keep-share`` for ``keep_share``), defaults from it."""
    kinds = {"str": click.Choice(RULES), "float": float, "int": int}
    for f in reversed(fields(BootstrapSettings)):
        fn = click.option("--" + f.name.replace("_", "-"), type=kinds[f.type], default=f.default,
                          help=SETTING_HELP[f.name])(fn)
    return fn


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", required=True,
              help="The teacher: a dctrain checkpoint (RUN/best.pt, e.g. of a run with --label-weights direct-path "
                   "on reverberant mixtures) or a shipped model's name.")
@click.option("--name", required=True, help="Label name: sidecars go to DATASET_DIR/labels-NAME/, and dctrain "
                                            "--labels NAME trains on them (e.g. boot1, boot2).")
@setting_options
@click.option("--threads", type=int, default=0, help="Torch CPU threads (0 = torch's default).")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLITS),
              help="Label only these splits (repeatable) [default: every shard of the folder].")
@click.option("--overwrite", is_flag=True,
              help="Replace sidecars of this name made by another teacher or with other settings (without it, "
                   "relabel refuses and names them).")
def main(dataset_dir, checkpoint, name, splits, overwrite, threads, device, quiet, **settings) -> None:
    """Bootstrapped labels for every shard of DATASET_DIR (Seetharaman et al. 2019; Drude et al. 2019): the
    teacher's embeddings are clustered (K = the mixture's count) and the clusters matched to the spatial labels;
    each bin keeps its spatial label where that is confident (a direct-path bin) and takes the teacher's elsewhere.
    The shards are not touched: DATASET_DIR/labels-NAME/<shard>.labels.h5 holds the labels with their provenance
    (teacher and its weights' SHA-256, rule, settings, command, versions, the shard's SHA-256). Re-running the same
    command labels only the shards whose sidecar is missing or stale."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if threads:
        torch.set_num_threads(threads)
    try:
        settings = BootstrapSettings(**settings)
        summary = relabel_dataset(dataset_dir, checkpoint, name, settings, splits or None, overwrite, device,
                                  progress=not quiet)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary.lines():
        click.echo(line)
    click.echo(f"labels {name!r} in {dataset_dir / f'labels-{name}'}; train on them with dctrain --labels {name}")


if __name__ == "__main__":
    main()
