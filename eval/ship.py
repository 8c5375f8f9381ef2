"""Ship a trained model: ``models/NAME.pt`` (float16 inference checkpoint with its card), ``models/NAME.md`` (the
card for people, :mod:`spatialdc.eval.cards`) and, with a count head, ``models/NAME.count_head.json``.

    python -m spatialdc.eval.ship runs/any-bpd/best.pt --name any-bpd --training-data "f2, m2 and fm2 of ..." \
        --scores valid:fm2=runs/eval/any-bpd-valid-fm2.csv [...] \
        --against valid:fm2=runs/eval/shipped-any-bpd-valid-fm2.csv [...]

The rules of a campaign (issue 22), checked here:

- **validation reports** (``--scores valid:LABEL=CSV``) are ``dceval`` reports of CHECKPOINT itself written after
  it (their provenance names the file, their time is later): a missing or older report is refused;
- **a new version of a shipped model** needs the shipped version's reports on the same validation mixtures
  (``--against valid:LABEL=CSV``) and ships only if the paired SDRi difference, pooled over the sets' mixtures, has a
  mean of at least :data:`RESHIP_MIN_GAIN_DB` and a 95 % interval above 0; its card keeps the earlier versions' rows
  and adds one (``--force`` ships anyway and says so on the card);
- **the same weights again** (the shipped float16 weights unchanged; CHECKPOINT may be the shipped file itself)
  update the card: test reports, the count head (``--count-head``, fitted by ``dccount`` on the shipped file),
  notes; the campaign rows and the training-data line stay;
- **test reports** (``--scores test:LABEL=CSV``) are of CHECKPOINT or of a file with the weights being shipped.

The weights are stored as float16 and compute in float32 after loading.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from spatialdc import models
from spatialdc.pipeline.atomic import atomic_path, write_text_atomic
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.checkpoint import inference_state, load_checkpoint, model_from_checkpoint, save_checkpoint
from spatialdc.trainer.lineage import weights_sha256

from .cards import card_markdown, make_card, new_campaign, report_provenance, score_summary
from .count import CountHead
from .report import paired_difference, per_mixture_sdri, read_csv

MODELS_DIR = Path(models.__file__).resolve().parent  # the package folder of spatialdc.models (in a clone: models/)
RESHIP_MIN_GAIN_DB = 0.2  # a new version must beat the shipped one by this much (paired mean), interval above 0


def training_speakers(shards_pattern: str) -> tuple[int, int]:
    """(mixtures, distinct speakers) of a run's training shards."""
    shards = ShardSet(expand_shards(shards_pattern))
    speakers = set()
    for i in range(len(shards)):
        speakers.update(shards.read(i, ("spec",))["spec"].speakers)
    shards.close()
    return len(shards), len(speakers)


def half_weights(state: dict) -> dict:
    """The weights as stored in a shipped file: float16 (7.5 MB for the 2 x 200 model; the same SDRi to 0.01 dB as
    float32 on 300 fm2 validation mixtures, RESULTS.md "Shipped models")."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}


def check_valid_reports(checkpoint: Path, reports: dict[str, str]) -> None:
    """Refuse validation reports that are not of ``checkpoint`` or older than it.

    Raises:
        FileNotFoundError: a report is missing. ValueError: a report of another file, or written before the
            checkpoint (the model changed since it was scored).
    """
    for label, report in reports.items():
        path = Path(report)
        if not path.is_file():
            raise FileNotFoundError(f"validation report {label}={report} not found; score {checkpoint} with dceval "
                                    f"--checkpoint {checkpoint} --report {report}")
        scored = report_provenance(path).get("checkpoint")
        if not scored or Path(scored).resolve() != checkpoint.resolve():
            raise ValueError(f"validation report {report} scores {scored!r}, not {checkpoint}: score the checkpoint "
                             f"you ship")
        if path.stat().st_mtime < checkpoint.stat().st_mtime:
            raise ValueError(f"validation report {report} is older than {checkpoint} (the model changed since it "
                             f"was scored): score it again with dceval --checkpoint {checkpoint}")


def check_test_reports(checkpoint: Path, shipped_hash: str, reports: dict[str, str]) -> None:
    """Refuse test reports that score other weights than those shipped (of ``checkpoint``, or of a file holding
    its float16 weights: the shipped file itself).

    Raises:
        ValueError: a report of other weights, or without provenance.
    """
    for label, report in reports.items():
        scored = report_provenance(report).get("checkpoint")
        if not scored or not Path(scored).is_file():
            raise ValueError(f"test report {report} names no checkpoint that exists here ({scored!r})")
        if Path(scored).resolve() == checkpoint.resolve():
            continue
        if weights_sha256(half_weights(load_checkpoint(scored))) != shipped_hash:
            raise ValueError(f"test report {report} scores {scored}, whose weights are not the ones shipped")


def reship_verdict(scores: dict[str, str], against: dict[str, str], previous: str) -> dict:
    """The paired comparison that lets a new version replace the shipped one: per-mixture SDRi of the new model's
    validation reports against the shipped model's on the same mixtures, pooled over the sets.

    Returns:
        :func:`~spatialdc.eval.report.paired_difference` of the pooled mixtures, with ``vs`` = ``previous``.

    Raises:
        ValueError: a validation set without its ``--against`` report, or reports of different mixtures.
    """
    missing = sorted(set(scores) - set(against))
    if missing:
        raise ValueError(f"re-shipping needs the shipped model's reports on the same validation mixtures: "
                         f"--against valid:{missing[0]}=CSV (dceval --checkpoint models/<name>.pt ...)")
    new, old = {}, {}
    for label in scores:
        new.update(per_mixture_sdri(read_csv(scores[label])))
        old.update(per_mixture_sdri(read_csv(against[label])))
    return dict(paired_difference(old, new), vs=previous)


def ship(checkpoint: str | Path, name: str, training_data: str, scores: dict[str, dict[str, str]],
         notes: str = "", out_dir: str | Path = MODELS_DIR, against: dict[str, str] | None = None,
         count_head: str | Path | None = None, force: bool = False) -> Path:
    """Write ``out_dir/NAME.pt`` (the float16 inference state of ``checkpoint`` with its card), ``out_dir/NAME.md``
    and, with ``count_head``, ``out_dir/NAME.count_head.json``, under the rules of the module docstring.

    Args:
        scores: ``{"valid" | "test": {label: dceval CSV}}``. against: ``{label: CSV}``, the shipped version's
            validation reports (re-shipping). count_head: a ``dccount`` head fitted on the weights shipped.
        force: ship a new version that does not beat the shipped one (the card says so).

    Raises:
        FileNotFoundError, ValueError: an unreadable checkpoint or report, or a rule above broken.
    """
    checkpoint, out = Path(checkpoint), Path(out_dir) / f"{name}.pt"
    state = load_checkpoint(checkpoint)
    model_from_checkpoint(state, checkpoint)  # refuses weights that do not make a model
    shipped_hash = weights_sha256(half_weights(state))
    previous = load_checkpoint(out) if out.is_file() else None
    same = previous is not None and weights_sha256(previous["model"]) == shipped_hash
    check_valid_reports(checkpoint, scores.get("valid", {}))
    check_test_reports(checkpoint, shipped_hash, scores.get("test", {}))
    summaries = {kind: {label: score_summary(path) for label, path in d.items()} for kind, d in scores.items()}
    if same:  # the same version: keep what its card had, update what is given
        summaries = {kind: {**previous["card"].get(kind, {}), **summaries.get(kind, {})} for kind in ("valid", "test")}
    if same:  # the card's description of the data stands (the training shards need not be on this machine)
        training_data = previous["card"]["training_data"]
    else:
        mixtures, speakers = training_speakers(state["config"]["shards"])
        training_data = f"{training_data} ({mixtures} training mixtures of {speakers} speakers)"
    card = make_card(state, name, training_data, summaries, notes)
    card["campaign"] = campaign_of(state, summaries.get("valid", {}), previous, same, scores, against, name, force)
    card["weights_sha256"] = shipped_hash
    head = attach_count_head(count_head, shipped_hash, out) if count_head else None
    card["count_head"] = head or (previous["card"].get("count_head") if same else None)
    slim = dict(inference_state(state), model=half_weights(state), weights_dtype="float16", card=card)
    save_checkpoint(out, slim)
    write_text_atomic(out.with_suffix(".md"), card_markdown(card))
    if not same and not head:
        out.with_suffix(".count_head.json").unlink(missing_ok=True)  # a head of the replaced weights
    return out


def campaign_of(state: dict, valid: dict, previous: dict | None, same: bool, scores: dict, against: dict | None,
                name: str, force: bool) -> dict:
    """The card's campaign: the previous card's for the same weights; else the previous rows and a new one, once
    the new version beats the shipped one (:func:`reship_verdict`) or ``force``.

    Raises:
        ValueError: a new version without validation scores, or one that does not beat the shipped version.
    """
    old_card = (previous or {}).get("card") or {}
    old_campaign = old_card.get("campaign")
    if previous is not None and not old_campaign and old_card.get("valid"):  # shipped before cards kept campaigns
        old_campaign = new_campaign(previous, old_card["valid"], None, None, date="before campaigns")
    if same and old_campaign:
        return old_campaign
    if not valid:
        raise ValueError("a new version needs validation reports: --scores valid:LABEL=CSV (dceval of the checkpoint)")
    paired = None
    if previous is not None and not same:
        version = len((old_campaign or {}).get("rows", [])) or 1
        paired = reship_verdict(scores["valid"], against or {}, f"{name} version {version}")
        beats = paired["diff"] >= RESHIP_MIN_GAIN_DB and paired["diff"] - paired["ci95"] > 0
        if not beats and not force:
            raise ValueError(f"the new {name} does not beat the shipped one on validation: paired difference "
                             f"{paired['diff']:+.2f} ± {paired['ci95']:.2f} dB over {paired['mixtures']} mixtures "
                             f"(needs >= {RESHIP_MIN_GAIN_DB} dB with the interval above 0); keep training")
        paired["forced"] = bool(force and not beats)
    elif against:  # a first version, compared with another model (e.g. the one it started from)
        other = report_provenance(next(iter(against.values()))).get("checkpoint") or "another model"
        paired = reship_verdict(scores["valid"], against, Path(other).stem)
    return new_campaign(state, valid, old_campaign if previous is not None else None, paired)


def attach_count_head(path: str | Path, shipped_hash: str, out: Path) -> dict:
    """Copy a count head beside the shipped file (``NAME.count_head.json``) once it is known to fit the shipped
    weights; returns the card's summary of it.

    Raises:
        ValueError: a head fitted on other weights (fit it with ``dccount --checkpoint models/NAME.pt``).
    """
    head = CountHead.load(path)
    if head.weights_sha256 != shipped_hash:
        raise ValueError(f"count head {path} was not fitted on the weights shipped as {out.name}: fit it with dccount "
                         f"--checkpoint {out} after shipping the weights")
    target = out.with_suffix(".count_head.json")
    if Path(path).resolve() != target.resolve():
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    p = head.provenance
    return {"file": target.name, "classes": head.classes, "valid_accuracy": p.get("valid_accuracy"),
            "test_accuracy": p.get("test_accuracy"), "test": p.get("test", []), "command": p.get("command")}


def _pairs(items: tuple[str, ...], option: str, kinds: tuple[str, ...]) -> dict[str, dict[str, str]]:
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        try:
            kind_label, path = item.split("=", 1)
            kind, label = kind_label.split(":", 1)
        except ValueError:
            raise click.BadParameter(f"{item!r}: write KIND:LABEL=CSV", param_hint=option)
        if kind not in kinds:
            raise click.BadParameter(f"{item!r}: KIND is one of {', '.join(kinds)}", param_hint=option)
        parsed.setdefault(kind, {})[label] = path
    return parsed


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Model name, by condition and target (fm2-bpd, any-bpd, ...).")
@click.option("--training-data", required=True,
              help="What it was trained on, for people (corpus, condition); mixture and speaker counts are added.")
@click.option("--scores", multiple=True, help="KIND:LABEL=CSV, KIND valid or test: a dceval report of this model.")
@click.option("--against", multiple=True,
              help="valid:LABEL=CSV: the shipped version's dceval report on the same validation mixtures.")
@click.option("--count-head", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A dccount head fitted on the shipped file's weights (dccount --checkpoint models/NAME.pt).")
@click.option("--force", is_flag=True, help="Ship a new version that does not beat the shipped one.")
@click.option("--notes", default="", help="A paragraph for the card.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=str(MODELS_DIR), help="Where models are shipped.")
def main(checkpoint, name, training_data, scores, against, count_head, force, notes, out_dir) -> None:
    """Ship a trained model with its card (float16 weights; the campaign rules of the module docstring)."""
    parsed = _pairs(scores, "--scores", ("valid", "test"))
    against_valid = _pairs(against, "--against", ("valid",)).get("valid", {})
    try:
        out = ship(checkpoint, name, training_data, parsed, notes, out_dir, against_valid, count_head, force)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    campaign = json.dumps(load_checkpoint(out)["card"]["campaign"]["rows"][-1])
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.md')}; campaign row {campaign}")


if __name__ == "__main__":
    main()
