"""Separation reports a person opens in a browser, from the file system: plain HTML and CSS filled into
``report_template.html`` (no script, no web font, nothing fetched from the network), WAVs to listen to (16-bit PCM,
16 kHz) and PNG figures.

``dceval --examples N --report runs/x/sdr.csv`` writes the folder ``runs/x/sdr.report/``::

    report.html                  provenance, the summary table, the figures, then one section per example
    figures/sdr.box.png ...      copies of the figures dceval wrote beside the CSV
    <mixture_id>/mixture.wav     mic 1
                 reference<j>.wav                 source j at mic 1 (j = 1..N)
                 <method>_<j>.wav                 the method's stem that BSS Eval matched to reference j
                 masks.png                        spectrogram of the mixture beside the masks of each method

``dcsep REC --report --out OUT`` writes ``OUT/<REC>.report/`` (``report.html``, ``input.wav``: mic 1 at 16 kHz as
separated, ``masks.png``); the page plays the stems beside it, ``../<REC>_speaker<k>.wav``.

A report folder is filled under a temporary name and renamed when complete: a reader never sees half a report,
and a re-run leaves no stale example of an earlier one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline import features
from spatialdc.pipeline.metrics import bss_eval_sets
from spatialdc.pipeline.shards import ShardSet, expand_shards

from .evaluate import ORACLES, spec_columns
from .html_page import (audio_tag, command_text, db_text, escape, fill_page, new_folder, provenance_html, safe_name,
                        write_wav)
from .plots import SOURCE_COLORS, gain_ratio_db, mask_figure
from .recording import MODEL_SAMPLE_RATE, read_recording, write_stems
from .report import count_confusion, methods_in, summarize, unscored
from .separate import Separation, embed, load_model, separate_mixture

log = logging.getLogger(__name__)
FIELDS = ("mixture", "sources", "magnitude", "bpd", "ds", "spec")
NAMES = {"oracle_ds": "oracle DS", "oracle_bpd": "oracle BPD"}
CAPTIONS = {"box": "SDRi per method (boxes: quartiles, whiskers: 1.5 IQR; silent references left out).",
            "spatial": "Mean SDRi per mixture against the smallest angle between its sources and its gain ratio.",
            "npd": "NPD histogram of the first mixture's non-silent bins, coloured by dominant source (paper Fig. 2)."}


def _name(method: str) -> str:
    return NAMES.get(method, f"model {method}")


def spread_ranks(n: int, k: int) -> list[int]:
    """``k`` distinct ranks out of 0..n-1: the best (0), the worst (n-1) and the median ((n-1) // 2) first, then
    each further rank the farthest from those chosen (the smallest on ties): deterministic and evenly spread.

    Returns:
        sorted ranks; all n if k >= n.
    """
    if k >= n:
        return list(range(n))
    chosen = list(dict.fromkeys([0, n - 1, (n - 1) // 2]))[:k]
    while len(chosen) < k:
        gap = [min(abs(r - c) for c in chosen) for r in range(n)]
        chosen.append(int(np.argmax(gap)))
    return sorted(chosen)


def choose_examples(rows: Sequence[dict], count: int) -> tuple[str, list[tuple[str, str, float]]]:
    """Mixtures to show: ranked by the mean SDRi over their sources of the model (``dc_*``; without one, oracle
    BPD, else oracle DS), picked by :func:`spread_ranks`. Mixtures with an unscored row (silent reference, wrong
    speaker count) are left out.

    Returns:
        (the ranking method, [(mixture_id, "best" / "median" / "worst" / "rank r of n", mean SDRi in dB)] best first).
    """
    methods = methods_in(rows)
    by = next((m for m in methods if m.startswith("dc_")), "oracle_bpd" if "oracle_bpd" in methods else methods[0])
    values: dict[str, list[float]] = {}
    bad = {r["mixture_id"] for r in rows if unscored(r) or np.isnan(float(r["sdri"]))}
    for r in rows:
        if r["method"] == by and r["mixture_id"] not in bad:
            values.setdefault(r["mixture_id"], []).append(float(r["sdri"]))
    ranked = sorted(values, key=lambda m: (-np.mean(values[m]), m))
    n = len(ranked)
    names = {(n - 1) // 2: "median", n - 1: "worst", 0: "best"}  # with 1 or 2 mixtures, best and worst win
    return by, [(ranked[r], names.get(r, f"rank {r + 1} of {n}"), float(np.mean(values[ranked[r]])))
                for r in spread_ranks(n, count)]


def resynthesize(mixture_ids: Sequence[str], rows: Sequence[dict], provenance: dict) -> list[dict]:
    """Separate again the given mixtures exactly as :func:`~spatialdc.eval.evaluate.evaluate_task` scored them
    (same embeddings, K-means seed, ``cluster_db`` and count), and match every method's stems to the references
    with BSS Eval's best permutation.

    Args:
        rows: the evaluation's rows (methods, estimated counts). provenance: dceval's (``shards``, ``checkpoint``,
            ``seed``, ``cluster_db``, ``metric_backend``).

    Returns:
        per mixture, the shard's arrays (:data:`FIELDS`) plus ``stems``: {method: (N, S) float32, row j matched to
        reference j}, ``labels``: {method: (F, T) int, the reference each bin goes to} and ``sdri``: {method: (N,)
        dB, re-scored}.

    Raises:
        FileNotFoundError: shards or checkpoint gone. KeyError: a mixture not in the shards.
    """
    if not mixture_ids:
        return []
    shards = ShardSet(expand_shards(provenance["shards"]))
    where: dict[str, int] = {}
    for i in range(len(shards)):
        if len(where) == len(mixture_ids):
            break
        mid = shards.read(i, ("spec",))["spec"].mixture_id
        if mid in mixture_ids:
            where[mid] = i
    data = [shards.read(where[m], FIELDS) for m in mixture_ids]
    shards.close()
    methods = methods_in(rows)
    separations = [{m: _oracle(d, m) for m in ORACLES if m in methods} for d in data]
    model = next((m for m in methods if m.startswith("dc_")), None)
    with features.single_threaded():  # one thread, as in evaluate's workers (threads only contend on this work)
        if model:
            _separate_model(data, separations, model, rows, provenance)
        for d, seps in zip(data, separations):
            _match(d, seps, provenance["metric_backend"])
    return data


def _oracle(d: dict, method: str) -> Separation:
    labels = d[method.removeprefix("oracle_")]  # (F, T) of the shard's DS or BPD labels
    return Separation(labels, features.binary_masks(labels, d["spec"].num_speakers), None)


def _separate_model(data: list[dict], separations: list[dict], model: str, rows: Sequence[dict], provenance: dict):
    loaded = load_model(provenance["checkpoint"])
    mags = np.stack([d["magnitude"] for d in data])  # (B, F, T)
    # a batch of >= 2 gives each mixture the same bits as evaluate's batches (torch's LSTM does not with one)
    emb = embed(loaded.net, loaded.stats, mags if len(data) > 1 else np.repeat(mags, 2, axis=0))  # (B, F, T, D)
    counts = {r["mixture_id"]: int(r["num_speakers_est"]) for r in rows if r["method"] == model}
    for k, d in enumerate(data):
        mid = d["spec"].mixture_id
        separations[k][model] = separate_mixture(emb[k], d["magnitude"], counts[mid], seed=provenance["seed"],
                                                 key=mid, cluster_db=provenance["cluster_db"])


def _match(d: dict, separations: dict[str, Separation], backend: str) -> None:
    """Each method's stems and labels in reference order (BSS Eval's permutation), and their SDRi, into ``d``."""
    n, mix, names = d["spec"].num_speakers, d["mixture"][0], list(separations)
    est = np.split(features.apply_masks(mix, np.concatenate([separations[m].masks for m in names])), len(names))
    base, *scores = bss_eval_sets(d["sources"], [np.tile(mix, (n, 1))] + est, backend)
    d["stems"] = {m: e[s.perm] for m, e, s in zip(names, est, scores)}  # row j: the estimate matched to reference j
    d["labels"] = {m: separations[m].reordered(s.perm).labels for m, s in zip(names, scores)}  # bin -> reference
    d["sdri"] = {m: s.sdr - base.sdr for m, s in zip(names, scores)}


def write_eval_report(csv_path: str | Path, rows: Sequence[dict], provenance: dict, examples: int = 6,
                      figures: Sequence[str | Path] = ()) -> Path | None:
    """``dceval``'s page: provenance, the summary table, ``figures``, and ``examples`` mixtures chosen by
    :func:`choose_examples` with their audio (mixture, references, every method's stems), spec, SDRi per stem and
    mask image; in ``<csv_path without suffix>.report/`` (module docstring).

    Args:
        rows: :func:`~spatialdc.eval.evaluate.evaluate`'s. provenance: dceval's dict (see :func:`resynthesize`).
        figures: PNGs to copy into the folder.

    Returns:
        the path of ``report.html``, or None if ``examples`` is 0 (nothing written).

    Raises:
        ValueError: ``examples`` < 0. FileNotFoundError: shards, checkpoint or a figure gone.
    """
    if examples < 0:
        raise ValueError(f"examples must be >= 0, got {examples}")
    if not examples:
        return None
    csv_path = Path(csv_path)
    by, chosen = choose_examples(rows, examples)
    data = resynthesize([m for m, _, _ in chosen], rows, provenance)
    sdri = {(r["mixture_id"], r["method"], int(r["source"])): r["sdri"] for r in rows}
    folder = csv_path.with_suffix(".report")
    with new_folder(folder) as tmp:
        (tmp / "figures").mkdir()
        shown = []
        for fig in sorted(map(Path, figures), key=_figure_order):  # box and NPD share a row, spatial below
            shutil.copyfile(fig, tmp / "figures" / fig.name)
            caption = CAPTIONS.get(_figure_kind(fig), fig.name)
            shown.append(f'<figure><img src="figures/{escape(fig.name)}" alt="{escape(caption)}">'
                         f"<figcaption>{escape(caption)}</figcaption></figure>")
        parts = [provenance_html(_eval_provenance(provenance, csv_path)),
                 "<h2>Summary: SDR improvement (dB)</h2>", _summary_html(rows)]
        if provenance.get("speakers") == "auto":
            parts.append(f"<pre>{escape(count_confusion(rows))}</pre>")
        parts += ["<h2>Figures</h2>", f'<div class="figures">{"".join(shown)}</div>' if shown else
                  '<p class="note">No figures (dceval --no-plots).</p>', "<h2>Examples</h2>",
                  f'<p class="lead">{len(chosen)} mixtures ranked by the mean SDRi of {escape(_name(by))} over their '
                  f"sources: the best, the median, the worst, and ranks spread evenly between. Each row of a table is "
                  f"one reference source; in it, each method's stem that BSS Eval matched to that source, with its "
                  f"SDRi (dB, as in the CSV); angles are directions of arrival from the mic axis, gains the sources' "
                  f"amplitude factors (they sum to 1). In the mask images every bin has the colour of the source it "
                  f"goes to, as bright as it is loud.</p>"]
        for (mid, label, mean), d in zip(chosen, data):
            for m, rescored in d["sdri"].items():
                stored = np.array([sdri[(mid, m, j)] for j in range(len(rescored))], dtype=float)
                if not np.allclose(rescored, stored, atol=5e-3, equal_nan=True):
                    log.warning("%s %s: re-separated stems score %s dB, the CSV %s dB", mid, m, rescored, stored)
            parts.append(_example_html(d, f"{label}: {mid}", mean, by, sdri, tmp))
        page = fill_page(f"Separation report: {csv_path.name}", "Separation report", "\n".join(parts))
        (tmp / "report.html").write_text(page, encoding="utf-8")
    return folder / "report.html"


def _example_html(d: dict, heading: str, mean: float, by: str, sdri: dict, folder: Path) -> str:
    spec, refs, mix = d["spec"], d["sources"], d["mixture"][0]
    sub = folder / safe_name(spec.mixture_id)
    sub.mkdir()
    order = [m for m in d["stems"] if m.startswith("dc_")] + [m for m in ("oracle_bpd", "oracle_ds")
                                                              if m in d["stems"]]
    peak = max(np.abs(mix).max(), np.abs(refs).max(), *(np.abs(s).max() for s in d["stems"].values()))
    scale = min(1.0, 0.99 / max(float(peak), 1e-9))  # one factor for all audio of the example: levels compare
    write_wav(sub / "mixture.wav", mix, scale)
    legend = [f"source {j + 1} ({g}, {a:.0f}°)" for j, (g, a) in enumerate(zip(spec.genders, spec.angles_deg))]
    mask_figure(d["magnitude"], [("mixture (mic 1)", None)] + [(_name(m), d["labels"][m]) for m in order],
                sub / "masks.png", legend)
    head = ["source", "speaker", "gender", "angle (°)", "gain", "reference"] + [_name(m) for m in order]
    body = []
    for j in range(spec.num_speakers):
        write_wav(sub / f"reference{j + 1}.wav", refs[j], scale)
        cells = [f'<span class="swatch" style="background:{SOURCE_COLORS[j % len(SOURCE_COLORS)]}"></span>'
                 f"source {j + 1}", escape(spec.speakers[j]), escape(spec.genders[j]), f"{spec.angles_deg[j]:.1f}",
                 f"{spec.gains[j]:.3f}", audio_tag(f"{sub.name}/reference{j + 1}.wav")]
        for m in order:
            write_wav(sub / f"{m}_{j + 1}.wav", d["stems"][m][j], scale)
            cells.append(audio_tag(f"{sub.name}/{m}_{j + 1}.wav") + f'<div class="sdri-line">SDRi <span class="sdri" '
                         f'data-mixture="{escape(spec.mixture_id)}" data-method="{escape(m)}" data-source="{j}">'
                         f"{db_text(sdri[(spec.mixture_id, m, j)])}</span> dB</div>")
        body.append("<tr>" + "".join(f'<td{" class=num" if 3 <= i <= 4 else ""}>{c}</td>'
                                     for i, c in enumerate(cells)) + "</tr>")
    level = "" if scale == 1.0 else f"; all its audio scaled by {20 * np.log10(scale):.1f} dB to fit 16 bits"
    gap = spec_columns(spec)["min_angle_gap_deg"]
    return (f"<article><h3>{escape(heading)}</h3><p class=\"meta\">mean SDRi of {escape(_name(by))}: {db_text(mean)} dB; "
            f"dataset {escape(spec.dataset)}, {spec.num_speakers} speakers, {spec.num_samples / spec.sample_rate:.2f} s, "
            f"smallest angle gap {gap:.1f}°, gain ratio {gain_ratio_db(spec.gains):.1f} dB, "
            f"{escape(spec.room)} room{escape(level)}</p>"
            f'<div class="mix"><b>mixture (mic 1)</b>{audio_tag(f"{sub.name}/mixture.wav")}</div>'
            f"<table><tr>{''.join(f'<th>{escape(h)}</th>' for h in head)}</tr>{''.join(body)}</table>"
            f'<img class="masks" src="{escape(sub.name)}/masks.png" alt="spectrogram and masks of {escape(spec.mixture_id)}">'
            f"</article>")


def write_separation_report(separator, recording: str | Path, out_dir: str | Path, num_speakers: int | str = 2,
                            overwrite: bool = False, command: Sequence[str] = ()) -> tuple[list[Path], Path]:
    """``dcsep --report``: separate ``recording`` with ``separator`` (a :class:`~spatialdc.eval.separator.Separator`)
    into ``out_dir/<name>_speaker<k>.wav`` as :meth:`~spatialdc.eval.separator.Separator.separate_file` does (the same
    stems), and write ``out_dir/<name>.report/report.html``: the input, the stems, the mask of each stem over the
    spectrogram, and how the count was decided.

    Returns:
        (the N stem paths, the page's path).

    Raises:
        FileNotFoundError: no such recording. FileExistsError: stems or the report folder exist and ``overwrite``
            is False. ValueError: unreadable or refused audio, a bad count.
    """
    name = Path(recording).stem
    folder = Path(out_dir) / f"{name}.report"
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists: pass --overwrite or another output folder")
    x, rate = read_recording(recording)
    stems, details = separator.separate_detailed(x, MODEL_SAMPLE_RATE, num_speakers)
    paths = write_stems(stems, out_dir, name, overwrite)
    n = stems.shape[0]
    with new_folder(folder) as tmp:
        write_wav(tmp / "input.wav", x, min(1.0, 0.99 / max(float(np.abs(x).max()), 1e-9)))
        magnitude = np.abs(features.stft(x))  # (F, T)
        masks = [(f"mask of stem {k + 1}", details.labels == k) for k in range(n)]
        mask_figure(magnitude, [("input (mic 1)", None)] + masks, tmp / "masks.png", columns=1)
        active = features.active_bins(magnitude)
        shares = [float((details.labels[active] == k).mean()) for k in range(n)]
        rows = "".join(f'<tr><td><span class="swatch" style="background:{SOURCE_COLORS[k % len(SOURCE_COLORS)]}">'
                       f"</span>stem {k + 1}</td><td>{audio_tag('../' + p.name)}</td><td>{escape(p.name)}</td>"
                       f'<td class="num">{100 * shares[k]:.1f} %</td></tr>' for k, p in enumerate(paths))
        how = (f"<h2>Speakers: {n} (given)</h2>" if details.count_method == "given" else
               f"<h2>Speakers: {n}, estimated by the {escape(details.count_method)}</h2>"
               f'<p class="lead">{escape(details.count_evidence)}</p>')
        prov = [("model", separator.name),
                ("recording", f"{recording} ({rate} Hz, {x.size / MODEL_SAMPLE_RATE:.2f} s)"),
                ("command", command_text(command)),
                ("options", f"cluster_db {separator.cluster_db} dB, chunks of {separator.chunk_s} s overlapping by "
                            f"{separator.overlap_s} s, K-means seed {separator.seed}")]
        body = (f"{provenance_html(prov)}{how}"
                f'<div class="mix"><b>input (mic 1, 16 kHz)</b>{audio_tag("input.wav")}</div>'
                f"<table><tr><th>stem</th><th>listen</th><th>file</th><th>share of the non-silent bins</th></tr>"
                f'{rows}</table><h2>Masks</h2><p class="lead">Each stem is the input through a binary mask: the bins '
                f"K-means put in its cluster of the network's embeddings (drawn in its colour, as bright as they are "
                f"loud).</p><img class=\"masks\" src=\"masks.png\" alt=\"spectrogram and masks\">")
        (tmp / "report.html").write_text(fill_page(f"Separation of {name}", f"Separation of {name}", body), "utf-8")
    return paths, folder / "report.html"


def _figure_kind(path: Path) -> str:
    return path.suffixes[-2].lstrip(".") if len(path.suffixes) > 1 else ""


def _figure_order(path: Path) -> int:
    kinds = ("box", "npd", "spatial")
    return kinds.index(_figure_kind(path)) if _figure_kind(path) in kinds else len(kinds)


def _eval_provenance(p: dict, csv_path: Path) -> list[tuple[str, str]]:
    speakers = p.get("speakers", "oracle") + (f" ({p['count_estimator']})" if p.get("count_estimator") else "")
    return [("checkpoint", p.get("checkpoint") or "none: the oracle masks only"),
            ("shards", " ".join(p.get("shards", []))), ("command", command_text(p.get("command") or [])),
            ("CSV", str(csv_path)), ("speakers", speakers), ("metric backend", p.get("metric_backend", "")),
            ("K-means", f"seed {p.get('seed')}, centres fitted within {p.get('cluster_db')} dB of the loudest bin"),
            ("versions", ", ".join(f"{k} {v}" for k, v in sorted(p.get("versions", {}).items())))]


def _summary_html(rows: Sequence[dict]) -> str:
    head = ["dataset", "method", "mixtures", "SDRi mean ± CI95", "SDRi median", "SI-SDRi mean", "SDR mean",
            "SIR mean", "SAR mean"]
    lines = [f"<tr>{''.join(f'<th>{escape(h)}</th>' for h in head)}</tr>"]
    for e in summarize(rows):
        cells = [escape(e["dataset"]), escape(e["method"]), str(e["mixtures"]),
                 f"{e['sdri_mean']:.2f} ± {e['sdri_ci95']:.2f}"] + [f"{e[k]:.2f}" for k in (
                     "sdri_median", "si_sdri_mean", "sdr_mean", "sir_mean", "sar_mean")]
        lines.append("<tr>" + "".join(f'<td{" class=num" if i >= 2 else ""}>{c}</td>' for i, c in enumerate(cells))
                     + "</tr>")
    return f"<table>{''.join(lines)}</table>"


