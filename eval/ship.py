"""Make a shipped model from a training run: ``models/NAME.pt`` (inference checkpoint + card) and ``models/NAME.md``.

    python -m spatialdc.eval.ship runs/fm2-bpd/best.pt --name fm2-bpd \
        --training-data "fm2 of librispeech-clips" \
        --scores valid:fm2=runs/eval/fm2-bpd-valid.csv --scores test:fm2=runs/eval/fm2-bpd-test.csv

The weights are stored as float16 (computed in float32). The card's numbers are read from ``dceval`` reports (CSV):
``--scores KIND:LABEL=CSV`` with KIND ``valid`` or ``test``. Score the shipped file itself: ship without
``--scores``, run dceval on ``models/NAME.pt``, then ship again with them (the weights are the same bytes).
Everything else comes from the checkpoint (config, steps, minutes, validation loss, package versions) and the run's
shards (mixtures, speakers).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from spatialdc import models
from spatialdc.pipeline.atomic import write_text_atomic
from spatialdc.pipeline.provenance import command_line
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.checkpoint import inference_state, load_checkpoint, model_from_checkpoint, save_checkpoint
from spatialdc.trainer.config import TrainConfig

from .report import read_csv, summarize

MODELS_DIR = Path(models.__file__).resolve().parent  # the package folder of spatialdc.models (in a clone: models/)


def dctrain_command(config: dict) -> str:
    """The ``dctrain`` command that makes a run of this config (options that differ from the defaults)."""
    defaults = TrainConfig(shards="", valid="").to_dict()
    parts = ["dctrain", f"--shards '{config['shards']}'", f"--valid '{config['valid']}'"]
    for key, value in config.items():
        if key in ("shards", "valid", "world_size") or defaults.get(key) == value:
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def score_summary(csv_path: str | Path) -> dict:
    """SDRi of the model's rows of a ``dceval`` report: mean, 95 % CI half-width, median, mixtures, and where the
    report came from (its shards and command, from the provenance file beside it).

    Raises:
        ValueError: the report has no model rows (dc_*).
    """
    rows = [r for r in read_csv(csv_path) if r["method"].startswith("dc_")]
    if not rows:
        raise ValueError(f"{csv_path} has no model rows (dc_*): score the model with dceval --checkpoint")
    s = summarize(rows, by=("method",))[0]
    prov_path = Path(str(csv_path) + ".json")
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    return {"sdri_mean": round(s["sdri_mean"], 2), "sdri_ci95": round(s["sdri_ci95"], 2),
            "sdri_median": round(s["sdri_median"], 2), "si_sdri_mean": round(s["si_sdri_mean"], 2),
            "mixtures": s["mixtures"], "shards": prov.get("shards"),
            "command": shlex.join(command_line(prov["command"])) if prov.get("command") else None}


def training_speakers(shards_pattern: str) -> tuple[int, int]:
    """(mixtures, distinct speakers) of a run's training shards."""
    shards = ShardSet(expand_shards(shards_pattern))
    speakers = set()
    for i in range(len(shards)):
        speakers.update(shards.read(i, ("spec",))["spec"].speakers)
    shards.close()
    return len(shards), len(speakers)


def make_card(state: dict, name: str, training_data: str, scores: dict[str, dict[str, dict]],
              notes: str = "") -> dict:
    """The card of a shipped model: what it is, how it was made (command, data, budget) and what it scores."""
    config = state["config"]
    history = state.get("history") or [{}]
    minutes = history[-1].get("seconds", 0.0) / 60
    cpu = history[-1].get("cpu_seconds")
    budget = f"{state.get('step', 0)} steps, {minutes:.0f} min of wall clock" + (
        f", {cpu / 60:.0f} CPU-minutes of the training process" if cpu else "")
    return {"name": name, "target": config["target"], "training_data": training_data, "budget": budget,
            "steps": state.get("step"), "epochs": state.get("epoch"), "minutes": round(minutes, 1),
            "best_valid_loss": state.get("best_val"), "command": dctrain_command(config),
            "architecture": f"{config['layers']} x {config['hidden']} BLSTM, D = {config['embedding_dim']}",
            "versions": state.get("versions"), "valid": scores.get("valid", {}), "test": scores.get("test", {}),
            "notes": notes}


def card_markdown(card: dict) -> str:
    """The card for people (``NAME.md``)."""
    lines = [f"# Model card: {card['name']}", "",
             f"Deep clustering ({card['architecture']}), trained on **{card['target'].upper()}** targets.", "",
             f"- Training data: {card['training_data']}",
             f"- Budget: {card['budget']} ({card['epochs']} epochs); best validation loss {card['best_valid_loss']:.4f}",
             f"- Command: `{card['command']}`",
             f"- Packages: {', '.join(f'{k} {v}' for k, v in (card.get('versions') or {}).items())}", ""]
    for kind in ("valid", "test"):
        if not card.get(kind):
            continue
        lines += [f"## {'Validation' if kind == 'valid' else 'Test'} (SDRi from dceval, dB)", "",
                  "| set | mixtures | SDRi mean ± CI95 | median | SI-SDRi | shards |", "|---|---|---|---|---|---|"]
        for label, s in card[kind].items():
            lines.append(f"| {label} | {s['mixtures']} | {s['sdri_mean']:.2f} ± {s['sdri_ci95']:.2f} | "
                         f"{s['sdri_median']:.2f} | {s['si_sdri_mean']:.2f} | {', '.join(s.get('shards') or [])} |")
        lines.append("")
    if card.get("notes"):
        lines += [card["notes"], ""]
    lines += ["Licence of the weights: as the project's code; trained on LibriSpeech clips (CC BY 4.0, see README).",
              ""]
    return "\n".join(lines)


def ship(checkpoint: str | Path, name: str, training_data: str, scores: dict[str, dict[str, str]],
         notes: str = "", out_dir: str | Path = MODELS_DIR) -> Path:
    """Write ``out_dir/NAME.pt`` (inference state of ``checkpoint`` with its card) and ``out_dir/NAME.md``.

    Args:
        scores: ``{"valid" | "test": {label: dceval CSV path}}``.

    Raises:
        FileNotFoundError, ValueError: an unreadable checkpoint or report.
    """
    state = load_checkpoint(checkpoint)
    model_from_checkpoint(state, checkpoint)  # refuses weights that do not make a model
    summaries = {kind: {label: score_summary(path) for label, path in d.items()} for kind, d in scores.items()}
    mixtures, speakers = training_speakers(state["config"]["shards"])
    card = make_card(state, name, f"{training_data} ({mixtures} training mixtures of {speakers} speakers)",
                     summaries, notes)
    out = Path(out_dir) / f"{name}.pt"
    slim = inference_state(state)
    # float16 storage halves the file (7.5 MB for the 200-unit model); models compute in float32 after loading
    # (model_from_checkpoint), and on 300 fm2 validation mixtures the fp16-stored weights scored the same SDRi to
    # 0.01 dB (paired difference +0.00 +- 0.00 dB, RESULTS.md "Shipped models")
    slim["model"] = {k: v.half() if v.is_floating_point() else v for k, v in slim["model"].items()}
    slim["weights_dtype"] = "float16"
    save_checkpoint(out, dict(slim, card=card))
    write_text_atomic(out.with_suffix(".md"), card_markdown(card))
    return out


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Model name, by condition and target (fm2-bpd, any-bpd, ...).")
@click.option("--training-data", required=True,
              help="What it was trained on, for people (corpus, condition); mixture and speaker counts are added.")
@click.option("--scores", multiple=True, help="KIND:LABEL=CSV, KIND valid or test: a dceval report of this model.")
@click.option("--notes", default="", help="A paragraph for the card.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=str(MODELS_DIR), help="Where models are shipped.")
def main(checkpoint, name, training_data, scores, notes, out_dir) -> None:
    """Ship a trained model with its card."""
    parsed: dict[str, dict[str, str]] = {}
    for item in scores:
        try:
            kind_label, path = item.split("=", 1)
            kind, label = kind_label.split(":", 1)
        except ValueError:
            raise click.BadParameter(f"{item!r}: write KIND:LABEL=CSV", param_hint="--scores")
        if kind not in ("valid", "test"):
            raise click.BadParameter(f"{item!r}: KIND is valid or test", param_hint="--scores")
        parsed.setdefault(kind, {})[label] = path
    try:
        out = ship(checkpoint, name, training_data, parsed, notes, out_dir)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
