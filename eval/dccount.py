"""``dccount``: fit the speaker-count head of a trained network (:mod:`spatialdc.eval.count`) and report its accuracy."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
import numpy as np

from spatialdc.pipeline.provenance import command_line
from spatialdc.pipeline.shard_index import file_sha256
from spatialdc.trainer.glob_hint import GlobOptionsCommand
from spatialdc.trainer.device import DEVICE_HELP

from .count import checkpoint_weights_sha256, collect_features, default_head_path, fit_count_head
from .report import count_confusion
from .separate import DEFAULT_CLUSTER_DB, load_model

log = logging.getLogger(__name__)
C_GRID = (0.003, 0.01, 0.03, 0.1)  # inverse L2 strengths tried; the best on validation is kept


def confusion_rows(true: np.ndarray, est: np.ndarray) -> list[dict]:
    return [{"mixture_id": str(k), "num_speakers": int(t), "num_speakers_est": int(e)}
            for k, (t, e) in enumerate(zip(true, est))]


@click.command(cls=GlobOptionsCommand, glob_options=("--train", "--valid", "--test"),
               context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="dctrain checkpoint (best.pt) whose network the head reads.")
@click.option("--train", "train", multiple=True, required=True,
              help="Shard glob of training mixtures (repeat it: e.g. the fm2 and the fm3 training sets).")
@click.option("--valid", "valid", multiple=True, required=True, help="Shard glob of validation mixtures (repeat it).")
@click.option("--test", "test", multiple=True, help="Shard glob of test mixtures to report accuracy on (repeat it).")
@click.option("--mixtures", type=int, default=3000, help="First mixtures taken from each train glob.")
@click.option("--valid-mixtures", type=int, default=900, help="First mixtures taken from each valid / test glob.")
@click.option("--single-share", type=float, default=0.25,
              help="Share of train / valid mixtures that also give a single-source example (count 1); 0: none.")
@click.option("--max-speakers", type=int, default=3, help="Largest count reported on --test.")
@click.option("--cluster-db", type=float, default=DEFAULT_CLUSTER_DB, help="Bins within this many dB of the "
              "loudest are the ones whose embeddings are summarized.")
@click.option("--seed", type=int, default=0)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the head [default: count_head.json beside the checkpoint, where dceval and "
                   "dcsep --speakers auto look for it].")
@click.option("--threads", type=int, default=2, help="torch threads.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def main(checkpoint, train, valid, test, mixtures, valid_mixtures, single_share, max_speakers, cluster_db, seed, out,
         threads, device, quiet) -> None:
    """Fit the speaker-count head of a network: logistic regression on a summary of its embeddings, BLSTM states
    and input (eval/count.py), regularization chosen on --valid; report accuracy and confusion on --test."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = out or default_head_path(checkpoint)
    try:
        loaded = load_model(checkpoint, device)
        model, stats = loaded.net, loaded.stats
        xtr, ytr = collect_features(model, stats, list(train), mixtures, single_share, cluster_db, seed, "train", not quiet)
        xva, yva = collect_features(model, stats, list(valid), valid_mixtures, single_share, cluster_db, seed, "valid",
                           not quiet)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sha, weights = file_sha256(checkpoint), checkpoint_weights_sha256(checkpoint)
    fits = []
    for c in C_GRID:
        head = fit_count_head(xtr, ytr, c, sha, weights_sha256=weights)
        fits.append((float(np.mean(head.predict(xva) == yva)), -c, head))
    per_count = {int(k): int(v) for k, v in zip(*np.unique(ytr, return_counts=True))}
    click.echo(f"train: {len(ytr)} examples (count: examples) {per_count}; valid: {len(yva)}")
    click.echo("validation accuracy by C: " + ", ".join(f"{-nc:g}: {100 * a:.1f} %" for a, nc, _ in fits))
    best_acc, _, head = max(fits, key=lambda f: (f[0], f[1]))  # ties: the stronger regularization
    head.provenance.update({"command": command_line(), "train": list(train), "valid": list(valid), "mixtures": mixtures,
                            "valid_mixtures": valid_mixtures, "single_share": single_share, "cluster_db": cluster_db,
                            "train_counts": per_count,
                            "valid_accuracy": best_acc})
    click.echo(f"chosen C {head.provenance['C']:g}: validation accuracy {100 * best_acc:.1f} %")
    if test:
        try:
            xte, yte = collect_features(model, stats, list(test), valid_mixtures, 0.0, cluster_db, seed, "test", not quiet)
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc
        est = head.predict(xte, max_speakers)
        head.provenance.update({"test": list(test), "test_accuracy": float(np.mean(est == yte))})
        click.echo("test (" + ", ".join(test) + "):")
        click.echo(count_confusion(confusion_rows(yte, est)))
    head.save(out)
    click.echo(f"count head written to {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
