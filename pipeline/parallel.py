"""Run independent tasks on Dask: a local cluster of processes by default, or an existing cluster by address."""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(workers: int, threads_per_worker: int = 1, scheduler: str | None = None):
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://HOST:PORT``) if given, else to a new
    ``LocalCluster`` of ``workers`` processes (closed on exit).

    Raises:
        ValueError: workers < 1 without a scheduler. OSError: the scheduler cannot be reached.
    """
    import dask  # heavy: imported only when a cluster is used (--workers 0 runs without Dask)
    from dask.distributed import Client, LocalCluster

    # distributed configures its loggers at import; keep a local cluster's start/stop chatter out of the user's way
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)

    if scheduler:
        client = Client(scheduler, timeout="20s")
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ValueError(f"--workers must be >= 1 for a Dask cluster, got {workers}")
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which fixes glibc's mmap threshold, so every
    # large temporary array is mmap'ed and page-faulted afresh: rendering ran 1.5x slower in a worker than in this
    # process (RESULTS.md). Our workers keep glibc's default; the BLAS thread limits stay. The workers' statistical
    # profiler (a stack sample every 10 ms, for the dashboard we do not start) cost 22 % of the render rate; the
    # event-loop tick (20 ms), system monitor (0.5 s) and memory monitor (0.1 s) wake each worker's event loop, which
    # takes the GIL from the task: at 1 s / 5 s / 1 s, and without spilling (our tasks hold little memory), a
    # 2-worker cluster rendered fm3 about 7 % faster (RESULTS.md). A failing task's exception reaches the caller
    # through its future (run_tasks raises it), so the worker's own ERROR log of it ("Compute Failed" and a
    # traceback on stderr) would only bury the message the CLI prints: workers log CRITICAL only.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False,
                          "distributed.admin.tick.interval": "1s",
                          "distributed.admin.system-monitor.interval": "5s",
                          "distributed.worker.memory.monitor-interval": "1s",
                          "distributed.worker.memory.target": False,
                          "distributed.worker.memory.spill": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                         dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def run_tasks(fn: Callable[[T], R], items: Sequence[T], workers: int = 1, threads_per_worker: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "") -> Iterator[R]:
    """Apply ``fn`` to every item and yield the results as they complete (order not kept).

    ``workers=0`` without a scheduler runs in this process (handy for debugging); otherwise one Dask task per item.
    A failing task raises its exception here, after the results already yielded.
    """
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit="task")
    try:
        if workers == 0 and not scheduler:
            for item in items:
                yield fn(item)
                bar.update()
            return
        from dask.distributed import as_completed  # (as in dask_client)

        with dask_client(workers, threads_per_worker, scheduler) as client:
            futures = client.map(fn, list(items), pure=False)
            for future in as_completed(futures):
                yield future.result()
                bar.update()
    finally:
        bar.close()


def chunked(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """Consecutive slices of ``items`` of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start: start + size]
