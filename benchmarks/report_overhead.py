"""What the HTML report adds to ``dceval``'s time: the same evaluation with ``--examples 0`` and ``--examples N``,
interleaved, wall-clock medians.

    python benchmarks/report_overhead.py --checkpoint models/fm2-bpd.pt [--shards 'data/fm2/valid-*.h5']
        [--mixtures 300] [--examples 6] [--repeats 1]

Each run is a whole ``dceval`` process (plots on, oracles on, the default 2 Dask workers), so the figure is what a
user waits for. The last line reads ``report overhead <pct> %: <with> s vs <without> s``. Run it when nothing else
runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_dceval(args: argparse.Namespace, examples: int, out: Path) -> float:
    """Seconds of one ``dceval`` run writing to ``out`` (raises CalledProcessError if it fails)."""
    cmd = [sys.executable, "-c", "from spatialdc.eval.dceval import main; main()", "--checkpoint", args.checkpoint, "--shards", args.shards,
           "--max-mixtures", str(args.mixtures), "--examples", str(examples), "--quiet",
           "--report", str(out / f"sdr-{examples}.csv")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--shards", default="data/fm2/valid-*.h5")
    ap.add_argument("--mixtures", type=int, default=300)
    ap.add_argument("--examples", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    times: dict[int, list[float]] = {0: [], args.examples: []}
    with tempfile.TemporaryDirectory(prefix="report-overhead-") as tmp:
        for r in range(args.repeats):
            for examples in (0, args.examples) if r % 2 == 0 else (args.examples, 0):
                times[examples].append(timed_dceval(args, examples, Path(tmp)))
                print(f"repeat {r + 1}: --examples {examples}: {times[examples][-1]:.1f} s", flush=True)
    without, with_ = statistics.median(times[0]), statistics.median(times[args.examples])
    print(f"report overhead {100 * (with_ - without) / without:.1f} %: {with_:.1f} s vs {without:.1f} s")


if __name__ == "__main__":
    main()
