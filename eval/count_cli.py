"""``dccount``: fit the speaker-count head of a trained network (:mod:`spatialdc.eval.count`) and report its accuracy."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from spatialdc.pipeline import features
from spatialdc.pipeline.build import command_line
from spatialdc.pipeline.rng import rng_for
from spatialdc.pipeline.shards import ShardSet, expand_shards, file_sha256

from .count import CountHead, count_features, default_head_path, fit_count_head
from .separate import DEFAULT_CLUSTER_DB, load_model, network_outputs
from .report import count_confusion

log = logging.getLogger(__name__)
C_GRID = (0.003, 0.01, 0.03, 0.1)  # inverse L2 strengths tried; the best on validation is kept
BATCH = 16


def collect(model, stats, patterns: list[str], limit: int, single_share: float, cluster_db: float, seed: int,
            desc: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Count features and true counts of the first ``limit`` mixtures of each glob, plus, for a ``single_share``
    of them, one of their sources alone (count 1) scaled to the mixture's RMS (so loudness does not tell the count).

    Returns:
        ((M, P) float64 features, (M,) int counts).

    Raises:
        FileNotFoundError: a glob matches no shard.
    """
    feats, counts = [], []
    for pattern in patterns:
        data = ShardSet(expand_shards(pattern))
        idx = list(range(min(limit, len(data))))
        for lo in tqdm(range(0, len(idx), BATCH), desc=f"{desc} {pattern}", disable=not progress, unit="batch"):
            items, mags = [], []
            for i in idx[lo: lo + BATCH]:
                d = data.read(i, ("mixture", "sources", "magnitude"))
                items.append((i, data.num_speakers(i)))
                mags.append(d["magnitude"])
                rng = rng_for(seed, "count-single", pattern, i)
                if single_share > 0 and rng.random() < single_share:
                    src = d["sources"][int(rng.integers(d["sources"].shape[0]))].astype(np.float64)
                    src *= np.sqrt(np.mean(d["mixture"][0] ** 2) / max(np.mean(src ** 2), 1e-12))
                    items.append((i, 1))
                    mags.append(np.abs(features.stft(src)).astype(np.float32))
            x, h, v = network_outputs(model, stats, np.stack(mags))
            for k, (_, n) in enumerate(items):
                active = features.active_bins(mags[k], cluster_db)
                if active.any():
                    feats.append(count_features(x[k], h[k], v[k], active))
                    counts.append(n)
        data.close()
    return np.stack(feats), np.asarray(counts)


def confusion_rows(true: np.ndarray, est: np.ndarray) -> list[dict]:
    return [{"mixture_id": str(k), "num_speakers": int(t), "num_speakers_est": int(e)}
            for k, (t, e) in enumerate(zip(true, est))]


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
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
@click.option("--quiet", is_flag=True, help="No progress bars.")
def main(checkpoint, train, valid, test, mixtures, valid_mixtures, single_share, max_speakers, cluster_db, seed, out,
         threads, quiet) -> None:
    """Fit the speaker-count head of a network: logistic regression on a summary of its embeddings, BLSTM states
    and input (eval/count.py), regularization chosen on --valid; report accuracy and confusion on --test."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out = out or default_head_path(checkpoint)
    try:
        loaded = load_model(checkpoint)
        model, stats = loaded.net, loaded.stats
        xtr, ytr = collect(model, stats, list(train), mixtures, single_share, cluster_db, seed, "train", not quiet)
        xva, yva = collect(model, stats, list(valid), valid_mixtures, single_share, cluster_db, seed, "valid",
                           not quiet)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    sha = file_sha256(checkpoint)
    fits = []
    for c in C_GRID:
        head = fit_count_head(xtr, ytr, c, sha)
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
            xte, yte = collect(model, stats, list(test), valid_mixtures, 0.0, cluster_db, seed, "test", not quiet)
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc
        est = head.predict(xte, max_speakers)
        head.provenance.update({"test": list(test), "test_accuracy": float(np.mean(est == yte))})
        click.echo("test (" + ", ".join(test) + "):")
        click.echo(count_confusion(confusion_rows(yte, est)))
    head.save(out)
    click.echo(f"count head written to {out} ({time.perf_counter() - t0:.0f} s)")


__all__ = ["main", "collect", "CountHead"]
