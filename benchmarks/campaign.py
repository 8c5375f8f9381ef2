"""One step of a training campaign (issue 22): score a run's checkpoint and the shipped model on the same validation
mixtures, print the paired verdict, and ship the run if it beats the shipped version (``--ship``); then score the
shipped file on test mixtures and fit its count head (``--test``, ``--count-train``).

    python benchmarks/campaign.py --name any-bpd --checkpoint runs/any-bpd/best.pt \
        --valid f2='data/any/f2/valid-*.h5' --valid m2='data/any/m2/valid-*.h5' --valid fm2='data/any/fm2/valid-*.h5' \
        [--baseline fm2-bpd] [--ship --training-data "..."] \
        [--test fm2='data/any/fm2/test-*.h5' ...] [--count-train 'data/any/fm2/train-*.h5' --count-train '...fm3...']

Every score is a ``dceval`` report (the first ``--mixtures`` of each set, ``--no-oracles``) under ``--out``; a report
newer than its checkpoint is reused. The rules (a validation report of the checkpoint itself, newer than it; a new
version ships only with a paired gain >= 0.2 dB whose 95 % interval is above 0) are the ship tool's
(:mod:`spatialdc.eval.ship`). ``--baseline NAME`` compares a first version with another shipped model (recorded on
the card). Prints one line per validation set and the pooled verdict.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from spatialdc import models
from spatialdc.eval import ship as ship_mod
from spatialdc.eval.cards import report_provenance
from spatialdc.eval.report import paired_difference, per_mixture_sdri, read_csv
from spatialdc.trainer.checkpoint import load_checkpoint


def labelled(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{option} {item!r}: write LABEL=GLOB")
        label, pattern = item.split("=", 1)
        out[label] = pattern
    return out


def score(checkpoint: Path, pattern: str, report: Path, mixtures: int, workers: int) -> Path:
    """dceval of ``checkpoint`` on the first ``mixtures`` of ``pattern`` into ``report`` (reused when newer than the
    checkpoint and of the same file)."""
    fresh = (report.is_file() and report.stat().st_mtime > checkpoint.stat().st_mtime
             and Path(report_provenance(report).get("checkpoint", "")).resolve() == checkpoint.resolve())
    if not fresh:
        report.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "spatialdc.eval.dceval", "--checkpoint", str(checkpoint), "--shards",
                        pattern, "--max-mixtures", str(mixtures), "--no-oracles", "--no-plots", "--examples", "0",
                        "--workers", str(workers), "--quiet", "--report", str(report)], check=True,
                       stdout=subprocess.DEVNULL)
    return report


def verdict(new: dict[str, Path], old: dict[str, Path], what: str) -> dict:
    pooled_new, pooled_old = {}, {}
    for label in new:
        a, b = per_mixture_sdri(read_csv(old[label])), per_mixture_sdri(read_csv(new[label]))
        p = paired_difference(a, b)
        print(f"  {label}: {what} {p['mean_a']:.2f} dB, candidate {p['mean_b']:.2f} dB, paired {p['diff']:+.2f} "
              f"+- {p['ci95']:.2f} dB ({p['mixtures']} mixtures, {100 * p['gain_share']:.0f} % gain)")
        pooled_new.update(b)
        pooled_old.update(a)
    p = paired_difference(pooled_old, pooled_new)
    beats = p["diff"] >= ship_mod.RESHIP_MIN_GAIN_DB and p["diff"] - p["ci95"] > 0
    print(f"  pooled: {what} {p['mean_a']:.2f} dB, candidate {p['mean_b']:.2f} dB, paired {p['diff']:+.2f} +- "
          f"{p['ci95']:.2f} dB over {p['mixtures']} mixtures: {'BEATS' if beats else 'does not beat'} it "
          f"(needs >= {ship_mod.RESHIP_MIN_GAIN_DB} dB with the interval above 0)")
    return dict(p, beats=beats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="The shipped model's name (models/NAME.pt), e.g. any-bpd.")
    ap.add_argument("--checkpoint", help="The run's best.pt to score against the shipped version.")
    ap.add_argument("--valid", action="append", default=[], help="LABEL=GLOB of validation shards (repeat).")
    ap.add_argument("--test", action="append", default=[], help="LABEL=GLOB of test shards for the shipped file.")
    ap.add_argument("--baseline", help="A shipped model to compare a first version with (e.g. fm2-bpd).")
    ap.add_argument("--mixtures", type=int, default=300, help="First mixtures of each set.")
    ap.add_argument("--workers", type=int, default=2, help="dceval's Dask workers.")
    ap.add_argument("--out", default="runs/eval/campaign", help="Folder of the reports.")
    ap.add_argument("--ship", action="store_true", help="Ship the checkpoint if it beats the shipped version.")
    ap.add_argument("--training-data", default="", help="With --ship: the card's training-data line.")
    ap.add_argument("--notes", default="", help="With --ship: a paragraph for the card.")
    ap.add_argument("--count-train", action="append", default=[], help="dccount --train globs (repeat).")
    ap.add_argument("--count-valid", action="append", default=[], help="dccount --valid globs (repeat).")
    ap.add_argument("--count-test", action="append", default=[], help="dccount --test globs (repeat).")
    args = ap.parse_args()
    out, valid = Path(args.out), labelled(args.valid, "--valid")
    # relative to the working folder, so that the commands recorded on the card and in the count head name no
    # machine's absolute path
    shipped = Path(os.path.relpath(ship_mod.MODELS_DIR / f"{args.name}.pt"))
    if args.checkpoint:
        step_valid(args, out, valid, shipped)
    if args.test:
        step_test(args, out, labelled(args.test, "--test"), shipped)
    if args.count_train:
        step_count(args, out, shipped)


def step_valid(args, out: Path, valid: dict[str, str], shipped: Path) -> None:
    """Score the candidate and the shipped version (or ``--baseline``) on the validation sets; ship if it beats."""
    cand = Path(args.checkpoint)
    new = {k: score(cand, v, out / f"{args.name}-candidate-valid-{k}.csv", args.mixtures, args.workers)
           for k, v in valid.items()}
    ref = shipped if shipped.is_file() else (ship_mod.MODELS_DIR / f"{args.baseline}.pt" if args.baseline else None)
    against = {}
    if ref is not None:
        against = {k: score(ref, v, out / f"{ref.stem}-shipped-valid-{k}.csv", args.mixtures, args.workers)
                   for k, v in valid.items()}
        print(f"{cand} against {ref}:")
        p = verdict(new, against, ref.stem)
        if shipped.is_file() and not p["beats"]:
            return
    if args.ship:
        path = ship_mod.ship(cand, args.name, args.training_data, {"valid": {k: str(v) for k, v in new.items()}},
                             args.notes, against={k: str(v) for k, v in against.items()} or None)
        row = load_checkpoint(path)["card"]["campaign"]["rows"][-1]
        print(f"shipped {path}: version {row['version']}, {row['steps']} steps, {row['cpu_hours']} CPU-hours, "
              f"validation {row['valid']}")


def step_test(args, out: Path, test: dict[str, str], shipped: Path) -> None:
    """Score the shipped file on the test sets once and put the numbers on its card (same weights)."""
    reports = {k: str(score(shipped, v, out / f"{args.name}-shipped-test-{k}.csv", args.mixtures, args.workers))
               for k, v in test.items()}
    for k, r in reports.items():
        rows = per_mixture_sdri(read_csv(r))
        print(f"  test {k}: {sum(rows.values()) / len(rows):.2f} dB over {len(rows)} mixtures ({r})")
    card = models.card(args.name)
    ship_mod.ship(shipped, args.name, card["training_data"], {"test": reports}, card.get("notes", ""))


def step_count(args, out: Path, shipped: Path) -> None:
    """Fit the shipped file's count head with dccount and ship it beside the model."""
    head = out / f"{args.name}.count_head.json"
    cmd = [sys.executable, "-m", "spatialdc.eval.dccount", "--checkpoint", str(shipped), "--out", str(head), "--quiet"]
    for option, globs in (("--train", args.count_train), ("--valid", args.count_valid), ("--test", args.count_test)):
        for g in globs:
            cmd += [option, g]
    subprocess.run(cmd, check=True)
    card = models.card(args.name)
    ship_mod.ship(shipped, args.name, card["training_data"], {}, card.get("notes", ""), count_head=head)
    print(f"count head of {args.name} shipped beside it: {shipped.with_suffix('.count_head.json')}")


if __name__ == "__main__":
    main()
