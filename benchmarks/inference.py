"""Inference speed: dceval's model throughput and dcsep's real-time factor, the earlier way and the current one, in
the same run (interleaved repeats, medians).

    python benchmarks/inference.py --checkpoint runs/x/best.pt [--seconds 30] [--mixtures 64] [--repeats 3]

- **dceval embeddings**: the first ``--mixtures`` fm2 test mixtures (``--shards``), embedded in batches of 8 as
  dceval's workers do: earlier under ``torch.no_grad`` in float32; now ``spatialdc.eval.separate.embed``
  (``torch.inference_mode``; the dense layer in bf16 where the CPU has native bf16). Frames per second.
- **dcsep**: a ``--seconds`` recording of a female and a male test speaker of the bundled corpus (equal RMS,
  summed), separated with 2 speakers in 8 s chunks with 2 s overlap: earlier every chunk embedded on its own, now
  the chunks batched (:func:`spatialdc.eval.separator.embed_chunks`); K-means and resynthesis are the same. Real-time
  factor = seconds of compute per second of audio (lower is faster), with the share spent embedding.
Run it when nothing else runs; the torch threads are set by ``--threads``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spatialdc.eval import separator
from spatialdc.eval.separate import embed
from spatialdc.pipeline import corpus
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.checkpoint import load_model
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
    utts = corpus.read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    n, out = int(seconds * 16000), np.zeros(int(seconds * 16000))
    for g in ("f", "m"):
        u = next(u for u in utts if u.split == "test" and u.gender == g)
        x = np.resize(corpus.load_audio(u, CORPUS, 16000), n)
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
    model, state = load_model(args.checkpoint)
    stats = state["stats"]
    shards = ShardSet(expand_shards(args.shards))
    mags = [shards.read(i, ("magnitude",))["magnitude"] for i in range(min(args.mixtures, len(shards)))]
    batches = [np.stack(mags[k: k + 8]) for k in range(0, len(mags), 8)]
    frames = sum(b.shape[0] * b.shape[2] for b in batches)
    x = recording(args.seconds)
    per_chunk = functools.partial(separator.embed_chunks, batch=1)
    batched = separator.embed_chunks
    results: dict[str, list[float]] = {k: [] for k in ("emb_before", "emb_now", "sep_before", "sep_now",
                                                       "sep_embed_before", "sep_embed_now")}
    for fn in (embed_before, embed):  # warm-up
        fn(model, stats, batches[0])
    for _ in range(args.repeats):
        for name, fn in (("emb_before", embed_before), ("emb_now", embed)):
            t0 = time.perf_counter()
            for b in batches:
                fn(model, stats, b)
            results[name].append(frames / (time.perf_counter() - t0))
        for name, chunks in (("sep_before", per_chunk), ("sep_now", batched)):
            spent = []

            def timed(*a, _chunks=chunks, **k):
                t = time.perf_counter()
                out = _chunks(*a, **k)
                spent.append(time.perf_counter() - t)
                return out

            separator.embed_chunks = timed
            t0 = time.perf_counter()
            separator.separate_recording(x, model, stats, 2)
            results[name].append((time.perf_counter() - t0) / args.seconds)
            results[name.replace("sep", "sep_embed")].append(sum(spent) / args.seconds)
            separator.embed_chunks = batched
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.checkpoint}: {args.threads} torch threads, native bf16: {native_bf16()}, {args.repeats} repeats")
    print(f"dceval embeddings, {len(mags)} mixtures in batches of 8: before {med['emb_before']:.0f} frames/s, now "
          f"{med['emb_now']:.0f} frames/s (x{med['emb_now'] / med['emb_before']:.2f})")
    print(f"dcsep, {args.seconds:.0f} s recording, 2 speakers: real-time factor before {med['sep_before']:.3f} "
          f"(embedding {med['sep_embed_before']:.3f}), now {med['sep_now']:.3f} (embedding {med['sep_embed_now']:.3f}); "
          f"x{med['sep_before'] / med['sep_now']:.2f}")


if __name__ == "__main__":
    main()
