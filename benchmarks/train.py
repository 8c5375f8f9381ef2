"""Training throughput: the reference fp32 step (``--precision fp32``, the step of earlier versions) against the
fast step (``--precision auto`` on this machine), and dctrain's whole loop against its bare step.

    python benchmarks/train.py [--mixtures 160] [--hidden 200] [--batch-size 8] [--repeats 5]

Renders ``--mixtures`` fm2 training mixtures of the bundled corpus into a temporary folder, then, ``--repeats``
times, interleaved so that the machine's drift hits every variant alike:

- the **loop**: ``dctrain``'s training loop (``trainer.loop.train``: DataLoader over the shards, loss, gradient
  clipping, Adam, progress bookkeeping) for two epochs, the second one timed (the first warms the decoded-mixture
  cache and the allocator), once with each precision;
- the **bare step**: forward + loss + backward + gradient clipping + Adam of the same model on batches already in
  memory (the same batches for both precisions).

Prints frames per second (batch x chunk frames per step): medians with the spread (min-max) of the repeats. The last
line reads ``speed-up x<ratio>: <new> vs <fp32> frames/s; loop at <pct> % of its bare step``, the ratio being the
fast loop's median over the fp32 loop's, the percentage the fast loop's median over the fast bare step's.
Targets (issue 15): x2.0 and 90 %. Run it when nothing else runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from spatialdc.pipeline import build, planner, specs
from spatialdc.pipeline.manifest import read_manifest
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.data import DeepClusteringDataset, input_stats
from spatialdc.trainer.loop import batch_loss, train
from spatialdc.trainer.model import build_model
from spatialdc.trainer.precision import native_bf16, resolve

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def bare_rate(config: TrainConfig, batches: list[dict], frames: int) -> float:
    """Frames per second of forward + backward + clipping + Adam on in-memory batches (after one warm-up step)."""
    torch.manual_seed(0)
    model = build_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    mode = resolve(config.precision)

    def step(batch):
        loss = batch_loss(model, batch, config.target, mode)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        opt.step()

    step(batches[0])
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    return len(batches) * frames / (time.perf_counter() - t0)


def loop_rate(config: TrainConfig, run_dir: Path, steps: int, frames: int) -> float:
    """Frames per second of dctrain's loop in its second epoch."""
    shutil.rmtree(run_dir, ignore_errors=True)
    history = train(config, run_dir, progress=False)["history"]
    return steps * frames / history[-1]["train_seconds"]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=160, help="Training mixtures per epoch.")
    ap.add_argument("--hidden", type=int, default=200, help="BLSTM units per direction.")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--chunk-frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2, help="Torch threads.")
    ap.add_argument("--repeats", type=int, default=5, help="Interleaved repeats of every measurement.")
    ap.add_argument("--new", default="auto", help="The --precision of the new step.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        utts = read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
        by = planner.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, "fm", 2,
                                {"train": args.mixtures, "valid": args.batch_size})
        build.render_dataset(by, CORPUS, tmp / "data", 40, 2, progress=False)
        base = dict(shards=str(tmp / "data/fm2/train-*.h5"), valid=str(tmp / "data/fm2/valid-*.h5"), target="bpd",
                    hidden=args.hidden, batch_size=args.batch_size, chunk_frames=args.chunk_frames, epochs=2)
        configs = {"fp32": TrainConfig(**base, precision="fp32"), "new": TrainConfig(**base, precision=args.new)}
        shards = ShardSet(expand_shards(base["shards"]))
        data = DeepClusteringDataset(shards, "bpd", input_stats(shards), args.chunk_frames)
        batches = list(DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                  generator=torch.Generator().manual_seed(0)))
        frames = args.batch_size * args.chunk_frames
        steps = args.mixtures // args.batch_size
        loops = {k: [] for k in configs}
        bares = {k: [] for k in configs}
        for r in range(args.repeats):
            for name, config in configs.items():
                loops[name].append(loop_rate(config, tmp / f"run-{name}", steps, frames))
                bares[name].append(bare_rate(config, batches, frames))
            print(f"repeat {r + 1}/{args.repeats}: loop fp32 {loops['fp32'][-1]:.0f}, new {loops['new'][-1]:.0f}; "
                  f"bare fp32 {bares['fp32'][-1]:.0f}, new {bares['new'][-1]:.0f} frames/s", flush=True)
        mode = resolve(args.new)
        print(f"hidden {args.hidden}, batch {args.batch_size}, chunk {args.chunk_frames} frames, {args.threads} torch "
              f"threads, {args.mixtures} mixtures per epoch, {args.repeats} interleaved repeats, "
              f"{os.cpu_count()} CPUs, native bf16: {native_bf16()}; new step: {mode.name} (--precision {args.new})")
        print("frames/s, median (min-max)   fp32 (reference)    new")
        print(f"  dctrain loop                {spread(loops['fp32'])}  {spread(loops['new'])}")
        print(f"  bare step                   {spread(bares['fp32'])}  {spread(bares['new'])}")
        loop_new, loop_fp32 = statistics.median(loops["new"]), statistics.median(loops["fp32"])
        pct = 100 * loop_new / statistics.median(bares["new"])
        pct_fp32 = 100 * loop_fp32 / statistics.median(bares["fp32"])
        print(f"  loop / bare step            {pct_fp32:6.1f} %           {pct:6.1f} %")
        print(f"speed-up x{loop_new / loop_fp32:.2f}: {loop_new:.0f} vs {loop_fp32:.0f} frames/s; "
              f"loop at {pct:.1f} % of its bare step")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
