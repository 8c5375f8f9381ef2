"""Reports: the per-source CSV, and summary tables of SDRi per method (Markdown and text)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline.atomic import write_text_atomic

METRICS = ("sdri", "si_sdri", "sdr", "sir", "sar")


def write_csv(path: str | Path, rows: Sequence[dict], provenance: dict | None = None) -> None:
    """Rows as CSV (atomically); ``provenance`` goes to ``<path>.json`` beside it."""
    if not rows:
        raise ValueError("no rows to write: was the test set empty?")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())
    if provenance is not None:
        write_text_atomic(Path(str(path) + ".json"), json.dumps(provenance, indent=1, sort_keys=True))


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a report written by :func:`write_csv`, numbers as float (NaN for empty), other fields as text.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"report {path} not found; write one with dceval --report")
    numeric = set(METRICS) | {"si_sdr", "sdr_mix", "si_sdr_mix", "seconds", "min_angle_gap_deg"}
    with path.open(newline="") as fh:
        return [{k: (float(v) if k in numeric and v != "" else v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _true(v) -> bool:
    return v is True or str(v).lower() == "true"


def unscored(row: dict) -> bool:
    """A row without scores: a silent reference, or a miscounted mixture (``dceval --speakers auto``)."""
    return _true(row.get("silent_reference")) or _true(row.get("count_error"))


def count_confusion(rows: Sequence[dict]) -> str:
    """Accuracy and confusion matrix (true count x estimated count) of the per-mixture speaker-count estimates."""
    pairs = {r["mixture_id"]: (int(r["num_speakers"]), int(r["num_speakers_est"])) for r in rows}
    true = sorted({t for t, _ in pairs.values()})
    est = sorted({e for _, e in pairs.values()} | set(true))
    right = sum(t == e for t, e in pairs.values())
    lines = [f"speaker count: {right} of {len(pairs)} mixtures right ({100 * right / max(len(pairs), 1):.1f} %)",
             "", "| true \\ estimated | " + " | ".join(map(str, est)) + " |", "|---|" + "---|" * len(est)]
    for t in true:
        lines.append(f"| {t} | " + " | ".join(str(sum(1 for a, b in pairs.values() if a == t and b == e))
                                            for e in est) + " |")
    return "\n".join(lines) + "\n"


def summarize(rows: Sequence[dict], by: Sequence[str] = ("dataset", "method")) -> list[dict]:
    """Mean, median and 95 % CI half-width (1.96 standard errors over sources) of each metric per group.
    Rows with a silent reference or a wrongly estimated speaker count (no score) are left out."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not unscored(r):
            groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, rs in sorted(groups.items()):
        entry = dict(zip(by, key), sources=len(rs), mixtures=len({r["mixture_id"] for r in rs}))
        for m in METRICS:
            v = np.array([r[m] for r in rs], dtype=float)
            entry[f"{m}_mean"] = float(v.mean())
            entry[f"{m}_median"] = float(np.median(v))
            entry[f"{m}_ci95"] = float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out.append(entry)
    return out


def markdown_table(summary: Sequence[dict], by: Sequence[str] = ("dataset", "method")) -> str:
    """The summary as a Markdown table (dB)."""
    head = list(by) + ["mixtures", "SDRi mean ± CI95", "SDRi median", "SI-SDRi mean", "SDR mean", "SIR mean",
                       "SAR mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary:
        cells = [str(e[k]) for k in by] + [str(e["mixtures"]), f"{e['sdri_mean']:.2f} ± {e['sdri_ci95']:.2f}",
                                           f"{e['sdri_median']:.2f}", f"{e['si_sdri_mean']:.2f}",
                                           f"{e['sdr_mean']:.2f}", f"{e['sir_mean']:.2f}", f"{e['sar_mean']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
