"""Training throughput: mixtures per second of dctrain's loop (DataLoader over shards, loss, clipping, Adam, progress)
against the bare model step on the same batches held in memory, in the same run: forward + backward + gradient-norm
clipping (dctrain's default ``clip_grad``) + Adam; the bare step without clipping is printed too.

    python benchmarks/train.py [--mixtures 160] [--hidden 300] [--batch-size 8]

Target: the loop reaches >= 90 % of the bare model's throughput.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from spatialdc.pipeline import build, corpus, specs
from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.data import DeepClusteringDataset, input_stats
from spatialdc.trainer.loop import batch_loss, train
from spatialdc.trainer.model import build_model

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "librispeech-clips"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtures", type=int, default=160)
    ap.add_argument("--hidden", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-workers", type=int, default=TrainConfig.__dataclass_fields__["num_workers"].default)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        utts = corpus.read_manifest(ROOT / "data_manifests/corpora/librispeech-clips.csv")
        by = build.plan_dataset(utts, CORPUS, specs.RenderConfig(), 0, "fm", 2,
                                {"train": args.mixtures, "valid": args.batch_size})
        build.render_dataset(by, CORPUS, tmp / "data", 40, 2, progress=False)
        config = TrainConfig(shards=str(tmp / "data/fm2/train-*.h5"), valid=str(tmp / "data/fm2/valid-*.h5"),
                             target="bpd", hidden=args.hidden, batch_size=args.batch_size, epochs=2,
                             num_workers=args.num_workers)
        # dctrain's loop: two epochs, the second one timed (the first warms caches and allocators)
        history = train(config, tmp / "run", progress=False)["history"]
        loop_rate = args.mixtures / history[-1]["train_seconds"]
        # the bare model on the same kind of batches, prepared in memory beforehand
        data = DeepClusteringDataset(ShardSet(expand_shards(config.shards)), "bpd",
                                     input_stats(ShardSet(expand_shards(config.shards))), config.chunk_frames)
        batches = list(DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True))
        model = build_model(config)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        for batch in batches[:2]:  # warm-up
            loss = batch_loss(model, batch, "bpd")
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates = {}
        for clip in (False, True):  # dctrain clips the gradient norm (config.clip_grad); time the bare step both ways
            t0 = time.perf_counter()
            for batch in batches:
                loss = batch_loss(model, batch, "bpd")
                opt.zero_grad()
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                opt.step()
            rates[clip] = len(batches) * args.batch_size / (time.perf_counter() - t0)
        bare_rate = rates[True]
        print(f"hidden {args.hidden}, batch {args.batch_size}, chunk {config.chunk_frames} frames, "
              f"{args.threads} torch threads, {args.num_workers} loader workers, {args.mixtures} mixtures per epoch")
        print(f"  dctrain loop : {loop_rate:6.2f} mixtures/s")
        print(f"  bare model   : {rates[False]:6.2f} mixtures/s (forward + backward + Adam), "
              f"{bare_rate:6.2f} with dctrain's gradient clipping")
        print(f"  loop / bare  : {100 * loop_rate / bare_rate:5.1f} % of the bare step with clipping, "
              f"{100 * loop_rate / rates[False]:5.1f} % without  (target >= 90 %)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
