"""Model cards: what a shipped model is, how it was made (command, data, campaign budget) and what it scores.

A card is a dict stored in the shipped checkpoint (``models/NAME.pt``, key ``card``) and written for people as
``models/NAME.md`` (:func:`card_markdown`); the two always say the same (a test checks every shipped model). Its
``campaign`` keeps the model's history across re-ships (issue 22): the recipe (every ``dctrain`` command since
random initialization), the cumulative steps and CPU-hours, the validation sets every version is scored on, and
one row per shipped version (validation SDRi against cumulative CPU-hours, with the paired difference to the
version before).
"""

from __future__ import annotations

import datetime
import json
import shlex
from pathlib import Path

from spatialdc.pipeline.provenance import command_line
from spatialdc.trainer.lineage import dctrain_command, totals

from .report import read_csv, summarize


def score_summary(csv_path: str | Path) -> dict:
    """SDRi of the model's rows of a ``dceval`` report: mean, 95 % CI half-width, median, mixtures, and where the
    report came from (its shards and command, from the provenance file beside it).

    Raises:
        FileNotFoundError: no report. ValueError: the report has no model rows (dc_*).
    """
    rows = [r for r in read_csv(csv_path) if r["method"].startswith("dc_")]
    if not rows:
        raise ValueError(f"{csv_path} has no model rows (dc_*): score the model with dceval --checkpoint")
    s = summarize(rows, by=("method",))[0]
    prov = report_provenance(csv_path)
    return {"sdri_mean": round(s["sdri_mean"], 2), "sdri_ci95": round(s["sdri_ci95"], 2),
            "sdri_median": round(s["sdri_median"], 2), "si_sdri_mean": round(s["si_sdri_mean"], 2),
            "mixtures": s["mixtures"], "shards": prov.get("shards"),
            "command": shlex.join(command_line(prov["command"])) if prov.get("command") else None}


def report_provenance(csv_path: str | Path) -> dict:
    """The provenance dceval wrote beside a report (``<report>.json``: checkpoint, shards, command, ...), or {}."""
    path = Path(str(csv_path) + ".json")
    return json.loads(path.read_text()) if path.is_file() else {}


def make_card(state: dict, name: str, training_data: str, scores: dict[str, dict[str, dict]],
              notes: str = "") -> dict:
    """The card of a shipped model from its checkpoint ``state`` and its scores (``{"valid" | "test": {label:
    :func:`score_summary`}}``); the campaign is added by the ship tool (:func:`campaign_row`)."""
    config = state["config"]
    history = state.get("history") or [{}]
    minutes = history[-1].get("seconds", 0.0) / 60
    cpu = history[-1].get("cpu_seconds")
    budget = f"{state.get('step', 0)} steps, {minutes:.0f} min of wall clock" + (
        f", {cpu / 60:.0f} CPU-minutes of the training process" if cpu else "")
    args = state.get("model_args") or config
    return {"name": name, "target": config["target"], "training_data": training_data, "budget": budget,
            "steps": state.get("step"), "epochs": state.get("epoch"), "minutes": round(minutes, 1),
            "best_valid_loss": state.get("best_val"), "command": dctrain_command(config),
            "architecture": f"{args['layers']} x {args['hidden']} BLSTM, D = {args['embedding_dim']}",
            "versions": state.get("versions"), "valid": scores.get("valid", {}), "test": scores.get("test", {}),
            "notes": notes}


def campaign_row(state: dict, version: int, valid: dict[str, dict], paired: dict | None,
                 date: str | None = None) -> dict:
    """One row of a card's campaign curve: the version, the date (default today), cumulative steps and CPU-hours of
    ``state`` (:func:`spatialdc.trainer.lineage.totals`), validation SDRi per set and their mean, and the paired
    difference to the version it replaces (None for a first version)."""
    t = totals(state)
    means = {label: s["sdri_mean"] for label, s in valid.items()}
    return {"version": version, "date": date or datetime.date.today().isoformat(), "steps": t["steps"],
            "cpu_hours": round(t["cpu_hours"], 2), "valid": means,
            "valid_mean": round(sum(means.values()) / max(len(means), 1), 2), "paired": paired}


def new_campaign(state: dict, valid: dict[str, dict], previous: dict | None, paired: dict | None,
                 date: str | None = None) -> dict:
    """The campaign of a newly shipped version: the previous version's rows (``previous`` card's campaign, None for
    a first ship) and a row for this one; the recipe and totals of ``state``'s lineage."""
    t = totals(dict(state, card=None))
    rows = list((previous or {}).get("rows", []))
    row = campaign_row(dict(state, card=None), len(rows) + 1, valid, paired, date)
    return {"steps": t["steps"], "cpu_hours": round(t["cpu_hours"], 2), "recipe": t["recipe"],
            "valid_sets": {label: s.get("shards") for label, s in valid.items()}, "rows": rows + [row]}


def _campaign_markdown(campaign: dict) -> list[str]:
    lines = ["## Campaign", "",
             f"{campaign['steps']} steps and {campaign['cpu_hours']:.2f} CPU-hours since random initialization, "
             "in these legs (each continues the one before with `--init-from`):", ""]
    lines += [f"{k}. `{cmd}`" for k, cmd in enumerate(campaign["recipe"], 1)]
    labels = sorted({label for r in campaign["rows"] for label in r["valid"]})
    lines += ["", "Validation SDRi (dB) of every shipped version, on the same mixtures each time ("
              + "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                          for k, v in campaign["valid_sets"].items()) + "):", "",
              "| version | date | steps | CPU-hours | " + " | ".join(labels) + " | mean | paired vs previous |",
              "|---|---|---|---|" + "---|" * len(labels) + "---|---|"]
    for r in campaign["rows"]:
        p = r.get("paired")
        paired = (f"{p['diff']:+.2f} ± {p['ci95']:.2f} dB ({p['mixtures']} mixtures, vs {p['vs']})" if p else "")
        lines.append(f"| {r['version']} | {r['date']} | {r['steps']} | {r['cpu_hours']:.2f} | "
                     + " | ".join(f"{r['valid'].get(k, float('nan')):.2f}" for k in labels)
                     + f" | {r['valid_mean']:.2f} | {paired} |")
    return lines + [""]


def _scores_markdown(card: dict) -> list[str]:
    lines = []
    for kind in ("valid", "test"):
        if not card.get(kind):
            continue
        lines += [f"## {'Validation' if kind == 'valid' else 'Test'} (SDRi from dceval, dB)", "",
                  "| set | mixtures | SDRi mean ± CI95 | median | SI-SDRi | shards |", "|---|---|---|---|---|---|"]
        for label, s in card[kind].items():
            lines.append(f"| {label} | {s['mixtures']} | {s['sdri_mean']:.2f} ± {s['sdri_ci95']:.2f} | "
                         f"{s['sdri_median']:.2f} | {s['si_sdri_mean']:.2f} | {', '.join(s.get('shards') or [])} |")
        lines.append("")
    return lines


def card_markdown(card: dict) -> str:
    """The card for people (``NAME.md``): the same facts as the card dict."""
    leg = " of the last leg" if card.get("campaign") else ""
    lines = [f"# Model card: {card['name']}", "",
             f"Deep clustering ({card['architecture']}), trained on **{card['target'].upper()}** targets.", "",
             f"- Training data: {card['training_data']}",
             f"- Budget{leg}: {card['budget']} ({card['epochs']} epochs); best validation loss "
             f"{card['best_valid_loss']:.4f}",
             f"- Command{leg}: `{card['command']}`",
             f"- Packages: {', '.join(f'{k} {v}' for k, v in (card.get('versions') or {}).items())}"]
    if card.get("count_head"):
        h = card["count_head"]
        lines.append(f"- Count head (`dcsep --speakers auto`): `{h['file']}`, counts {h['classes']}"
                     + (f", {100 * h['test_accuracy']:.1f} % right on {', '.join(h['test'])}"
                        if h.get("test_accuracy") is not None else ""))
    lines.append("")
    lines += _scores_markdown(card)
    if card.get("campaign"):
        lines += _campaign_markdown(card["campaign"])
    if card.get("notes"):
        lines += [card["notes"], ""]
    lines += ["Licence of the weights: as the project's code; trained on LibriSpeech clips (CC BY 4.0, see README)"
              + (" and speechocean762 (CC BY 4.0)" if "speechocean762" in card["training_data"] else "") + ".", ""]
    return "\n".join(lines)
