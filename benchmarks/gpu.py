"""The prepared GPU run (issue 23): on a bare one-GPU machine, ``bash benchmarks/gpu.sh`` installs the project and
the carried wheels and runs this; it runs anywhere (``--device cpu --minutes 1`` checks it end to end on a CPU).

    python benchmarks/gpu.py --out DIR [--device auto] [--minutes 7]

Within ``--minutes`` of wall clock (the machine's time is counted):

(a) **equality**: one training step of the 2 x 200 model (the shipped any-bpd's weights, dropout off) on a fixed
    seeded batch (8 mixtures x 100 frames) on ``--device`` against the same step on the CPU: the loss and the
    gradients, relative to the CPU's. fp32: the reference step, IEEE float32 on both (no TF32); bf16: the fast step,
    bf16 dense layer on both, TF32 in the GPU's LSTM as ``--precision auto`` trains. Tolerances: TOLERANCES.
(b) **throughput**: frames per second of the bare training step (forward, fused loss, backward, clipping, Adam on
    batches already on the device; 100-frame chunks) at batches 8 to 256, for ``fp32`` and ``auto`` (on CUDA also
    autocast of the whole forward, which runs cuDNN's LSTM in float16: measured, not offered), two repeats each, and
    the device's own CPU at batch 8; the speed-up over this project's CPU figure (CPU_FIGURE).
(c) **fine-tuning**: renders f2, m2 and fm2 training mixtures of the bundled corpus on the machine's cores (in the
    background while (a) and (b) run; a seed per process) and validation mixtures (seed 0), then continues the
    shipped any-bpd (dcsep's default, the campaign model) on the campaign recipe (``dctrain --target bpd --hidden
    200 --batch-size 8 --lr-schedule plateau --valid-mixtures 0 --init-from models/any-bpd.pt``) on ``--device`` for
    the minutes left; the shipped model's validation loss on the same mixtures is measured first.
(d) **dceval's split**: per mixture, the network's forward on the device and on the CPU, K-means and BSS Eval on the
    CPU (the two that stay there).

Writes OUT/results.md (every number), OUT/results.json, and from (c) OUT/best.pt, OUT/log.csv, OUT/loss.png.
Exits 1 when an equality check fails (after writing everything).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logging.getLogger("hdf5plugin").setLevel(logging.CRITICAL)  # a carried hdf5plugin holds its Bitshuffle filter only

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spatialdc.pipeline.metrics import bss_eval_sets  # noqa: E402
from spatialdc.pipeline.shards import ShardSet, expand_shards  # noqa: E402
from spatialdc.trainer.checkpoint import load_checkpoint, model_args  # noqa: E402
from spatialdc.trainer.config import TrainConfig  # noqa: E402
from spatialdc.trainer.data import DeepClusteringDataset  # noqa: E402
from spatialdc.trainer.device import describe_device, resolve_device  # noqa: E402
from spatialdc.trainer.loop import batch_loss, train, validate  # noqa: E402
from spatialdc.trainer.loss import fused_affinity_loss, one_hot_targets  # noqa: E402
from spatialdc.trainer.model import DeepClusteringNet  # noqa: E402
from spatialdc.trainer.precision import StepMode, resolve, set_tf32  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 100  # frames per training chunk (the recipe's --chunk-frames)
TOLERANCES = {"fp32": {"loss": 1e-5, "grad": 1e-4}, "bf16": {"loss": 1e-3, "grad": 2e-2}}  # relative to the CPU's
CPU_FIGURE = (8298, "dctrain loop, --precision auto, batch 8, 2 CPU cores with AVX-512 BF16 (RESULTS.md, machine C)")
GENDERS = ("f", "m", "fm")
T0 = time.perf_counter()


def say(message: str) -> None:
    """Print with the seconds since the start."""
    print(f"[{time.perf_counter() - T0:5.0f} s] {message}", flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="results folder ($OUT on the device machine)")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N")
    ap.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget of the whole run")
    ap.add_argument("--model", default=str(ROOT / "models" / "any-bpd.pt"), help="the shipped model to continue")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gpu-work"), help="scratch folder (replaced)")
    ap.add_argument("--batches", default=None, help="batch sizes of (b) [GPU: 8,16,32,64,128,256; CPU: 8]")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement of (b) [GPU 20, CPU 2]")
    ap.add_argument("--render-processes", type=int, default=None,
                    help="processes rendering training mixtures, beside 3 for validation [GPU: cores - 5; CPU: 3]")
    ap.add_argument("--train-per-process", type=int, default=None, help="training mixtures each [GPU 480, CPU 8]")
    ap.add_argument("--valid-mixtures", type=int, default=None, help="validation mixtures per gender mix [100, 4]")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers of (c) [GPU 8, CPU 0]")
    ap.add_argument("--batch-size", type=int, default=8, help="(c): mixtures per step (the recipe's 8)")
    ap.add_argument("--lr-scaling", default="none", help="(c): none|linear|sqrt (trainer/schedule.py)")
    return ap.parse_args()


def sizes(args: argparse.Namespace, cuda: bool) -> argparse.Namespace:
    """Fill the size options left out: a GPU machine's, or the CPU's smoke-test ones."""
    cores = os.cpu_count() or 2
    defaults = {"batches": "8,16,32,64,128,256" if cuda else "8", "steps": 20 if cuda else 2,
                "render_processes": max(cores - 5, 3) if cuda else 3, "train_per_process": 480 if cuda else 8,
                "valid_mixtures": 100 if cuda else 4, "workers": min(8, max(cores - 2, 0)) if cuda else 0}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.batches = [int(b) for b in str(args.batches).split(",")]
    return args


def start_rendering(work: Path, args: argparse.Namespace) -> list[subprocess.Popen]:
    """dcgen processes (no Dask), each its own log, niced so that (a) and (b) keep a core or two: validation
    mixtures of each gender mix (seed 0), and training mixtures, a seed and gender mix per process (mixture specs
    differ with the seed; speakers come from the corpus manifest's training split)."""
    cli = [sys.executable, "-m", "spatialdc.pipeline.cli", "render", "--speakers", "2", "--workers", "0", "--quiet"]
    jobs = [(["--gender", g, "--split", "valid", "--num-mixtures", str(args.valid_mixtures), "--seed", "0",
              "--out", str(work / "valid")], f"valid-{g}") for g in GENDERS]
    jobs += [(["--gender", GENDERS[k % 3], "--split", "train", "--num-mixtures", str(args.train_per_process),
               "--seed", str(k + 1), "--out", str(work / "train" / f"seed{k + 1}")], f"train-{k + 1}")
             for k in range(args.render_processes)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return [subprocess.Popen(cli + extra, cwd=ROOT, env=env, stdout=open(work / f"render-{name}.log", "w"),
                             stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10)) for extra, name in jobs]


def shipped_net(path: str, dropout: float) -> tuple[DeepClusteringNet, dict]:
    """The shipped model's network (float32, CPU, train mode) with another dropout, and its checkpoint."""
    state = load_checkpoint(path)
    net = DeepClusteringNet(**dict(model_args(state), dropout=dropout))
    net.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return net.train(), state


def fixed_batch(b: int, f: int = 257, seed: int = 0) -> dict:
    """A seeded synthetic batch shaped like dctrain's: x (B, T, F) ~ N(0, 1) (normalized log magnitudes), BPD labels
    of 2 sources, loss weights 0/1 (70 % of bins kept)."""
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(b, CHUNK, f, generator=g), "y": torch.randint(0, 2, (b, CHUNK, f), generator=g),
            "w": (torch.rand(b, CHUNK, f, generator=g) < 0.7).float(), "n": torch.full((b,), 2)}


def loss_and_grads(net: DeepClusteringNet, batch: dict, mode: StepMode) -> tuple[float, list[torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    loss = batch_loss(net, batch, "bpd", mode)
    loss.backward()
    return loss.item(), [p.grad.detach().double().cpu() for p in net.parameters()]


def check_step(device: torch.device, model_path: str) -> list[dict]:
    """(a): the step on ``device`` against the CPU's, fp32 and bf16 (see the module docstring)."""
    rows = []
    cpu_net, _ = shipped_net(model_path, dropout=0.0)
    dev_net, _ = shipped_net(model_path, dropout=0.0)
    dev_net.to(device)
    batch = fixed_batch(8, cpu_net.num_freqs)
    on_dev = {k: v.to(device) if k != "n" else v for k, v in batch.items()}
    for name, fused, bf16 in (("fp32", False, False), ("bf16", True, True)):
        if device.type == "cuda":
            set_tf32(name != "fp32")
        loss_c, grads_c = loss_and_grads(cpu_net, batch, StepMode(fused, bf16, "cpu"))
        loss_d, grads_d = loss_and_grads(dev_net, on_dev, StepMode(fused, bf16, device.type))
        g_c, g_d = torch.cat([g.flatten() for g in grads_c]), torch.cat([g.flatten() for g in grads_d])
        worst = max(float((d - c).norm() / c.norm().clamp_min(1e-30)) for c, d in zip(grads_c, grads_d))
        row = {"step": name, "loss_cpu": loss_c, "loss_device": loss_d, "loss_rel": abs(loss_d - loss_c) / loss_c,
               "grad_rel": float((g_d - g_c).norm() / g_c.norm()), "grad_rel_worst_tensor": worst,
               "tolerance": TOLERANCES[name]}
        row["ok"] = bool(row["loss_rel"] <= TOLERANCES[name]["loss"] and row["grad_rel"] <= TOLERANCES[name]["grad"])
        rows.append(row)
        say(f"(a) {name}: loss cpu {loss_c:.7f} device {loss_d:.7f} (rel {row['loss_rel']:.2e}); gradients rel "
              f"{row['grad_rel']:.2e} (worst tensor {worst:.2e}); tolerance {TOLERANCES[name]}: "
              f"{'ok' if row['ok'] else 'FAILED'}")
    return rows


def step_rate(net: DeepClusteringNet, batch: dict, mode: str, device: torch.device, steps: int) -> float:
    """Frames per second of ``steps`` bare training steps after 3 warm-up steps. ``mode``: a ``--precision`` value,
    or ``autocast-all`` (torch.autocast bf16 around the whole forward, fused loss outside)."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    step_mode = resolve("auto" if mode == "autocast-all" else mode, device)
    if device.type == "cuda":
        set_tf32(step_mode.fused)

    def step() -> None:
        loss = autocast_all_loss(net, batch) if mode == "autocast-all" else batch_loss(net, batch, "bpd", step_mode)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch["x"].shape[0] * batch["x"].shape[1] / (time.perf_counter() - t0)


def autocast_all_loss(net: DeepClusteringNet, batch: dict) -> torch.Tensor:
    """The fused loss (float32) of the network's forward under bf16 autocast as a whole: on CUDA, cuDNN's LSTM in
    float16 and the dense layer in bf16 (the variant ``--precision`` does not offer: trainer/precision.py)."""
    with torch.autocast(batch["x"].device.type, dtype=torch.bfloat16):
        v = net(batch["x"], normalize=False)  # (B, T, F, D) float32 (the model casts the dense output back)
    b = v.shape[0]
    y = one_hot_targets(batch["y"].reshape(b, -1), 2)  # (B, L, 2)
    return fused_affinity_loss(v.reshape(b, -1, v.shape[-1]), y, batch["w"].reshape(b, -1))


def throughput(device: torch.device, batches: list[int], steps: int) -> list[dict]:
    """(b): frames/s per batch size and step, two repeats each (interleaved), and the CPU's at batch 8."""
    modes = ["fp32", "auto"] + (["autocast-all"] if device.type == "cuda" else [])
    rows = []
    for b in batches:
        batch = {k: v.to(device) if k != "n" else v for k, v in fixed_batch(b).items()}
        for mode in modes:
            rates = []
            try:
                for repeat in range(2):
                    torch.manual_seed(repeat)
                    net = DeepClusteringNet(257, 200, 2, 20, 0.3).to(device).train()
                    rates.append(step_rate(net, batch, mode, device, steps))
            except RuntimeError as exc:  # out of memory, a kernel the build lacks: the other rows still count
                say(f"(b) batch {b} {mode}: {type(exc).__name__}: {str(exc)[:300]}")
                rates = rates or [float("nan")]
            rows.append({"device": describe_device(device), "batch": b, "step": mode,
                         "frames_per_s": statistics.median(rates), "repeats": rates})
            say(f"(b) batch {b:4d} {mode:12s}: {statistics.median(rates):10.0f} frames/s "
                  f"({min(rates):.0f}-{max(rates):.0f})")
    if device.type == "cuda":
        cpu = torch.device("cpu")
        batch = fixed_batch(8)
        rate = step_rate(DeepClusteringNet(257, 200, 2, 20, 0.3).train(), batch, "auto", cpu, max(steps // 4, 2))
        rows.append({"device": f"cpu ({os.cpu_count()} cores)", "batch": 8, "step": "auto", "frames_per_s": rate,
                     "repeats": [rate]})
        say(f"(b) this machine's CPU, batch 8 auto: {rate:.0f} frames/s")
    return rows


def wait_rendering(procs: list[subprocess.Popen], work: Path, deadline: float,
                   required: int = len(GENDERS) + 1) -> None:
    """Wait for the dcgen processes: the first ``required`` (the validation sets and one training set, which (c) and
    (d) cannot do without) to the end, the others at most until ``deadline`` (stragglers are stopped: fewer
    mixtures)."""
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=None if i < required else max(deadline - time.perf_counter(), 1))
        except subprocess.TimeoutExpired:
            p.terminate()
            p.wait()
    failed = [p.args[-1] for p in procs if p.returncode not in (0, -15)]
    if failed:
        logs = "\n".join((work / f).read_text()[-800:] for f in os.listdir(work) if f.startswith("render-"))
        raise RuntimeError(f"rendering failed ({failed}):\n{logs}")


def dceval_split(device: torch.device, valid_glob: str, model_path: str, count: int = 8) -> dict:
    """(d): ms per mixture, as one dceval worker computes (one thread; dceval runs a worker per core): the network's
    forward (``count`` mixtures in one batch, a task's chunk) on the device and on the CPU, then K-means, masks and
    inverse STFT, and BSS Eval (mixture baseline + model), which stay on the CPU."""
    from threadpoolctl import threadpool_limits

    from spatialdc.eval.separate import load_model, network_outputs, separate_mixture

    shards = ShardSet(expand_shards(valid_glob))
    data = [shards.read(i, ("mixture", "sources", "magnitude", "spec")) for i in range(min(count, len(shards)))]
    mags = np.stack([d["magnitude"] for d in data])
    threads = torch.get_num_threads()
    result = {}
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for where in dict.fromkeys([device, torch.device("cpu")]):
            loaded = load_model(model_path, where)
            network_outputs(loaded.net, loaded.stats, mags)  # warm-up
            result[f"forward {describe_device(where)}"] = 1e3 * best_time(
                lambda: network_outputs(loaded.net, loaded.stats, mags)) / len(data)
        emb = network_outputs(loaded.net, loaded.stats, mags)[2]
        seps = [separate_mixture(emb[k], d["magnitude"], 2, seed=0, key=k, mixture=d["mixture"][0])
                for k, d in enumerate(data)]
        result["K-means + masks + iSTFT, cpu"] = 1e3 * best_time(lambda: [separate_mixture(
            emb[k], d["magnitude"], 2, seed=0, key=k, mixture=d["mixture"][0]) for k, d in enumerate(data)]) / len(data)
        result["BSS Eval (mixture + model), cpu"] = 1e3 * best_time(lambda: [bss_eval_sets(
            d["sources"], [np.tile(d["mixture"][0], (2, 1)), sep.stems]) for d, sep in zip(data, seps)]) / len(data)
    torch.set_num_threads(threads)
    for k, v in result.items():
        say(f"(d) {k}: {v:.1f} ms per mixture")
    return result


def best_time(fn, repeats: int = 3) -> float:
    """The shortest of ``repeats`` timings of ``fn()`` in seconds (the least disturbed by other work), synchronizing
    a GPU first."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def shipped_valid_loss(model_path: str, valid_glob: str, device: torch.device) -> float:
    """The shipped model's validation loss on the run's validation mixtures (the reference step, as dctrain
    validates)."""
    net, state = shipped_net(model_path, dropout=0.0)
    valid = DeepClusteringDataset(ShardSet(expand_shards(valid_glob)), "bpd", state["stats"], 0, 40.0, 0)
    loader = torch.utils.data.DataLoader(valid, batch_size=8, sampler=list(range(len(valid))))
    return validate(net.to(device), loader, "bpd", device)


def fine_tune(args: argparse.Namespace, work: Path, device: torch.device, minutes: float) -> dict:
    """(c): the campaign recipe from the shipped model for ``minutes`` (at least a few seconds), into work/run."""
    train_glob, valid_glob = str(work / "train" / "seed*" / "*" / "train-*.h5"), str(work / "valid" / "*" / "valid-*.h5")
    before = shipped_valid_loss(args.model, valid_glob, device)
    say(f"(c) shipped model's validation loss on these mixtures: {before:.4f}")
    config = TrainConfig(shards=train_glob, valid=valid_glob, target="bpd", hidden=200, batch_size=args.batch_size,
                         epochs=1000, valid_mixtures=0, lr_schedule="plateau", cache_gb=9, init_from=args.model,
                         num_workers=args.workers, device=str(device), lr_scaling=args.lr_scaling,
                         max_minutes=max(minutes, 0.05))
    summary = train(config, work / "run", progress=False)
    history = summary["history"]
    seconds = sum(h["train_seconds"] for h in history)
    result = {"shipped_valid_loss": before, "best_valid_loss": summary["best_valid_loss"], "epochs": summary["epochs"],
              "steps": summary["steps"], "minutes": summary["seconds"] / 60, "train_mixtures": len(ShardSet(
                  expand_shards(train_glob))), "valid_mixtures": len(ShardSet(expand_shards(valid_glob))),
              "loop_frames_per_s": summary["steps"] * args.batch_size * CHUNK / max(seconds, 1e-9),
              "step_mode": history[-1]["step_mode"], "device": history[-1]["device"],
              "beats_shipped": summary["best_valid_loss"] < before}
    say(f"(c) {result['epochs']} epochs, {result['steps']} steps in {result['minutes']:.1f} min "
          f"({result['loop_frames_per_s']:.0f} frames/s in the loop): best validation loss "
          f"{result['best_valid_loss']:.4f} against the shipped model's {before:.4f}")
    return result


def environment(device: torch.device) -> dict:
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "device": describe_device(device),
           "cpu_cores": os.cpu_count()}
    if device.type == "cuda":
        env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16=torch.cuda.is_bf16_supported())
    return env


def write_results(out: Path, results: dict) -> None:
    """OUT/results.json (everything) and OUT/results.md (the tables a person reads)."""
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    lines = [f"# GPU run: {results['environment']['device']}", "", "```", json.dumps(results["environment"]), "```",
             "", "## (a) one training step, device against CPU (relative differences)", "",
             "| step | loss cpu | loss device | loss rel | grad rel | worst tensor | tolerance (loss, grad) | |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['loss_cpu']:.7f} | {r['loss_device']:.7f} | {r['loss_rel']:.1e} | "
              f"{r['grad_rel']:.1e} | {r['grad_rel_worst_tensor']:.1e} | {r['tolerance']['loss']:.0e}, "
              f"{r['tolerance']['grad']:.0e} | {'ok' if r['ok'] else 'FAILED'} |" if "loss_cpu" in r else
              "| the check raised: see gpu.log | | | | | | | FAILED |" for r in results["equality"]]
    lines += ["", f"## (b) bare training step, frames/s (x {CPU_FIGURE[0]} frames/s: {CPU_FIGURE[1]})", "",
              "| device | batch | step | frames/s (median of 2) | repeats | x CPU figure |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['batch']} | {r['step']} | {r['frames_per_s']:.0f} | "
              f"{' / '.join(f'{v:.0f}' for v in r['repeats'])} | {r['frames_per_s'] / CPU_FIGURE[0]:.1f} |"
              for r in results["throughput"]]
    lines += ["", "## (d) dceval, ms per mixture", "", "| part | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in results.get("dceval", {}).items()]
    lines += ["", "## (c) fine-tuning the shipped model (campaign recipe)", "", "```",
              json.dumps(results.get("fine_tune", {}), indent=1), "```", "",
              f"Wall clock: {results['seconds']:.0f} s of {results['minutes'] * 60:.0f}."]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def attempt(fn, *args):
    """``fn(*args)``, or None after printing the error: a part that fails leaves the others their time."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 (reported; the run goes on)
        say(f"{fn.__name__} failed: {type(exc).__name__}: {str(exc)[:500]}")
        return None


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # dctrain's epoch lines in (c)
    t0 = T0
    deadline = t0 + args.minutes * 60
    device = resolve_device(args.device)
    args = sizes(args, device.type == "cuda")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    procs = start_rendering(work, args)
    results = {"environment": environment(device), "minutes": args.minutes}
    say(f"device {results['environment']}; rendering with {len(procs)} processes")
    results["equality"] = attempt(check_step, device, args.model) or [{"step": "-", "ok": False}]
    results["throughput"] = throughput(device, args.batches, args.steps)
    reserve = max(0.1 * args.minutes * 60, 15)  # the last validation, writing the results
    say("waiting for the rendering")
    wait_rendering(procs, work, deadline - reserve - 30)
    results["dceval"] = attempt(dceval_split, device, str(work / "valid" / "*" / "valid-*.h5"), args.model) or {}
    results["fine_tune"] = fine_tune(args, work, device, (deadline - time.perf_counter() - reserve) / 60)
    for name in ("best.pt", "log.csv", "loss.png"):
        if (work / "run" / name).is_file():
            shutil.copy(work / "run" / name, out / name)
    results["seconds"] = time.perf_counter() - t0
    write_results(out, results)
    say(f"wrote {out}/results.md, results.json, best.pt, log.csv, loss.png in {results['seconds']:.0f} s")
    if not all(r["ok"] for r in results["equality"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
