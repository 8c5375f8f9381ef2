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
METHOD_ORDER = ("oracle_ds", "oracle_bpd", "dc_ds", "dc_bpd", "dc_rpd")  # how tables, figures and pages list methods


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


def methods_in(rows: Sequence[dict]) -> list[str]:
    """The methods of the rows, in :data:`METHOD_ORDER` (others after them, sorted)."""
    present = {r["method"] for r in rows}
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


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


def per_mixture_sdri(rows: Sequence[dict]) -> dict[str, float]:
    """Mixture id -> mean SDRi (dB) over its sources of the model's rows (``dc_*``) of a dceval report; unscored
    rows (silent reference, miscounted) left out.

    Raises:
        ValueError: no scored model row.
    """
    by: dict[str, list[float]] = {}
    for r in rows:
        if str(r["method"]).startswith("dc_") and not unscored(r):
            by.setdefault(r["mixture_id"], []).append(float(r["sdri"]))
    if not by:
        raise ValueError("the report holds no scored model rows (dc_*): score a model with dceval --checkpoint")
    return {k: float(np.mean(v)) for k, v in by.items()}


def paired_difference(a: dict[str, float], b: dict[str, float]) -> dict:
    """Paired comparison of two models on the same mixtures (:func:`per_mixture_sdri` of each): the mean of the
    per-mixture differences b - a (dB), its 95 % half-interval (1.96 standard errors over mixtures), the share of
    mixtures where b gains, and each model's mean over the common mixtures.

    Raises:
        ValueError: fewer than two common mixtures.
    """
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise ValueError(f"the two reports share {len(common)} mixtures; score both models on the same shards")
    d = np.array([b[k] - a[k] for k in common])
    return {"mixtures": len(common), "mean_a": float(np.mean([a[k] for k in common])),
            "mean_b": float(np.mean([b[k] for k in common])), "diff": float(d.mean()),
            "ci95": float(1.96 * d.std(ddof=1) / np.sqrt(len(d))), "gain_share": float((d > 0).mean())}


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


def write_summary(path: str | Path, rows: Sequence[dict], count_estimator: str | None = None) -> dict[str, str]:
    """``dceval``'s Markdown summary (atomically): SDRi per dataset and method, the paper's layout beside Tzinis et
    al. 2019's numbers and, with ``count_estimator`` (``--speakers auto``), the speaker-count confusion.

    Returns:
        the sections as Markdown: ``{"table", "paper"}``, and ``"confusion"`` with ``count_estimator``.
    """
    sections = {"table": markdown_table(summarize(rows)), "paper": paper_table_markdown(paper_table(rows), PAPER_SDRI)}
    text = (f"# SDR improvement (dB)\n\n{sections['table']}\n## Paper layout: mean SDRi (dB), Tzinis et al. 2019 "
            f"Tables 1-2 in brackets\n\n{sections['paper']}")
    if count_estimator:
        sections["confusion"] = count_confusion(rows)
        text += f"\n## Speaker count (--speakers auto: {count_estimator})\n\n{sections['confusion']}"
    write_text_atomic(path, text)
    return sections


def paper_table(rows: Sequence[dict], metric: str = "sdri") -> list[dict]:
    """Mean ``metric`` in the paper's layout (Tzinis et al. 2019, Tables 1-2): one row per (speakers, method),
    columns f, fm, m and all (pooled over the sources of the three), from the datasets present."""
    out = []
    rows = [r for r in rows if not unscored(r)]
    for n in sorted({int(r["num_speakers"]) for r in rows}):
        for method in methods_in(rows):
            entry = {"speakers": n, "method": method}
            pooled = []
            for g in ("f", "fm", "m"):
                v = [float(r[metric]) for r in rows if int(r["num_speakers"]) == n and r["method"] == method
                     and str(r["dataset"]).rstrip("0123456789") == g]
                entry[g] = float(np.mean(v)) if v else float("nan")
                pooled += v
            entry["all"] = float(np.mean(pooled)) if pooled else float("nan")
            if pooled:
                out.append(entry)
    return out


def paper_table_markdown(table: Sequence[dict], paper: dict | None = None) -> str:
    """:func:`paper_table` as Markdown; ``paper`` maps (speakers, method) -> {column: value} shown in brackets."""
    lines = ["| speakers | method | f | fm | m | all |", "|---|---|---|---|---|---|"]
    for e in table:
        ref = (paper or {}).get((e["speakers"], e["method"]), {})
        cells = [("–" if np.isnan(e[c]) else f"{e[c]:.2f}") + (f" ({ref[c]:.2f})" if c in ref else "")
                 for c in ("f", "fm", "m", "all")]
        lines.append(f"| {e['speakers']} | {e['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# Tzinis et al. 2019, Table 1 (2 speakers) and Table 2 (3 speakers): mean SDRi (dB) on TIMIT mixtures.
PAPER_SDRI = {
    (2, "dc_rpd"): {"f": 4.85, "fm": 9.43, "m": 3.51, "all": 6.80},
    (2, "dc_bpd"): {"f": 7.17, "fm": 9.99, "m": 4.97, "all": 8.03},
    (2, "dc_ds"): {"f": 7.57, "fm": 10.15, "m": 5.16, "all": 8.26},
    (2, "oracle_bpd"): {"f": 13.65, "fm": 12.88, "m": 11.82, "all": 12.81},
    (2, "oracle_ds"): {"f": 14.02, "fm": 13.19, "m": 12.14, "all": 13.14},
    (3, "dc_rpd"): {"f": 1.04, "fm": 2.77, "m": 0.27, "all": 1.71},
    (3, "dc_bpd"): {"f": 1.75, "fm": 2.75, "m": 1.39, "all": 2.16},
    (3, "dc_ds"): {"f": 1.66, "fm": 2.67, "m": 1.44, "all": 2.11},
    (3, "oracle_bpd"): {"f": 10.23, "fm": 9.76, "m": 8.83, "all": 9.64},
    (3, "oracle_ds"): {"f": 13.88, "fm": 13.44, "m": 12.41, "all": 13.29},
}
