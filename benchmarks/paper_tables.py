"""Tzinis et al. 2019, Tables 1 and 2 on our data, in one command: train DC models on DS, BPD and RPD targets on the
2-speaker training sets, evaluate each on the six test sets (3-speaker sets with K = 3) beside the oracle DS and BPD
masks, and write both tables (columns f, fm, m, all; mean SDRi in dB) as CSV and Markdown with the paper's numbers
beside, and the CPU budget used.

    python benchmarks/paper_tables.py --data DIR --out OUT [--minutes 29] [--hidden 200] [--test-mixtures 300]
        [--checkpoint ds=runs/a/best.pt --checkpoint bpd=...]
    python benchmarks/paper_tables.py --data DIR --out OUT --shipped        # the shipped models (models/)
    python benchmarks/paper_tables.py --data DIR --out OUT --only-given \
        --checkpoint bpd:f=models/f2-bpd.pt --checkpoint bpd:m=models/m2-bpd.pt --checkpoint bpd:fm=models/fm2-bpd.pt \
        --checkpoint bpd-any=models/any-bpd.pt --checkpoint ds:fm=models/fm2-ds.pt

``--checkpoint LABEL=PATH`` with LABEL = TARGET, TARGET:GENDERS (a model per condition, as the paper trains them:
``bpd:f`` is scored on the f2 and f3 test sets only) or TARGET-NAME (another model of that target, its own row, e.g.
``bpd-any``: one model for every gender mix). With ``--only-given`` nothing is trained. ``--shipped`` scores the
shipped models (:mod:`spatialdc.models`) and trains nothing: for each target and gender mix the per-condition model
(``f2-bpd`` for the f columns) where one is shipped, else the model of every gender mix (``any-bpd``); their cards'
cumulative steps and CPU-hours are the budget.

DIR holds the six rendered datasets (``dcgen render --all-datasets --out DIR``). Each target gets one model, trained
for ``--minutes`` of wall clock (validation included) on the union of the f2, m2 and fm2 training sets
(``DIR/*2/train-*.h5``; ``--train-glob fm2``: the mixed-gender set only) with the settings of RESULTS.md (2 BLSTM
layers, D = 20, batch 8, 100-frame chunks, Adam 1e-3), unless ``--checkpoint TARGET=PATH`` gives one. Each model is
scored on the first ``--test-mixtures`` mixtures of each test set; the oracle masks on the same mixtures. Writes
OUT/rows.csv (every mixture, method and source), OUT/tables.csv, OUT/tables.md, OUT/budget.json and OUT/dc_<target>/
(the training runs; re-running the command resumes them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from spatialdc.eval.evaluate import evaluate
from spatialdc.eval.report import PAPER_SDRI, paper_table, paper_table_markdown, write_csv
from spatialdc.pipeline.atomic import write_text_atomic
from spatialdc.pipeline.parallel import dask_client
from spatialdc.pipeline.provenance import package_versions
from spatialdc.pipeline.specs import ALL_DATASETS
from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.lineage import totals
from spatialdc.trainer.loop import train

TARGETS = ("ds", "bpd", "rpd")


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    """``LABEL=PATH`` items -> {label: path}; LABEL is TARGET, TARGET:GENDERS or TARGET-NAME (see the module doc)."""
    out = {}
    for item in items:
        label, sep, path = item.partition("=")
        target = label.split(":")[0].split("-")[0]
        genders = label.split(":")[1] if ":" in label else "f,fm,m"
        if (not sep or target not in TARGETS or not Path(path).is_file()
                or not set(genders.split(",")) <= {"f", "fm", "m"}):
            raise SystemExit(f"--checkpoint {item!r}: expected TARGET[:GENDERS|-NAME]=PATH with TARGET in {TARGETS}, "
                             "GENDERS of f, fm, m, and an existing file")
        out[label] = path
    return out


def shipped_checkpoints() -> tuple[dict[str, str], dict[str, dict]]:
    """Labels of the shipped models for :func:`score` (per condition where shipped, the ``any-`` model elsewhere)
    and their budgets from the cards: ``({label: path}, {label: {"checkpoint", "steps", "cpu_hours", "name"}})``."""
    from spatialdc import models

    names, given = set(models.names()), {}
    for target in TARGETS:
        by_model: dict[str, list[str]] = {}
        for gender in ("f", "fm", "m"):
            name = f"{gender}2-{target}" if f"{gender}2-{target}" in names else f"any-{target}"
            if name in names:
                by_model.setdefault(name, []).append(gender)
        for name, genders in by_model.items():
            given[f"{target}:{','.join(genders)}"] = str(models.model_file(name))
    budgets = {}
    for label, path in given.items():
        t = totals(load_checkpoint(path))  # the card's campaign, or what the checkpoint counts
        budgets[label] = {"checkpoint": path, "name": Path(path).stem, "trained": "shipped", "steps": t["steps"],
                          "cpu_hours": round(t["cpu_hours"], 2), "seconds": None}
    return given, budgets


def method_of(label: str) -> str:
    """The table row of a checkpoint label: ``dc_bpd`` for bpd and bpd:f, ``dc_bpd-any`` for bpd-any."""
    return "dc_" + label.split(":")[0]


def scored_genders(label: str) -> set[str]:
    """The test sets' gender mixes a checkpoint label is scored on."""
    return set(label.split(":")[1].split(",")) if ":" in label else {"f", "fm", "m"}


def train_models(data: Path, out: Path, minutes: float, hidden: int, given: dict[str, str],
                 max_steps: int = 0, train_glob: str = "*2", only_given: bool = False) -> dict[str, dict]:
    """The given checkpoints, and one trained now for each target without one (unless ``only_given``).
    Returns {label: {"checkpoint", "seconds", "steps"}}."""
    models = {label: {"checkpoint": path, "seconds": None, "steps": None, "trained": "given"}
              for label, path in given.items()}
    for target in TARGETS:
        if only_given or any(label.split(":")[0].split("-")[0] == target for label in given):
            continue
        config = TrainConfig(shards=str(data / train_glob / "train-*.h5"),
                             valid=str(data / train_glob / "valid-*.h5"), target=target, hidden=hidden,
                             batch_size=8, epochs=1000, max_minutes=minutes, max_steps=max_steps,
                             valid_mixtures=300, num_workers=0)
        t0 = time.perf_counter()
        result = train(config, out / f"dc_{target}", progress=False)
        models[target] = {"checkpoint": str(out / f"dc_{target}" / "best.pt"),
                          "seconds": round(time.perf_counter() - t0, 1), "steps": result["steps"], "trained": "now"}
        print(f"trained dc_{target}: {result['steps']} steps in {models[target]['seconds']:.0f} s", flush=True)
    return models


def score(data: Path, models: dict[str, dict], test_mixtures: int, workers: int) -> list[dict]:
    """Rows of every model and (once) the oracle masks on the first ``test_mixtures`` of each of the six test sets,
    on one local Dask cluster of ``workers`` processes (0: in this process). A model given for some gender mixes
    only (``bpd:f``) is scored on those test sets; rows are named by :func:`method_of`."""
    rows = []
    with contextlib.ExitStack() as stack:
        address = stack.enter_context(dask_client(workers)).scheduler.address if workers else None
        for gender, n in ALL_DATASETS:
            pattern = str(data / f"{gender}{n}" / "test-*.h5")
            oracles = True
            for label, model in models.items():
                if gender not in scored_genders(label):
                    continue
                new = evaluate([pattern], model["checkpoint"], workers=workers, scheduler=address,
                               max_mixtures=test_mixtures, progress=False, oracles=oracles)
                for r in new:
                    if r["method"].startswith("dc_"):
                        r["method"] = method_of(label)
                rows += new
                oracles = False
            print(f"scored {gender}{n}", flush=True)
    return rows


def write_tables(rows: list[dict], out: Path, meta: dict) -> str:
    """tables.csv and tables.md (paper's numbers in brackets); returns the Markdown."""
    table = paper_table(rows)
    flat = [dict(e, **{f"paper_{c}": PAPER_SDRI.get((e["speakers"], e["method"]), {}).get(c, float("nan"))
                       for c in ("f", "fm", "m", "all")}) for e in table]
    write_csv(out / "tables.csv", flat, meta)
    parts = []
    for n, title in ((2, "Table 1: 2 speakers"), (3, "Table 2: 3 speakers (models trained on 2)")):
        sub = [e for e in table if e["speakers"] == n]
        parts.append(f"## {title}, mean SDRi (dB); Tzinis et al. 2019 in brackets\n\n"
                     + paper_table_markdown(sub, PAPER_SDRI))
    budget = ", ".join(f"{t}: " + (f"{m['steps']} steps, {m['seconds'] / 60:.1f} min" if m["seconds"] is not None
                                    else f"shipped {m['name']} ({m['steps']} steps, {m['cpu_hours']} CPU-hours)"
                                    if m.get("trained") == "shipped" else f"given ({m['checkpoint']})")
                       for t, m in meta["models"].items())
    md = (f"# The paper's tables on our data\n\n" + "\n".join(parts) + f"\nTraining budget (2 CPU cores): {budget}. "
          f"Test: the first {meta['test_mixtures']} mixtures of each test set. Total wall time "
          f"{meta['seconds'] / 60:.1f} min.\n\nCommand: `{' '.join(meta['command'])}`\n")
    write_text_atomic(out / "tables.md", md)
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--minutes", type=float, default=29.0, help="wall-clock training budget per model")
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--test-mixtures", type=int, default=300)
    ap.add_argument("--checkpoint", action="append", default=[],
                    help="LABEL=PATH: use this model (LABEL: TARGET, TARGET:GENDERS or TARGET-NAME; see above)")
    ap.add_argument("--only-given", action="store_true", help="train nothing: score the given checkpoints only")
    ap.add_argument("--shipped", action="store_true",
                    help="train nothing: score the shipped models (per condition where shipped, any-TARGET elsewhere)")
    ap.add_argument("--workers", type=int, default=2, help="evaluation processes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training")
    ap.add_argument("--max-steps", type=int, default=0, help="cap on training steps (0: none; for smoke tests)")
    ap.add_argument("--train-glob", default="*2", help="datasets under DIR to train on: '*2' is f2, m2 and fm2; "
                    "'fm2' the mixed-gender set only (as the models of RESULTS.md)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    missing = [f"{g}{n}" for g, n in ALL_DATASETS if not list((args.data / f"{g}{n}").glob("test-*.h5"))]
    if missing:
        raise SystemExit(f"{args.data} lacks the test sets of {missing}: render them with "
                         f"`dcgen render --all-datasets --out {args.data}`")
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.shipped:
        models = shipped_checkpoints()[1]
        if not models:
            raise SystemExit("no shipped model to score (models/ holds none)")
    else:
        models = train_models(args.data, args.out, args.minutes, args.hidden, parse_checkpoints(args.checkpoint),
                              args.max_steps, args.train_glob, args.only_given)
    rows = score(args.data, models, args.test_mixtures, args.workers)
    meta = {"models": models, "train_glob": args.train_glob, "test_mixtures": args.test_mixtures,
            "seconds": time.perf_counter() - t0,
            "command": sys.argv, "versions": package_versions()}
    write_csv(args.out / "rows.csv", rows, meta)
    print(write_tables(rows, args.out, meta))
    write_text_atomic(args.out / "budget.json", json.dumps(meta, indent=1, default=str))
    unscored = sum(1 for r in rows if not np.isfinite(float(r["sdri"])))
    if unscored:
        print(f"({unscored} rows unscored: silent references; left out of the means)")


if __name__ == "__main__":
    main()
