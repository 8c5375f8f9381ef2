"""``dcsep``: separate a user's recording into one WAV per speaker with a shipped or trained deep-clustering model
(a thin command over :class:`spatialdc.eval.separator.Separator`)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from spatialdc import models
from spatialdc.pipeline.provenance import command_line
from spatialdc.pipeline.paths import check_out_dir
from spatialdc.trainer.device import DEVICE_HELP

from .html_report import write_separation_report
from .separate import DEFAULT_CLUSTER_DB
from .separator import Separator


def _list_models(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for name in models.names():
        click.echo(models.summary_line(name))
    ctx.exit()


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A dctrain checkpoint (RUN/best.pt) [default: the shipped model --model].")
@click.option("--model", "model_name", default=None,
              help="A shipped model by name (see --list-models) [default: spatialdc.models.DEFAULT_MODEL].")
@click.option("--list-models", is_flag=True, expose_value=False, is_eager=True, callback=_list_models,
              help="List the shipped models with their test numbers, and exit.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="stems",
              help="Folder for <recording>_speaker<k>.wav (16-bit, 16 kHz).")
@click.option("--overwrite", is_flag=True, help="Replace stems that exist in --out.")
@click.option("--speakers", default="2", help="Number of speakers, or 'auto' to estimate it with the count head "
                                                "(or, without one, the eigenvalue rule on the embeddings).")
@click.option("--max-speakers", type=int, default=3, help="Largest count 'auto' may return.")
@click.option("--count-head", type=click.Path(dir_okay=False), default=None,
              help="Count head for --speakers auto (fitted by dccount) [default: count_head.json beside the "
                   "checkpoint if there is one].")
@click.option("--chunk-seconds", type=float, default=8.0, help="Long recordings are separated in chunks this long.")
@click.option("--overlap-seconds", type=float, default=2.0, help="Overlap of consecutive chunks (speakers matched).")
@click.option("--cluster-db", type=float, default=DEFAULT_CLUSTER_DB, help="K-means fit range below the loudest bin.")
@click.option("--device", default="auto", help=DEVICE_HELP + " STFT, K-means and resynthesis stay on the CPU.")
@click.option("--report", is_flag=True,
              help="Also write OUT/<recording>.report/report.html (opens from the file system): the input, the "
                   "stems, the mask of each stem over the spectrogram, how the count was decided.")
def main(recording, checkpoint, model_name, out, overwrite, speakers, max_speakers, count_head, chunk_seconds,
         overlap_seconds, cluster_db, device, report) -> None:
    """Separate RECORDING (WAV/FLAC, any rate, mic 1 of a multichannel file) into one WAV per speaker, with a
    shipped model (default) or your own checkpoint."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if speakers != "auto" and not (speakers.isdigit() and int(speakers) >= 1):
        raise click.BadParameter(f"{speakers!r}: give a count >= 1 or 'auto'", param_hint="--speakers")
    if overlap_seconds >= chunk_seconds:
        raise click.BadParameter("must be shorter than --chunk-seconds", param_hint="--overlap-seconds")
    if checkpoint and model_name:
        raise click.BadParameter("give --checkpoint or --model, not both", param_hint="--model")
    options = dict(count_head=count_head, cluster_db=cluster_db, chunk_s=chunk_seconds, overlap_s=overlap_seconds,
                   max_speakers=max_speakers, device=device)
    count = "auto" if speakers == "auto" else int(speakers)
    try:
        check_out_dir(out, "--out")
        sep = Separator(checkpoint, **options) if checkpoint else Separator.from_pretrained(model_name, **options)
        if not checkpoint:
            click.echo(f"model: shipped {sep.name} ({_card_line(sep.card)}); --list-models shows the others")
        if report:
            paths, page = write_separation_report(sep, recording, out, count, overwrite, command_line())
        else:
            paths, page = sep.separate_file(recording, out, count, overwrite=overwrite), None
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    for path in paths + ([page] if page else []):
        click.echo(f"wrote {path}")
    import soundfile as sf

    info = sf.info(str(recording))
    click.echo(f"{len(paths)} speaker(s){' (estimated)' if speakers == 'auto' else ''}, {info.duration:.1f} s "
               f"from {recording} ({info.samplerate} Hz)")


def _card_line(card: dict | None) -> str:
    if not card:
        return "no card"
    tests = ", ".join(f"{k} {v['sdri_mean']:.1f} dB SDRi" for k, v in card.get("test", {}).items())
    return f"DC {card['target'].upper()}, {card['training_data']}; test {tests or 'not scored'}"


if __name__ == "__main__":
    main()
