"""The time budgets of a training run (``--max-minutes``, ``--max-cpu-minutes``)."""

from __future__ import annotations

import contextlib
import time

from . import distributed


class Budget:
    """Wall-clock and CPU-time budgets of a run, counted across resumed sessions (from the history's last epoch).

    The epoch in progress is cut short early enough to leave time for one more validation, as long as the last
    one took (in wall-clock and in CPU time).
    """

    def __init__(self, minutes: float, cpu_minutes: float, history: list[dict]):
        self.wall_limit = minutes * 60 if minutes else float("inf")
        self.cpu_limit = cpu_minutes * 60 if cpu_minutes else float("inf")
        self.limited = bool(minutes or cpu_minutes)
        last = history[-1] if history else {}
        self.wall_before, self.cpu_before = last.get("seconds", 0.0), last.get("cpu_seconds", 0.0)
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.reserve_wall = self.reserve_cpu = 0.0

    def wall(self) -> float:
        """Seconds of wall-clock time of the run, earlier sessions included."""
        return self.wall_before + time.perf_counter() - self.wall0

    def cpu(self) -> float:
        """Seconds of CPU time of the training process (all threads), earlier sessions included."""
        return self.cpu_before + time.process_time() - self.cpu0

    def spent(self) -> bool:
        """True once this process's wall-clock or CPU time, plus the reserve for one more validation, is over a
        limit."""
        return (self.wall() + self.reserve_wall >= self.wall_limit) or (self.cpu() + self.reserve_cpu >= self.cpu_limit)

    def out_of_time(self) -> bool:
        """:meth:`spent` as rank 0 sees it, on every rank (all processes stop at the same step); False, without a
        collective call, for a run without a time budget."""
        return distributed.rank0_decides(self.spent()) if self.limited else False

    def describe(self) -> str:
        parts = [f"{self.wall_limit / 60:.1f} min" if self.wall_limit < float("inf") else "",
                 f"{self.cpu_limit / 60:.1f} CPU-min" if self.cpu_limit < float("inf") else ""]
        return " / ".join(p for p in parts if p)

    @contextlib.contextmanager
    def validation(self):
        """Time a validation: its cost is reserved at the end of the next epoch."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        yield
        self.reserve_wall, self.reserve_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
