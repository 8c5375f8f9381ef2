"""``dceval``: separate test mixtures with a checkpoint and the oracle masks, and score them."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from spatialdc.pipeline.provenance import command_line, package_versions
from spatialdc.pipeline.metrics import BACKENDS, DEFAULT_BACKEND
from spatialdc.trainer.glob_hint import GlobOptionsCommand
from spatialdc.trainer.device import DEVICE_HELP

from .count import resolve_count_head
from .evaluate import evaluate
from .html_report import write_eval_report
from .plots import report_figures
from .report import write_csv, write_summary
from .separate import DEFAULT_CLUSTER_DB


@click.command(cls=GlobOptionsCommand, glob_options=("--shards",),
               context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
              help="dctrain checkpoint (best.pt). Without it only the oracle DS and BPD masks are scored.")
@click.option("--shards", "shard_patterns", required=True, multiple=True,
              help="Glob of test shards, e.g. 'data/fm2/test-*.h5' (repeatable).")
@click.option("--report", type=click.Path(dir_okay=False), default="sdr.csv",
              help="CSV, one row per mixture, method and source; a Markdown summary goes beside it (.md).")
@click.option("--metric-backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND, show_default=True,
              help="BSS Eval v3 implementation: batched = ours (all methods of a mixture share the references' "
                   "work); fast_bss_eval; mir_eval = the reference (slowest). Same definitions, SDR within 1e-6 dB.")
@click.option("--workers", type=int, default=2, help="Local Dask worker processes (0 = in this process).")
@click.option("--scheduler", default=None, help="tcp://HOST:PORT of an existing Dask scheduler to use instead.")
@click.option("--max-mixtures", type=int, default=None, help="Score only the first N mixtures.")
@click.option("--seed", type=int, default=0, help="Seed of the K-means initializations.")
@click.option("--cluster-db", type=float, default=DEFAULT_CLUSTER_DB,
              help="K-means centres are fitted on the bins within this many dB of the loudest bin; every bin is "
                   "then assigned to its nearest centre (chosen on the fm2 validation set, see RESULTS.md).")
@click.option("--speakers", type=click.Choice(["oracle", "auto"]), default="oracle",
              help="K of the model's K-means: the mixture's true count, or auto: estimated by the count head "
                   "(the CSV gets num_speakers_est; miscounted mixtures are marked count_error, left out of means).")
@click.option("--max-speakers", type=int, default=3, help="Largest count --speakers auto may return.")
@click.option("--count-head", type=click.Path(dir_okay=False), default=None,
              help="Count head for --speakers auto (fitted by dccount) [default: count_head.json beside the "
                   "checkpoint; without one, the eigenvalue rule].")
@click.option("--device", default="auto",
              help=DEVICE_HELP + " Each worker embeds its chunk of mixtures in one batch there; K-means and BSS Eval "
                                 "stay on the CPU.")
@click.option("--oracles/--no-oracles", default=True, help="Score the oracle DS and BPD masks beside the model.")
@click.option("--plots/--no-plots", default=True,
              help="Write PNG figures beside the report: SDRi box plots, SDRi vs angle and gain, an NPD histogram.")
@click.option("--examples", type=click.IntRange(min=0), default=6,
              help="Write <report>.report/report.html (beside the CSV, opens from the file system) with this many "
                   "mixtures to listen to and look at: best, median, worst by the model's SDRi and ranks spread "
                   "between; 0: no page.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(checkpoint, shard_patterns, report, metric_backend, workers, scheduler, max_mixtures, seed, cluster_db,
         speakers, max_speakers, count_head, device, oracles, plots, examples, quiet) -> None:
    """Embeddings -> K-means (K = speakers of each mixture) -> binary masks -> inverse STFT -> SDR, SIR, SAR, SI-SDR
    and their improvement over the mixture; oracle DS and BPD masks beside the model."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("distributed", "dask"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        head = resolve_count_head(checkpoint, count_head) if speakers == "auto" and checkpoint else None
        rows = evaluate(shard_patterns, checkpoint, metric_backend, workers, max_mixtures=max_mixtures, seed=seed,
                        scheduler=scheduler, progress=not quiet, cluster_db=cluster_db,
                        oracles=oracles, auto_count=speakers == "auto", max_speakers=max_speakers,
                        count_head=head, device=device)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    counter = (f"count head {head}" if head else "eigenvalue rule") if speakers == "auto" else None
    provenance = {"checkpoint": checkpoint, "shards": list(shard_patterns), "metric_backend": metric_backend,
                  "seed": seed, "cluster_db": cluster_db, "speakers": speakers, "count_estimator": counter,
                  "command": command_line(), "versions": package_versions()}
    write_csv(report, rows, provenance)
    md = Path(report).with_suffix(".md")
    summary = write_summary(md, rows, counter)
    for section in ("confusion", "table", "paper"):
        if section in summary:
            click.echo(summary[section])
    figures = report_figures(rows, shard_patterns, Path(report)) if plots else []
    page = write_eval_report(report, rows, provenance, examples, figures)
    click.echo("wrote " + ", ".join([report, str(md)] + [str(p) for p in figures] + ([str(page)] if page else [])))


if __name__ == "__main__":
    main()
