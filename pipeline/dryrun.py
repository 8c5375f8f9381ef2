"""``dcgen render --dry-run``: check a request and project the disk and time it takes, rendering nothing."""

from __future__ import annotations

from typing import Sequence

from .corpus import CorpusSource
from .planner import Planner, parse_sizes
from .specs import MixtureSpec, RenderConfig, dataset_name

# Disk and time per mixture, measured on the 2-core reference machine (`dcgen render --all-datasets`, 2026-11-26,
# bitshuffle + zstd): 396-399 kB per 2-speaker and 467-471 kB per 3-speaker mixture, i.e. about 71 kB per source
# signal on top of 256 kB (mic 2, features, labels); 2 workers rendered 8,100 mixtures in 92-98 s (2 speakers)
# and 124-132 s (3 speakers), planning included.
BYTES_PER_SOURCE = 71_000
BYTES_FIXED = 256_000
SECONDS_PER_MIXTURE_PER_WORKER = {2: 0.024, 3: 0.031}


def estimate(num_speakers: int, num_mixtures: int, workers: int) -> tuple[int, float]:
    """(bytes on disk, seconds) projected for ``num_mixtures`` mixtures of N speakers on ``workers`` workers."""
    per = SECONDS_PER_MIXTURE_PER_WORKER.get(num_speakers, 0.007 * num_speakers + 0.010)
    return (num_mixtures * (BYTES_FIXED + BYTES_PER_SOURCE * num_speakers),
            num_mixtures * per / max(workers, 1))


def dry_run(source: CorpusSource, datasets: Sequence[tuple[str, int]], splits: Sequence[str],
            num_mixtures: str | None, config: RenderConfig, seed: int, workers: int) -> list[dict]:
    """Check every requested (gender, N, split) and project its size and time; render nothing.

    Raises:
        ValueError / FileNotFoundError: an impossible request, with the numbers (as ``dcgen render`` would).
    """
    planner = Planner.of_corpus(source.utterances, source.corpus, config, seed)
    rows = []
    for gender, n in datasets:
        for split, count in parse_sizes(num_mixtures, splits).items():
            planner.check(gender, n, split)
            nbytes, seconds = estimate(n, count, workers)
            rows.append({"dataset": dataset_name(gender, n), "split": split, "mixtures": count,
                         "speakers_available": sum(len(planner.eligible(split, g)) for g in set(gender)),
                         "bytes": nbytes, "seconds": seconds})
    return rows


def dry_run_specs(by_split: dict[str, list[MixtureSpec]], workers: int) -> list[dict]:
    """:func:`dry_run` rows for specs already planned."""
    rows = []
    for split, ss in by_split.items():
        n = ss[0].num_speakers
        nbytes, seconds = estimate(n, len(ss), workers)
        rows.append({"dataset": ss[0].dataset, "split": split, "mixtures": len(ss),
                     "speakers_available": len({spk for x in ss for spk in x.speakers}),
                     "bytes": nbytes, "seconds": seconds})
    return rows


def format_dry_run(rows: Sequence[dict]) -> str:
    """The rows of :func:`dry_run` or :func:`dry_run_specs` as a table, with a total line."""
    lines = [f"{'dataset':<8}{'split':<7}{'mixtures':>9}{'speakers':>10}{'disk':>11}{'time':>10}"]
    for r in rows:
        lines.append(f"{r['dataset']:<8}{r['split']:<7}{r['mixtures']:>9}{r['speakers_available']:>10}"
                     f"{r['bytes'] / 1e9:>9.2f}GB{r['seconds'] / 60:>8.1f}min")
    lines.append(f"{'total':<15}{sum(r['mixtures'] for r in rows):>9}{'':>10}"
                 f"{sum(r['bytes'] for r in rows) / 1e9:>9.2f}GB{sum(r['seconds'] for r in rows) / 60:>8.1f}min")
    return "\n".join(lines)
