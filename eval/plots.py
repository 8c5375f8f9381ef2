"""Figures a person reads (matplotlib, PNG): SDRi box plots per method (like Tzinis et al. 2019, Fig. 3), the NPD
histogram of one mixture (Fig. 2), SDRi against the angle between sources and against the gain ratio, and a mixture's
spectrogram beside its masks (the HTML report's)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spatialdc.pipeline import features
from spatialdc.pipeline.atomic import atomic_path
from spatialdc.pipeline.shards import ShardSet, expand_shards

from .report import methods_in, unscored



def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight" if tight else None)
    _pyplot().close(fig)
    return path


METRIC_LABELS = {"sdri": "SDRi", "si_sdri": "SI-SDRi", "sdr": "SDR", "sir": "SIR", "sar": "SAR", "si_sdr": "SI-SDR"}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _scored(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if not unscored(r)]


def sdri_boxplot(rows: Sequence[dict], path: str | Path, metric: str = "sdri") -> Path:
    """Box plot of ``metric`` (dB) per method, one box group per dataset (sources with a silent reference left out).

    Args:
        rows: report rows (from :func:`spatialdc.eval.evaluate.evaluate` or read back from the CSV).
        path: PNG to write (atomically).
    """
    plt = _pyplot()
    rows = _scored(rows)
    datasets = sorted({r["dataset"] for r in rows})
    methods = methods_in(rows)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(methods) * len(datasets), 4))
    data, labels, positions = [], [], []
    for di, d in enumerate(datasets):
        for mi, m in enumerate(methods):
            v = [float(r[metric]) for r in rows if r["dataset"] == d and r["method"] == m]
            if v:
                data.append(v)
                labels.append(f"{m}\n{d}" if len(datasets) > 1 else m)
                positions.append(di * (len(methods) + 1) + mi)
    ax.boxplot(data, positions=positions, showfliers=False)
    ax.set_xticks(positions, labels, fontsize=8)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel(f"{metric_label(metric)} (dB)")
    ax.set_title("Separation per method (boxes: quartiles, whiskers: 1.5 IQR)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _per_mixture(rows: Sequence[dict], method: str, metric: str = "sdri") -> dict[str, tuple[dict, float]]:
    out: dict[str, list] = {}
    for r in _scored(rows):
        if r["method"] == method:
            out.setdefault(r["mixture_id"], [r, []])[1].append(float(r[metric]))
    return {k: (v[0], float(np.mean(v[1]))) for k, v in out.items()}


def gain_ratio_db(gains: str | Sequence[float]) -> float:
    """Loudest over quietest gain of a mixture, in dB (20 log10); ``gains`` as the report's space-separated text."""
    g = np.array([float(x) for x in gains.split()] if isinstance(gains, str) else gains, dtype=float)
    return float(20 * np.log10(g.max() / g.min()))


def sdri_vs_spec(rows: Sequence[dict], path: str | Path, metric: str = "sdri", bins: int = 8) -> Path:
    """Mean SDRi per mixture against the smallest angle between its sources and against its gain ratio (dB), one
    line per method (binned means over equal-count bins, dots for the mixtures of the first method)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for method in methods_in(rows):
        per = list(_per_mixture(rows, method, metric).values())
        if not per:
            continue
        y = np.array([v for _, v in per])
        for ax, x in zip(axes, (np.array([float(r["min_angle_gap_deg"]) for r, _ in per]),
                                np.array([gain_ratio_db(r["gains"]) for r, _ in per]))):
            order = np.argsort(x)
            groups = np.array_split(order, min(bins, len(order)))
            ax.plot([x[g].mean() for g in groups], [y[g].mean() for g in groups], marker="o", label=method)
            if method == methods_in(rows)[0]:
                ax.scatter(x, y, s=4, alpha=0.15, color="grey")
    axes[0].set_xlabel("smallest angle between sources (degrees)")
    axes[1].set_xlabel("gain ratio, loudest / quietest source (dB)")
    axes[0].set_ylabel(f"mean {metric_label(metric)} per mixture (dB)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Separation against the spatial setup (lines: means of equal-count bins)")
    return _save(fig, path)


def npd_histogram(npd: np.ndarray, active: np.ndarray, labels: np.ndarray, max_delay_samples: float,
                  path: str | Path, title: str = "") -> Path:
    """Histogram of a mixture's NPD over its non-silent bins, colored by label (like Tzinis et al. 2019, Fig. 2).

    Args:
        npd: (F, T) float, samples. active: (F, T) bool. labels: (F, T) int (e.g. DS, to show the source clusters).
        max_delay_samples: the physical limit d fs / c; the histogram spans twice it.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lim = 2 * max_delay_samples
    edges = np.linspace(-lim, lim, 121)
    for k in np.unique(labels[active]):
        ax.hist(np.clip(npd[active & (labels == k)], -lim, lim), bins=edges, alpha=0.6, label=f"source {k + 1}")
    ax.set_xlabel("normalized phase difference (samples)")
    ax.set_ylabel("TF bins")
    ax.set_title(title or "NPD of the non-silent bins")
    ax.legend(fontsize=8)
    return _save(fig, path)


SOURCE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # source / stem k: tab10
MAX_COLUMNS = 2400  # frames drawn per panel at most: longer spectrograms are decimated in time


def _level(magnitude: np.ndarray, range_db: float) -> np.ndarray:
    """(F, T) |STFT| -> (F, T) float in [0, 1]: dB under the loudest bin, 0 at ``range_db`` below it."""
    db = 20 * np.log10(np.maximum(magnitude, 1e-12) / max(float(magnitude.max()), 1e-12))
    return np.clip(1 + db / range_db, 0, 1)


def mask_figure(magnitude: np.ndarray, panels: Sequence[tuple[str, np.ndarray | None]], path: str | Path,
                legend: Sequence[str] = (), sample_rate: int = 16000, hop: int = 128, columns: int | None = None,
                range_db: float = 70.0, title: str = "") -> Path:
    """A mixture's spectrogram beside its binary masks (one panel each).

    A panel with labels None is the spectrogram, in dB under the loudest bin. A panel with (F, T) int labels shows
    every bin in the colour of its source (:data:`SOURCE_COLORS`, label k), as bright as the bin is loud; bins with a
    negative label are grey. A (F, T) bool array shows one binary mask: its bins in the colour of the panel's
    position among the mask panels, the others dark.

    Args:
        magnitude: (F, T) float |STFT| of the mixture. legend: names of labels 0, 1, ... (shown under the figure).
        sample_rate: Hz, hop: STFT hop (samples), for the axes (time in s, frequency in kHz); more than
            :data:`MAX_COLUMNS` frames are drawn every k-th. columns: panels per row (default: all in one row).
        range_db: the dynamic range drawn (dB). path: PNG to write (atomically).

    Raises:
        ValueError: a panel's labels are not of the magnitude's (F, T) shape.
    """
    f, t = magnitude.shape
    for name, labels in panels:
        if labels is not None and labels.shape != (f, t):
            raise ValueError(f"panel {name!r}: labels of shape {labels.shape}, the spectrogram is {(f, t)}")
    step = -(-t // MAX_COLUMNS)  # decimate long recordings in time (every step-th frame)
    level = _level(magnitude, range_db)[:, ::step]  # (F, T')
    columns = columns or len(panels)
    fig, axes, panel_w = _panel_grid(len(panels), columns, t * hop / sample_rate, bool(legend))
    extent = (0, t * hop / sample_rate, 0, sample_rate / 2000)
    colors = np.array([_rgb(c) for c in SOURCE_COLORS])  # (K, 3)
    mask_no = 0
    for i, (ax, (name, labels)) in enumerate(zip(axes, panels)):
        if labels is None:
            _spectrogram_panel(fig, ax, level, extent, range_db, panel_w)
        else:
            lab = labels[:, ::step]
            if lab.dtype == bool:
                rgb = np.where(lab[..., None], colors[mask_no % len(colors)], 0.0)
                mask_no += 1
            else:
                rgb = np.where(lab[..., None] >= 0, colors[np.maximum(lab, 0) % len(colors)], 0.5)
            ax.imshow(rgb * level[..., None] ** 0.6, origin="lower", aspect="auto", extent=extent,
                      interpolation="nearest")  # brightness: the bin's level (gamma 0.6 lifts the quiet ones)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)", labelpad=1)
        if i % columns == 0:
            ax.set_ylabel("frequency (kHz)")
        else:
            ax.tick_params(labelleft=False)
    if legend:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=SOURCE_COLORS[k % len(SOURCE_COLORS)], label=name)
                            for k, name in enumerate(legend)], loc="lower center", ncol=len(legend), fontsize=9,
                   frameon=False, bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, tight=False)


def _panel_grid(count: int, columns: int, seconds: float, legend: bool) -> tuple:
    """A figure with ``count`` panels, ``columns`` per row, in a fixed layout in inches (tight_layout and a tight
    bounding box took most of the time of this figure); one column of a recording ``seconds`` long is as wide as
    it is long. Returns (figure, axes in reading order, a panel's width in inches)."""
    plt = _pyplot()
    rows = -(-count // columns)
    left, right, top, gap, vgap = 0.65, 0.45 if columns > 1 else 0.75, 0.3, 0.8, 0.75
    bottom = 0.5 + (0.3 if legend else 0)
    width = 13.0 if columns > 1 else min(13.0, 3.0 + seconds * 1.6)
    panel_w, panel_h = (width - left - right - (columns - 1) * gap) / columns, 2.2 if columns > 1 else 1.5
    height = top + bottom + rows * panel_h + (rows - 1) * vgap
    fig = plt.figure(figsize=(width, height))
    axes = []
    for i in range(count):
        r, c = divmod(i, columns)
        ax = fig.add_axes(((left + c * (panel_w + gap)) / width,
                           (height - top - (r + 1) * panel_h - r * vgap) / height, panel_w / width, panel_h / height))
        axes.append(ax)
    return fig, axes, panel_w


def _spectrogram_panel(fig, ax, level: np.ndarray, extent: tuple, range_db: float, panel_w: float) -> None:
    """The spectrogram, ``level`` (F, T') in [0, 1], drawn in dB under the loudest bin, with its colour bar."""
    im = ax.imshow(level * range_db - range_db, origin="lower", aspect="auto", extent=extent, cmap="magma",
                   vmin=-range_db, vmax=0, interpolation="nearest")
    bar = fig.colorbar(im, cax=ax.inset_axes((1.01, 0.0, 0.08 / panel_w, 1.0)))
    bar.set_label("dB", fontsize=8, labelpad=0)  # outside the panel: it keeps the others' width
    bar.ax.tick_params(labelsize=7)


def _rgb(color: str) -> tuple[float, float, float]:
    """A colour name or hex string as (r, g, b) in [0, 1]."""
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def report_figures(rows: Sequence[dict], shard_patterns: Sequence[str], report: str | Path) -> list[Path]:
    """``dceval``'s figures beside its CSV ``report``: ``<report>.box.png`` (:func:`sdri_boxplot`),
    ``<report>.spatial.png`` (:func:`sdri_vs_spec`) and ``<report>.npd.png`` (:func:`npd_histogram` of the first
    mixture of the shards). Returns their paths."""
    stem = Path(report).with_suffix("")
    out = [sdri_boxplot(rows, f"{stem}.box.png"), sdri_vs_spec(rows, f"{stem}.spatial.png")]
    shards = ShardSet(expand_shards(shard_patterns))
    ex = shards.read(0, ("magnitude", "npd", "ds", "spec"))
    spec = ex["spec"]
    out.append(npd_histogram(ex["npd"], features.active_bins(ex["magnitude"]), ex["ds"],
                             spec.max_delay_samples, f"{stem}.npd.png",
                             f"NPD of {spec.mixture_id}, colored by dominant source"))
    shards.close()
    return out
