"""Render throughput: a plain loop in one process vs Dask with 1 and 2 workers, in the same run; time per stage;
bytes per mixture; and the projected time of the six default datasets (48,600 mixtures).

Beside Dask's 2 workers it times two plain processes sharing the shards through a ``multiprocessing`` pool: what
two processes get out of this machine without any scheduler, the ceiling of any 2-worker speed-up here.

    python benchmarks/render.py [--mixtures 800] [--shard-size 50] [--warm-up 200] [--repeats 3]

Defaults: 800 mixtures in shards of 50 (16 tasks); dcgen's shards hold 100. With 400 mixtures in shards of 20, each
timed run lasts 5-10 s, and the last task's tail and each run's fixed cost (a client, the specs file) weigh several
times more than in a real render of 81 shards per dataset.

Prints its figures; changes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from spatialdc.pipeline import acoustics, build, features, label_quality, labels, planner, render, shards, specs
from spatialdc.pipeline.manifest import read_manifest
from spatialdc.pipeline.parallel import dask_client
from spatialdc.pipeline.rng import rng_for

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"
SIX = {f"{g}{n}": sum(planner.PAPER_SIZES.values()) for g in specs.DATASET_GENDERS for n in (2, 3)}


def plan(gender: str, n: int, count: int) -> dict:
    utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
    return planner.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, gender, n, {"test": count})


def _warm_imports() -> None:
    import spatialdc.pipeline.metrics  # noqa: F401  (the render-time oracle SDRi)
    import spatialdc.pipeline.build  # noqa: F401
    from spatialdc.pipeline import features

    features.stft(np.zeros(1024))  # imports torch, which the STFT uses


def cold_render(by_split: dict, workers: int, shard_size: int) -> tuple[float, int]:
    """Seconds and bytes of one render as ``dcgen render`` runs: cluster start-up, imports, cold caches included."""
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        t0 = time.perf_counter()
        summary = build.render_dataset(by_split, CORPUS, out, shard_size, workers, progress=False)
        return time.perf_counter() - t0, summary["bytes"]
    finally:
        shutil.rmtree(out)


def _pool_warm_up(warm_up: dict, shard_size: int) -> None:
    """Pool initializer: imports and a warm audio cache in each process, like the Dask workers get."""
    _warm_imports()
    _pool_render(warm_up, shard_size)


def _pool_render(by_split: dict, shard_size: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    try:
        for task in build.shard_tasks(by_split, out, CORPUS, shard_size, {}):
            build.render_shard(task)
    finally:
        shutil.rmtree(out)


def steady_renders(by_split: dict, warm_up: dict, shard_size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` renders each in this process, on a 1-worker and on a 2-worker local cluster, interleaved
    (this machine's speed drifts by tens of percent from minute to minute, so the three are timed side by side).

    Before the clocks, each of the three renders ``warm_up`` (other mixtures of the same corpus): workers started,
    torch imported, decoded-audio caches filled: the steady state of a long render."""
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    times: dict[str, list[float]] = {"plain": [], "1 worker": [], "2 workers": [], "2 plain processes": []}
    try:
        ctx = multiprocessing.get_context("spawn")
        with dask_client(1) as c1, dask_client(2) as c2, \
                ctx.Pool(2, _pool_warm_up, (warm_up, shard_size)) as pool:
            schedulers = {"plain": None, "1 worker": c1.scheduler.address, "2 workers": c2.scheduler.address}
            for client in (c1, c2):
                client.run(_warm_imports)
            for name, address in schedulers.items():
                build.render_dataset(warm_up, CORPUS, out / f"warm-{name}", shard_size, 0 if address is None else 1,
                                     progress=False, scheduler=address)
            pool.map(abs, [0, 1])  # returns once both processes have run their initializer (the warm-up)
            for r in range(repeats):
                for name, address in schedulers.items():
                    t0 = time.perf_counter()
                    build.render_dataset(by_split, CORPUS, out / f"{name}-{r}", shard_size,
                                         0 if address is None else 1, progress=False, scheduler=address)
                    times[name].append(time.perf_counter() - t0)
                    shutil.rmtree(out / f"{name}-{r}")
                (out / f"pool-{r}").mkdir()
                tasks = build.shard_tasks(by_split, out / f"pool-{r}", CORPUS, shard_size, {})
                t0 = time.perf_counter()
                pool.map(build.render_shard, tasks, chunksize=1)
                times["2 plain processes"].append(time.perf_counter() - t0)
                shutil.rmtree(out / f"pool-{r}")
        return times
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
        label_quality.label_agreement(ex)
        t6 = time.perf_counter()
        if s.index % label_quality.ORACLE_EVERY == 0:
            label_quality.oracle_sdri(ex)
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
    warnings.filterwarnings("ignore", message="Port 8787 is already in use")  # two local clusters at once
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=800)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--warm-up", type=int, default=200, help="mixtures rendered before the steady-state clocks")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved steady-state runs (their median is shown)")
    args = ap.parse_args()
    rates = {}
    for gender, n in (("fm", 2), ("fm", 3)):
        planned = plan(gender, n, args.mixtures + args.warm_up)["test"]
        warm = {"test": planned[:args.warm_up]}
        by = {"test": planned[args.warm_up:]}
        m = args.mixtures
        d1, _ = cold_render(by, 1, args.shard_size)
        d2, nbytes = cold_render(by, 2, args.shard_size)
        raw = steady_renders(by, warm, args.shard_size, args.repeats)
        steady = {k: float(np.median(v)) for k, v in raw.items()}
        loop_s, w1, w2, p2 = steady["plain"], steady["1 worker"], steady["2 workers"], steady["2 plain processes"]
        rates[n] = m / w2
        print(f"\n{gender}{n}: {m} mixtures, shard size {args.shard_size}")
        print("  as dcgen runs (cluster start-up, first imports, cold audio caches included):")
        print(f"    Dask, 1 worker      : {m / d1:6.1f} mixtures/s")
        print(f"    Dask, 2 workers     : {m / d2:6.1f} mixtures/s  (x{d1 / d2:.2f} vs 1 worker)")
        print(f"  steady state (after a warm-up render of {args.warm_up} other mixtures; median of {args.repeats} "
              "interleaved runs):")
        print(f"    plain loop, 1 process: {m / loop_s:6.1f} mixtures/s")
        print(f"    Dask, 1 worker      : {m / w1:6.1f} mixtures/s")
        print(f"    Dask, 2 workers     : {m / w2:6.1f} mixtures/s  (x{w1 / w2:.2f} vs 1 worker, "
              f"x{loop_s / w2:.2f} vs the plain loop; target x1.8)")
        print(f"    2 plain processes   : {m / p2:6.1f} mixtures/s  (x{loop_s / p2:.2f} vs the plain loop: this "
              f"machine's ceiling for 2 workers; Dask reaches {p2 / w2:.0%} of it)")
        print("    each run, mixtures/s: " + "; ".join(f"{k} " + " ".join(f"{m / t:.1f}" for t in v)
                                                       for k, v in raw.items()))
        print(f"  disk                  : {nbytes / m / 1e3:6.1f} kB per mixture")
        st = stage_times(by["test"][:40])  # this process rendered warm-up mixtures: its audio cache is warm
        print("  per mixture, one process: " + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in st.items()))
    total = sum(count / rates[int(name[-1])] for name, count in SIX.items())
    print(f"\nsix default datasets ({sum(SIX.values())} mixtures) at the steady 2-worker rates: {total / 60:.1f} min "
          "projected (target 15)")
    print("(oracle_sdri runs on every 50th mixture; its figure is per mixture, averaged over all)")


if __name__ == "__main__":
    main()
