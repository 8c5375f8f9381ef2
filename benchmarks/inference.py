"""Inference speed: dceval's model throughput and dcsep's real-time factor, the earlier way and the current one, in
the same run (interleaved repeats, medians).

    python benchmarks/inference.py --checkpoint runs/x/best.pt [--seconds 30] [--mixtures 64] [--repeats 3]

- **dceval embeddings**: the first ``--mixtures`` fm2 test mixtures (``--shards``), embedded in batches of 8 as
  dceval's workers do: earlier under ``torch.no_grad`` in float32; now ``spatialdc.eval.separate.embed``
  (``torch.inference_mode``; the dense layer in bf16 where the CPU has native bf16). Frames per second.
- **dcsep**: a ``--seconds`` recording of a female and a male test speaker of the bundled corpus (equal RMS,
  summed), separated with 2 speakers in 8 s chunks with 2 s overlap
  (:func:`spatialdc.eval.separator.separate_recording`): real-time factor = seconds of compute per second of audio
  (lower is faster), and the part of it spent embedding (the rest: STFT, K-means, resynthesis).
Run it when nothing else runs; the torch threads are set by ``--threads``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spatialdc.eval import separator
from spatialdc.eval.separate import embed, load_model
from spatialdc.pipeline.manifest import load_audio, read_manifest
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.data import network_input
from spatialdc.trainer.precision import native_bf16

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def embed_before(model, stats, magnitudes: np.ndarray) -> np.ndarray:
    """Embeddings as dceval computed them before: ``torch.no_grad``, float32 throughout."""
    with torch.no_grad():
        return model(torch.from_numpy(network_input(magnitudes, stats))).transpose(1, 2).numpy()


def recording(seconds: float) -> np.ndarray:
    """A female and a male test speaker of the bundled corpus, each cycled to ``seconds`` at unit RMS, summed."""
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    n, out = int(seconds * 16000), np.zeros(int(seconds * 16000))
    for g in ("f", "m"):
        u = next(u for u in utts if u.split == "test" and u.gender == g)
        x = np.resize(load_audio(u, CORPUS, 16000), n)
        out += x / np.sqrt(np.mean(x**2))
    return 0.1 * out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--shards", default="data/fm2/test-*.h5")
    ap.add_argument("--mixtures", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.checkpoint)
    model, stats = loaded.net, loaded.stats
    shards = ShardSet(expand_shards(args.shards))
    mags = [shards.read(i, ("magnitude",))["magnitude"] for i in range(min(args.mixtures, len(shards)))]
    batches = [np.stack(mags[k: k + 8]) for k in range(0, len(mags), 8)]
    frames = sum(b.shape[0] * b.shape[2] for b in batches)
    x = recording(args.seconds)
    results: dict[str, list[float]] = {k: [] for k in ("emb_before", "emb_now", "sep", "sep_embed")}
    for fn in (embed_before, embed):  # warm-up
        fn(model, stats, batches[0])
    real_embed = separator.embed
    for _ in range(args.repeats):
        for name, fn in (("emb_before", embed_before), ("emb_now", embed)):
            t0 = time.perf_counter()
            for b in batches:
                fn(model, stats, b)
            results[name].append(frames / (time.perf_counter() - t0))
        spent = []

        def timed(*a, **k):
            t = time.perf_counter()
            out = real_embed(*a, **k)
            spent.append(time.perf_counter() - t)
            return out

        separator.embed = timed
        t0 = time.perf_counter()
        separator.separate_recording(x, model, stats, 2)
        results["sep"].append((time.perf_counter() - t0) / args.seconds)
        results["sep_embed"].append(sum(spent) / args.seconds)
        separator.embed = real_embed
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.checkpoint}: {args.threads} torch threads, native bf16: {native_bf16()}, {args.repeats} repeats")
    print(f"dceval embeddings, {len(mags)} mixtures in batches of 8: before {med['emb_before']:.0f} frames/s, now "
          f"{med['emb_now']:.0f} frames/s (x{med['emb_now'] / med['emb_before']:.2f})")
    print(f"dcsep, {args.seconds:.0f} s recording, 2 speakers: real-time factor {med['sep']:.3f} (embedding "
          f"{med['sep_embed']:.3f})")


if __name__ == "__main__":
    main()
