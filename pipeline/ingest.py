"""Learn from your own stereo recordings: ``dcgen ingest`` cuts two-channel recordings into windows and writes them
as training shards with spatial labels and no references; ``dcgen export`` writes rendered mixtures as stereo WAV
files with their references beside them, so ingest is tested end to end on recordings with known answers.

Per window (2 s by default): STFT of both channels, magnitude of the first, NPD (eq. 3), the spatial labels of
:func:`spatialdc.pipeline.labels.spatial_labels` (the paper's K-means where no phase can wrap, wrapped-phase labels
for wider spacings) with K from ``--speakers`` or estimated from the spatial cues (:func:`estimate_speakers`).
Windows that are silent, too quiet in most bins, or hold one talker (clusters that do not separate) are dropped and
counted. Every recording is checked before any shard is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from . import features, labels, shard_index, shards
from .atomic import atomic_path, write_text_atomic
from .audio import read_audio_file, resample
from .paths import check_out_dir
from .render import render_mixture
from .rng import rng_for
from .specs import SOUND_SPEED_M_S, MixtureSpec, check_setup, max_delay_samples, write_specs

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000  # windows are resampled to the rate the models are trained at
CLIP_LEVEL = 0.999  # samples within 0.1 % of a channel's peak, where the peak is at or past full scale (1.0)
MAX_CLIPPED_FRACTION = 1e-3
SILENT_DBFS = -60.0  # a window quieter than this (RMS of channel 1) is silence
MIN_ACTIVE_FRACTION = 0.10  # of the window's bins within 40 dB of its loudest
MIN_ENERGY_SHARE = 0.08  # a spatial cluster with less of the window's energy is outliers of the others: measured
# on 20 fm2 test mixtures, two talkers' weaker cluster held >= 0.12 (anechoic) / 0.10 (mild room), one talker split
# in two left a median 0.015 (90th percentile 0.04-0.09)
MIN_DELAY_GAP = 0.05  # clusters closer than this fraction of the largest delay are one direction


@dataclass
class IngestReport:
    """What ingest did with each recording: windows kept and why the others were dropped."""

    recordings: dict = field(default_factory=dict)

    def add(self, name: str, reason: str, delay_gap: float | None = None, speakers: int | None = None,
            weakest_share: float | None = None) -> None:
        """Count one window of recording ``name``: ``reason`` is "kept" or why it was dropped; for a kept window the
        smallest gap between its clusters' delays (samples), its K and its weakest cluster's energy share."""
        r = self.recordings.setdefault(name, {"windows": 0, "kept": 0, "dropped": {}, "delay_gap": [],
                                               "weakest_share": [], "speakers": {}})
        r["windows"] += 1
        if reason == "kept":
            r["kept"] += 1
            r["delay_gap"].append(round(float(delay_gap), 4))
            r["weakest_share"].append(round(float(weakest_share), 4))
            r["speakers"][str(speakers)] = r["speakers"].get(str(speakers), 0) + 1
        else:
            r["dropped"][reason] = r["dropped"].get(reason, 0) + 1

    def summary(self) -> str:
        """One line per recording: windows kept, speaker counts, cluster separation, why windows were dropped."""
        lines = []
        for name, r in self.recordings.items():
            gap = np.median(r["delay_gap"]) if r["delay_gap"] else float("nan")
            share = np.median(r["weakest_share"]) if r["weakest_share"] else float("nan")
            dropped = ", ".join(f"{n} {why}" for why, n in sorted(r["dropped"].items())) or "none"
            lines.append(f"{name}: {r['kept']} of {r['windows']} windows kept (speakers {r['speakers']}; cluster "
                         f"separation: median delay gap {gap:.3f} samples, weakest cluster {100 * share:.0f} % of the "
                         f"energy); dropped: {dropped}")
        return "\n".join(lines)


def read_stereo(path: str | Path, channels: tuple[int, int] = (1, 2)) -> tuple[np.ndarray, int]:
    """Two channels of a recording (1-based ``channels``) at 16 kHz, checked.

    Returns:
        ((2, S) float32 at 16 kHz, the file's sample rate).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, mono, a channel that does not exist or is given
            twice, identical channels, clipping, non-finite samples.
    """
    path = Path(path)
    x, sr = read_audio_file(path)
    if x.shape[1] < 2:
        raise ValueError(f"{path} is mono: spatial labels need two microphones; give a recording with two or more "
                         f"channels")
    i, j = channels
    if i == j or min(i, j) < 1 or max(i, j) > x.shape[1]:
        raise ValueError(f"--channels {i},{j}: give two different channels of {path}'s 1..{x.shape[1]}")
    pair = x[:, [i - 1, j - 1]].T  # (2, S)
    if not np.isfinite(pair).all():
        raise ValueError(f"{path} has non-finite (NaN or infinite) samples; repair or re-export it")
    if np.array_equal(pair[0], pair[1]):
        raise ValueError(f"{path}: channels {i} and {j} are identical (one signal copied to both): there is no "
                         f"spatial cue to learn from; give the channels of two different microphones")
    peak = np.abs(pair).max(axis=1, keepdims=True)  # (2, 1)
    # clipping flattens a signal at its peak: many samples there (speech that is not clipped reaches its peak once)
    clipped = ((np.abs(pair) >= CLIP_LEVEL * peak) & (peak >= CLIP_LEVEL)).mean(axis=1)
    if clipped.max() > MAX_CLIPPED_FRACTION:
        c = int(np.argmax(clipped))
        raise ValueError(f"{path} is clipped: {100 * clipped[c]:.2f} % of channel {channels[c]}'s samples are at full "
                         f"scale; clipping distorts the phase differences the labels come from: record at a lower "
                         f"gain")
    return resample(pair, sr, SAMPLE_RATE, axis=1).astype(np.float32), int(sr)


def cluster_stats(npd: np.ndarray, lab: np.ndarray, magnitude: np.ndarray, active: np.ndarray, num_sources: int,
                  max_delay_samples: float) -> tuple[np.ndarray, np.ndarray]:
    """Each spatial cluster's delay and share of the energy, on the window's non-silent unaliased bins (where
    NPD = delay).

    Returns:
        ((K,) float64 energy-weighted median delays in samples, (K,) float64 energy shares summing to 1).
    """
    use = active & labels.unaliased_bins(npd.shape[0], max_delay_samples)[:, None]
    energy = magnitude.astype(np.float64)[use] ** 2
    x, lab = npd[use].astype(np.float64), lab[use]
    delays, shares = np.zeros(num_sources), np.zeros(num_sources)
    for k in range(num_sources):
        xs, es = x[lab == k], energy[lab == k]
        if es.sum() <= 0:
            continue
        order = np.argsort(xs)
        delays[k] = xs[order][np.searchsorted(np.cumsum(es[order]), es.sum() / 2)]
        shares[k] = es.sum()
    return delays, shares / max(shares.sum(), 1e-30)


def estimate_speakers(npd: np.ndarray, magnitude: np.ndarray, active: np.ndarray, max_speakers: int,
                      max_delay_samples: float, rng_key: tuple) -> tuple[int, np.ndarray | None, np.ndarray]:
    """The largest K in 2..max_speakers whose spatial clusters each hold >= :data:`MIN_ENERGY_SHARE` of the energy at
    distinct delays (>= :data:`MIN_DELAY_GAP` x the largest delay apart); 1 (one talker) if K = 2 fails already.
    A heuristic of the spatial cues (one talker split in two leaves a cluster of low-energy outliers).

    Returns:
        (K, its (F, T) uint8 labels or None for K = 1, the clusters' energy shares).
    """
    best: tuple = (1, None, np.ones(1))
    for k in range(2, max_speakers + 1):
        lab = labels.spatial_labels(npd, active, k, max_delay_samples, rng_for(*rng_key, k))
        delays, shares = cluster_stats(npd, lab, magnitude, active, k, max_delay_samples)
        gaps = np.diff(np.sort(delays))
        if shares.min() < MIN_ENERGY_SHARE or gaps.min() < MIN_DELAY_GAP * max_delay_samples:
            break
        best = (k, lab, shares)
    return best


def window_spec(name: str, path: str, index: int, start: int, num_samples: int, k: int, mic_spacing_m: float,
                delays: Sequence[float]) -> MixtureSpec:
    """A spec describing a window of a recording: speakers, genders and gains unknown ("?", equal), the angles those
    of the clusters' delays (cos theta = tau c / (d fs))."""
    c = SOUND_SPEED_M_S
    cos = np.clip(np.asarray(delays) * c / (mic_spacing_m * SAMPLE_RATE), -1, 1)
    return MixtureSpec(f"rec{k}", "train", index, 0, tuple(f"{name}@{start}" for _ in range(k)),
                       ("?",) * k, ("?",) * k, (path,) * k, (start,) * k,
                       tuple(round(float(a), 3) for a in np.degrees(np.arccos(cos))), (round(1 / k, 8),) * k,
                       SAMPLE_RATE, num_samples, mic_spacing_m, c, "recorded")


def ingest(recordings: Sequence[str | Path], out_dir: str | Path, mic_spacing_m: float,
           speakers: int | None = 2, max_speakers: int = 3, channels: tuple[int, int] = (1, 2),
           window_s: float = 2.0, hop_s: float = 2.0, shard_size: int = 100) -> IngestReport:
    """Cut recordings into windows and write them as shards of the schema without references
    (``out_dir/rec<K>/train-NNNNN.h5``, an ``index.json`` per folder, ``ingest_report.json``).

    Args:
        speakers: K of every window, or None to estimate it per window (:func:`estimate_speakers`).

    Raises:
        FileNotFoundError, ValueError: a recording :func:`read_stereo` refuses (all are checked before anything is
            written), a spacing <= 0 or one at which every bin aliases, bad window settings, an ``out_dir`` that is
            (or lies under) a file, or recordings of which no window is kept (with why each was dropped; nothing is
            written then).
    """
    out_dir = check_out_dir(out_dir)
    check_setup(SAMPLE_RATE, mic_spacing_m)
    max_delay = max_delay_samples(mic_spacing_m, SAMPLE_RATE)
    labels.check_spacing(features.N_FFT // 2 + 1, max_delay, mic_spacing_m, SAMPLE_RATE)
    win, hop = int(round(window_s * SAMPLE_RATE)), int(round(hop_s * SAMPLE_RATE))
    if win < features.N_FFT or hop < 1:
        raise ValueError(f"--window {window_s} s / --hop {hop_s} s: the window must hold one STFT frame and the hop "
                         f"be positive")
    for rec in recordings:  # every recording is checked before anything is written
        read_stereo(rec, channels)
    report = IngestReport()
    by_k: dict[int, list[dict]] = {}
    for rec in recordings:
        pair, _ = read_stereo(rec, channels)
        name = Path(rec).stem
        if pair.shape[1] < win:
            report.add(name, "shorter than a window")
            continue
        for w, start in enumerate(range(0, pair.shape[1] - win + 1, hop)):
            window = _label_window(pair[:, start: start + win], (0, "ingest", name, w), speakers, max_speakers,
                                   max_delay)
            if isinstance(window, str):
                report.add(name, window)
                continue
            k, delays, shares = window.pop("k"), window.pop("delays"), window.pop("shares")
            window["spec"] = window_spec(name, str(rec), len(by_k.get(k, [])), start, win, k, mic_spacing_m, delays)
            by_k.setdefault(k, []).append(window)
            report.add(name, "kept", float(np.min(np.diff(np.sort(delays)))), k, float(shares.min()))
    if not by_k:
        raise ValueError(f"no window of {len(recordings)} recording(s) was kept, so no shard was written:\n"
                         f"{report.summary()}\nwindows need two talkers at distinct directions, above "
                         f"{SILENT_DBFS:.0f} dBFS and active in >= {100 * MIN_ACTIVE_FRACTION:.0f} % of their bins; "
                         f"give longer recordings or a shorter --window")
    provenance = {"ingest": {"mic_spacing_m": mic_spacing_m, "channels": list(channels), "window_s": window_s,
                             "hop_s": hop_s, "speakers": speakers or "auto",
                             "recordings": [str(r) for r in recordings]}}
    for k, windows in by_k.items():
        _write_dataset(out_dir / f"rec{k}", windows, shard_size, provenance)
    write_text_atomic(out_dir / "ingest_report.json", json.dumps(report.recordings, indent=1))
    return report


def _label_window(seg: np.ndarray, key: tuple, speakers: int | None, max_speakers: int,
                  max_delay: float) -> dict | str:
    """The features and spatial labels of one window ``seg`` (2, S) of a recording, or why it is dropped.

    Returns:
        the reason (``"silent"``, ``"too few active bins"``, ``"one talker"``), or a dict of ``mic1``, ``mic2``
        (S,), ``magnitude``, ``npd`` (F, T) float32, ``bpd`` (F, T) uint8 labels, ``k`` (K, the talkers), and the
        clusters' ``delays`` (samples) and energy ``shares`` ((K,) float64 each, :func:`cluster_stats`).
    """
    if 20 * np.log10(np.sqrt(np.mean(seg[0].astype(np.float64) ** 2)) + 1e-12) < SILENT_DBFS:
        return "silent"
    spectra = features.stft(seg)  # (2, F, T)
    magnitude = np.abs(spectra[0]).astype(np.float32)
    npd = features.npd(spectra[0], spectra[1])
    active = features.active_bins(magnitude)
    if active.mean() < MIN_ACTIVE_FRACTION:
        return "too few active bins"
    if speakers is None:
        k, lab, shares = estimate_speakers(npd, magnitude, active, max_speakers, max_delay, key)
    else:
        k, lab = speakers, labels.spatial_labels(npd, active, speakers, max_delay, rng_for(*key, speakers))
        shares = cluster_stats(npd, lab, magnitude, active, k, max_delay)[1]
        if shares.min() < MIN_ENERGY_SHARE:
            k = 1
    if k < 2:
        return "one talker"
    delays = cluster_stats(npd, lab, magnitude, active, k, max_delay)[0]
    return {"mic1": seg[0], "mic2": seg[1], "magnitude": magnitude, "npd": npd, "bpd": lab, "k": k, "delays": delays,
            "shares": shares}


def _write_dataset(ddir: Path, windows: list[dict], shard_size: int, provenance: dict) -> None:
    """The windows of one K as shards ``ddir/train-NNNNN.h5`` with their specs and ``index.json``."""
    ddir.mkdir(parents=True, exist_ok=True)
    entries = []
    for s, lo in enumerate(range(0, len(windows), shard_size)):
        path = ddir / f"train-{s:05d}.h5"
        chunk = windows[lo: lo + shard_size]
        shards.write_recording_shard(path, chunk, provenance)
        entries.append(shard_index.ShardInfo.of_file(path, "train", len(chunk), lo))
    write_specs(ddir / "train.jsonl", [w["spec"] for w in windows])
    shard_index.write_index(ddir, shard_index.DatasetIndex(ddir.name, provenance, tuple(entries)))


def export_mixtures(specs: Sequence[MixtureSpec], corpus_dir, out_dir: str | Path,
                    subtype: str = "FLOAT") -> list[Path]:
    """Render specs and write each mixture as a stereo WAV (``<mixture_id>.wav``: mic 1, mic 2) with its references
    (``<mixture_id>.ref<k>.wav``: source k at mic 1) and the specs (``specs.jsonl``) beside them.

    Args:
        subtype: soundfile subtype: ``FLOAT`` (exact float32: ingest then reproduces the render's features) or
            ``PCM_16`` (as a recorder would write; peaks scaled below full scale together with the references).

    Returns:
        the stereo WAV paths.
    """
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        ex = render_mixture(spec, corpus_dir)
        scale = 1.0
        if subtype != "FLOAT":
            scale = min(1.0, 0.9 / max(float(np.abs(ex.mixture).max()), 1e-9))
        path = out_dir / f"{spec.mixture_id}.wav"
        with atomic_path(path) as tmp:
            sf.write(str(tmp), (ex.mixture * scale).T, spec.sample_rate, subtype=subtype, format="WAV")
        for k, src in enumerate(ex.sources):
            with atomic_path(out_dir / f"{spec.mixture_id}.ref{k}.wav") as tmp:
                sf.write(str(tmp), src * scale, spec.sample_rate, subtype=subtype, format="WAV")
        written.append(path)
    write_specs(out_dir / "specs.jsonl", specs)
    return written
