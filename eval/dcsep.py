"""``dcsep``: separate a user's recording into one WAV per speaker with a trained deep-clustering model."""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path
from typing import Sequence

import click
import numpy as np
import soundfile as sf

from spatialdc.pipeline import features
from spatialdc.pipeline.atomic import atomic_path

from .count import DEFAULT_SHARE, CountHead, count_features, estimate_num_speakers, network_outputs
from .evaluate import DEFAULT_CLUSTER_DB, resolve_count_head
from .separate import apply_masks, binary_masks, cluster_labels, embed

MODEL_SAMPLE_RATE = 16000  # the rate the models are trained at (dcgen's default)


def read_recording(path: str | Path, sample_rate: int = MODEL_SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Channel 1 of a WAV / FLAC / any libsndfile format, resampled (polyphase, scipy) to ``sample_rate``.

    Returns:
        ((S,) float64 samples, the file's own sample rate).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable or empty audio.
    """
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as audio ({exc}); give a WAV or FLAC file") from exc
    if x.shape[0] == 0:
        raise ValueError(f"{path} holds no samples")
    x = x[:, 0]
    if sr != sample_rate:
        g = gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g)
    if not np.any(np.abs(x) > 0):
        raise ValueError(f"{path} is silent: nothing to separate")
    return x, sr


def _chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    if n <= chunk:
        return [(0, n)]
    hop = chunk - overlap
    starts = list(range(0, n - overlap, hop))
    return [(s, min(s + chunk, n)) for s in starts if s < n]


def _best_permutation(prev: np.ndarray, cur: np.ndarray) -> list[int]:
    """Order of ``cur``'s stems (N, S) that best matches ``prev`` (N, S) by correlation (Hungarian assignment)."""
    from scipy.optimize import linear_sum_assignment

    a = prev / (np.linalg.norm(prev, axis=1, keepdims=True) + 1e-12)
    b = cur / (np.linalg.norm(cur, axis=1, keepdims=True) + 1e-12)
    _, cols = linear_sum_assignment(-(a @ b.T))
    return list(cols)


def level_gain(magnitudes: Sequence[np.ndarray], stats: dict) -> float:
    """Gain that brings a recording to the level of the model's training mixtures: the mean log magnitude of its STFT
    bins is matched to the mean of the training input statistics (the network's input normalization is fixed per
    frequency, so a recording much quieter or louder than the training mixtures would be out of distribution).
    Only the network input is scaled; masks apply to the recording as it is.

    Args:
        magnitudes: |STFT| (F, T_k) of the recording's chunks. stats: the checkpoint's ``{"mean": (F,), ...}`` of
            log(|M1| + 1e-8).

    Returns:
        float > 0 (1.0 for an all-zero recording).
    """
    mag = np.concatenate([np.ravel(m) for m in magnitudes]).astype(np.float64)
    if not np.any(mag > 0):
        return 1.0
    # log of the non-zero bins, without the 1e-8 floor: the gain of c * x is exactly gain(x) / c
    return float(np.exp(float(np.mean(stats["mean"])) - float(np.mean(np.log(mag[mag > 0])))))


def separate_recording(x: np.ndarray, model, stats: dict, num_speakers: int | None, chunk_s: float = 8.0,
                       overlap_s: float = 2.0, max_speakers: int = 3, cluster_db: float = DEFAULT_CLUSTER_DB,
                       sample_rate: int = MODEL_SAMPLE_RATE, seed: int = 0,
                       count_head: CountHead | None = None) -> tuple[np.ndarray, int]:
    """Separate a single-channel recording of any length.

    The recording is cut into chunks of ``chunk_s`` seconds overlapping by ``overlap_s``; each chunk is embedded,
    clustered into binary masks and resynthesized (as ``dceval`` does); the stems of each chunk are matched to the
    previous chunk's by their correlation over the overlap and cross-faded linearly. With ``num_speakers`` None the
    count is estimated: with ``count_head``, by :func:`estimate_count_with_head` (windows as long as its training
    mixtures, probabilities averaged); without, by the eigenvalue rule per chunk, the largest estimate used for all
    chunks. The network
    sees the recording at the level of its training mixtures (:func:`level_gain`), so the stems scale with the input.

    Args:
        x: (S,) float, at ``sample_rate``.

    Returns:
        ((N, S) float32 stems, N).
    """
    chunk, overlap = int(chunk_s * sample_rate), int(overlap_s * sample_rate)
    bounds = _chunk_bounds(x.shape[0], chunk, overlap)
    mags = [np.abs(features.stft(x[lo:hi])) for lo, hi in bounds]  # (F, T_k) per chunk
    gain = level_gain(mags, stats)
    embs = [(embed(model, stats, gain * mag[None])[0], features.active_bins(mag, cluster_db)) for mag in mags]
    if num_speakers is None and count_head is not None:
        num_speakers = estimate_count_with_head(x, model, stats, count_head, gain, max_speakers, cluster_db)
    elif num_speakers is None:
        num_speakers = max(estimate_num_speakers(e, a, max_speakers) for e, a in embs if a.any())
    out = np.zeros((num_speakers, x.shape[0]))
    prev_tail = None
    for k, ((lo, hi), (emb, active)) in enumerate(zip(bounds, embs)):
        seg = x[lo:hi]
        if num_speakers == 1 or active.sum() < num_speakers:
            stems = np.repeat(seg[None] / num_speakers, num_speakers, axis=0)
        else:
            labels = cluster_labels(emb, active, num_speakers, seed + k)
            stems = apply_masks(seg, binary_masks(labels, num_speakers)).astype(np.float64)
        ov = min(overlap, hi - lo) if k > 0 else 0
        if prev_tail is not None and ov > 0:
            stems = stems[_best_permutation(prev_tail[:, -ov:], stems[:, :ov])]
            fade = np.linspace(0.0, 1.0, ov)
            out[:, lo: lo + ov] = out[:, lo: lo + ov] * (1 - fade) + stems[:, :ov] * fade
            out[:, lo + ov: hi] = stems[:, ov:]
        else:
            out[:, lo:hi] = stems
        prev_tail = stems
    return out.astype(np.float32), num_speakers


def estimate_count_with_head(x: np.ndarray, model, stats: dict, head: CountHead, gain: float, max_speakers: int,
                             cluster_db: float, window_s: float = 2.0, sample_rate: int = MODEL_SAMPLE_RATE) -> int:
    """Speaker count of a recording with the count head: the recording is cut into consecutive windows of
    ``window_s`` (the length of the mixtures the head was fitted on; a shorter recording is one window), each window's
    class probabilities are computed at the network's training level (``gain``), and the most probable count of
    their mean is returned.

    Args:
        x: (S,) float recording. gain: :func:`level_gain` of the recording.

    Returns:
        int in the head's classes, at most ``max_speakers``.

    Raises:
        ValueError: a silent recording.
    """
    win = int(window_s * sample_rate)
    starts = range(0, max(x.shape[0] - win, 0) + 1, win)
    mags = np.stack([np.abs(features.stft(x[lo: lo + win])) for lo in starts])  # (W, F, T)
    xin, h, v = network_outputs(model, stats, gain * mags)
    active = features.active_bins(mags, head.cluster_db or cluster_db)  # (W, F, T)
    keep = [k for k in range(len(mags)) if active[k].any()]
    if not keep:
        raise ValueError("the recording is silent: no speaker to count")
    probs = head.probabilities(np.stack([count_features(xin[k], h[k], v[k], active[k]) for k in keep])).mean(0)
    return int(head.most_probable(probs, max_speakers)[0])


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="dctrain checkpoint (best.pt).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="stems",
              help="Folder for <recording>_speaker<k>.wav.")
@click.option("--speakers", default="2", help="Number of speakers, or 'auto' to estimate it with the count head "
                                                "(or, without one, the eigenvalue rule on the embeddings).")
@click.option("--max-speakers", type=int, default=3, help="Largest count 'auto' may return.")
@click.option("--count-head", type=click.Path(dir_okay=False), default=None,
              help="Count head for --speakers auto (fitted by dccount) [default: count_head.json beside the "
                   "checkpoint if there is one].")
@click.option("--chunk-seconds", type=float, default=8.0, help="Long recordings are separated in chunks this long.")
@click.option("--overlap-seconds", type=float, default=2.0, help="Overlap of consecutive chunks (speakers matched).")
@click.option("--cluster-db", type=float, default=DEFAULT_CLUSTER_DB, help="K-means fit range below the loudest bin.")
def main(recording, checkpoint, out, speakers, max_speakers, count_head, chunk_seconds, overlap_seconds,
         cluster_db) -> None:
    """Separate RECORDING (WAV/FLAC, any rate, mic 1 of a multichannel file) into one WAV per speaker."""
    from spatialdc.trainer.checkpoint import load_checkpoint, model_from_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if speakers != "auto" and not (speakers.isdigit() and int(speakers) >= 1):
        raise click.BadParameter(f"{speakers!r}: give a count >= 1 or 'auto'", param_hint="--speakers")
    if overlap_seconds >= chunk_seconds:
        raise click.BadParameter("must be shorter than --chunk-seconds", param_hint="--overlap-seconds")
    try:
        x, sr = read_recording(recording)
        model, _ = model_from_checkpoint(state := load_checkpoint(checkpoint))
        head_path = resolve_count_head(checkpoint, count_head) if speakers == "auto" else None
        head = CountHead.load(head_path) if head_path else None
        stems, n = separate_recording(x, model, state["stats"], None if speakers == "auto" else int(speakers),
                                      chunk_seconds, overlap_seconds, max_speakers, cluster_db, count_head=head)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    peak = max(float(np.abs(stems).max()), 1e-9)
    scale = 0.99 / peak if peak > 0.99 else 1.0  # avoid clipping in the 16-bit files
    for k in range(n):
        path = out / f"{Path(recording).stem}_speaker{k + 1}.wav"
        with atomic_path(path) as tmp:
            sf.write(str(tmp), stems[k] * scale, MODEL_SAMPLE_RATE, subtype="PCM_16", format="WAV")
        click.echo(f"wrote {path}")
    click.echo(f"{n} speaker(s){' (estimated)' if speakers == 'auto' else ''}, {x.shape[0] / MODEL_SAMPLE_RATE:.1f} s "
               f"from {recording} ({sr} Hz)")


if __name__ == "__main__":
    main()
