"""Render throughput: a plain loop in one process vs Dask with 1 and 2 workers, in the same run; time per stage;
bytes per mixture; and the projected time of the six default datasets (48,600 mixtures).

    python benchmarks/render.py [--mixtures 400] [--shard-size 20]

Prints its figures; changes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline import acoustics, build, corpus, features, labels, render, shards, specs
from pipeline.parallel import dask_client
from pipeline.rng import rng_for

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"
SIX = {f"{g}{n}": sum(specs.PAPER_SIZES.values()) for g in specs.DATASET_GENDERS for n in (2, 3)}


def plan(gender: str, n: int, count: int) -> dict:
    utts = corpus.read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    return build.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, gender, n, {"test": count})


def _warm_imports() -> None:
    import eval.metrics  # noqa: F401  (the render-time oracle SDRi)
    import pipeline.build  # noqa: F401
    from pipeline import features

    features.stft(np.zeros(1024))  # imports torch, which the STFT uses


def timed_render(by_split: dict, workers: int, shard_size: int, warm: bool = False) -> tuple[float, int]:
    """Seconds and bytes of one render. ``warm``: on a local Dask cluster started, with its workers' imports done,
    before the clock (the steady state of a long render); otherwise as ``dcgen render`` runs, start-up included."""
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        if not warm:
            t0 = time.perf_counter()
            summary = build.render_dataset(by_split, CORPUS, out, shard_size, workers, progress=False)
            return time.perf_counter() - t0, summary["bytes"]
        with dask_client(workers) as client:  # the local cluster dcgen starts, started before the clock
            client.run(_warm_imports)
            t0 = time.perf_counter()
            summary = build.render_dataset(by_split, CORPUS, out, shard_size, workers, progress=False,
                                           scheduler=client.scheduler.address)
            return time.perf_counter() - t0, summary["bytes"]
    finally:
        shutil.rmtree(out)


def stage_times(spec_list: list) -> dict[str, float]:
    """Seconds per mixture of each stage, run one after another in this process."""
    t = dict.fromkeys(("read", "delay", "stft", "kmeans", "labels_ds", "agreement", "oracle_sdri", "write"), 0.0)
    examples = []
    for s in spec_list:
        t0 = time.perf_counter()
        segs = np.stack([render.read_segment(CORPUS / p, o, s.num_samples, s.sample_rate)
                         for p, o in zip(s.paths, s.offsets)])
        t1 = time.perf_counter()
        acoustics.anechoic_two_mic(segs, s.delays_samples)
        t2 = time.perf_counter()
        ex = render.render_mixture(s, CORPUS)  # full render, to time the remaining stages on real arrays
        z = features.stft(np.concatenate([ex.mixture, ex.sources]))
        t3 = time.perf_counter()
        act = features.active_bins(ex.magnitude)
        labels.bpd_labels(ex.npd, act, s.num_speakers, 0.466, rng_for(0, "bench"))
        t4 = time.perf_counter()
        labels.ds_labels(z[2:])
        t5 = time.perf_counter()
        build.label_agreement(ex)
        t6 = time.perf_counter()
        if s.index % build.ORACLE_EVERY == 0:
            build.oracle_sdri(ex)
        t["oracle_sdri"] += time.perf_counter() - t6
        t["read"] += t1 - t0
        t["delay"] += t2 - t1
        t["stft"] += t3 - t2 - (t2 - t0)  # render_mixture repeats read + delay; subtract them
        t["kmeans"] += t4 - t3
        t["labels_ds"] += t5 - t4
        t["agreement"] += t6 - t5
        examples.append(ex)
    out = Path(tempfile.mkdtemp(prefix="bench-write-"))
    t0 = time.perf_counter()
    shards.write_shard(out / "x.h5", examples, {})
    t["write"] = time.perf_counter() - t0
    shutil.rmtree(out)
    return {k: v / len(spec_list) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixtures", type=int, default=400)
    ap.add_argument("--shard-size", type=int, default=20)
    args = ap.parse_args()
    rates = {}
    for gender, n in (("fm", 2), ("fm", 3)):
        by = plan(gender, n, args.mixtures)
        m = args.mixtures
        loop_s, nbytes = timed_render(by, 0, args.shard_size)
        d1, _ = timed_render(by, 1, args.shard_size)
        d2, _ = timed_render(by, 2, args.shard_size)
        w1, _ = timed_render(by, 1, args.shard_size, warm=True)
        w2, _ = timed_render(by, 2, args.shard_size, warm=True)
        rates[n] = m / w2
        print(f"\n{gender}{n}: {m} mixtures, shard size {args.shard_size}")
        print(f"  plain loop, 1 process : {m / loop_s:6.1f} mixtures/s")
        print("  as dcgen runs (cluster start-up included):")
        print(f"    Dask, 1 worker      : {m / d1:6.1f} mixtures/s")
        print(f"    Dask, 2 workers     : {m / d2:6.1f} mixtures/s  (x{d1 / d2:.2f} vs 1 worker, "
              f"x{loop_s / d2:.2f} vs the plain loop)")
        print("  steady state (cluster started and imports done before the clock):")
        print(f"    Dask, 1 worker      : {m / w1:6.1f} mixtures/s")
        print(f"    Dask, 2 workers     : {m / w2:6.1f} mixtures/s  (x{w1 / w2:.2f} vs 1 worker, "
              f"x{loop_s / w2:.2f} vs the plain loop; target x1.8)")
        print(f"  disk                  : {nbytes / m / 1e3:6.1f} kB per mixture")
        st = stage_times(by["test"][:40])
        print("  per mixture, one process: " + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in st.items()))
    total = sum(count / rates[int(name[-1])] for name, count in SIX.items())
    print(f"\nsix default datasets ({sum(SIX.values())} mixtures) at the steady 2-worker rates: {total / 60:.1f} min "
          "projected (target 15)")
    print("(oracle_sdri runs on every 50th mixture; its figure is per mixture, averaged over all)")


if __name__ == "__main__":
    main()
