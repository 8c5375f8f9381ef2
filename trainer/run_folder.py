"""A run folder belongs to one run: ``dctrain --out`` checked before any work, then held with a lock file.

The lock, ``RUN/dctrain.lock``, is created atomically (``O_CREAT | O_EXCL``: of two processes that race for it,
exactly one creates it) and holds JSON ``{pid, host, started, proc_start, command}``; it is removed when the run
ends, by an error or Ctrl-C too. A second run into the folder is refused with the holder's process id, host and
command. A lock whose process is gone (killed with -9, the machine rebooted) is stale: reported and replaced. On
Linux the holder's start time (``/proc/PID/stat``) is recorded, so a process id reused by another program does not
keep a stale lock alive. A lock of another host cannot be checked: it is honoured, and the message says how to
remove it. Under DDP only rank 0 takes it (:func:`hold_run_folder`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from . import distributed

log = logging.getLogger(__name__)
LOCK_FILE = "dctrain.lock"
UNWRITTEN_GRACE_S = 10.0  # an empty or garbled lock younger than this may be being written: honour it


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run folder: process id, host name, start time (ISO 8601) and command line."""

    pid: int
    host: str
    started: str
    command: str
    proc_start: str | None = None

    @classmethod
    def this_process(cls) -> "LockHolder":
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S"),
                   " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), _proc_start(os.getpid()))

    def alive(self) -> bool:
        """False only when the holder is surely gone: a process of this host that no longer runs (or whose id now
        belongs to a process started at another time)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user: it exists
            pass
        now = _proc_start(self.pid)
        return not (self.proc_start and now and now != self.proc_start)

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started}: {self.command}"


def read_lock(lock: Path) -> LockHolder | None:
    """The holder a lock file names; None if it is empty or garbled."""
    try:
        return LockHolder(**json.loads(lock.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _busy(lock: Path, holder: LockHolder | None) -> FileExistsError:
    who = holder.describe() if holder else "a lock file that does not say who holds it"
    return FileExistsError(f"{lock.parent} is in use by another dctrain run ({who}); wait for it to end or give "
                           f"another --out. If no run uses the folder any more, delete {lock}")


def _stale(lock: Path, holder: LockHolder | None) -> bool:
    if holder is None:
        try:
            return time.time() - lock.stat().st_mtime > UNWRITTEN_GRACE_S
        except FileNotFoundError:
            return True
    return not holder.alive()


def _remove_stale(lock: Path, holder: LockHolder | None) -> None:
    """Move the stale lock aside and delete it; if what was moved is not the stale lock any more (another process
    replaced it in the meantime), put it back and refuse."""
    aside = lock.with_name(f"{lock.name}.stale-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # another process removed it first
    if read_lock(aside) != holder:
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock)
        aside.unlink()
        raise _busy(lock, read_lock(lock))
    aside.unlink()
    log.warning("%s: replaced the stale lock of a run that is gone (%s)", lock,
                holder.describe() if holder else "an unwritten lock file")


def take_lock(folder: Path) -> Path:
    """Create ``folder/dctrain.lock`` for this process, replacing a stale one. Returns its path.

    Raises:
        FileExistsError: a live run holds the folder (the message names it and what to do).
    """
    lock = folder / LOCK_FILE
    me = LockHolder.this_process()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(lock)
            if not _stale(lock, holder):
                raise _busy(lock, holder) from None
            _remove_stale(lock, holder)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(me)))
        return lock
    raise _busy(lock, read_lock(lock))


def release_lock(lock: Path) -> None:
    """Delete the lock if it is still this process's."""
    holder = read_lock(lock)
    if holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname():
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def hold_run_folder(folder: Path, rank: int = 0) -> Iterator[None]:
    """Hold ``folder`` for this run: rank 0 takes the lock (released on leaving, by an exception or Ctrl-C too);
    every rank learns whether it got it, so that under DDP all processes stop when it is refused.

    Raises:
        FileExistsError: another live run holds the folder.
    """
    lock, refused = None, None
    if rank == 0:
        try:
            lock = take_lock(folder)
        except FileExistsError as exc:
            refused = exc
    if not distributed.rank0_decides(refused is None):
        raise refused or FileExistsError(f"{folder} is in use by another dctrain run (rank 0 could not lock it)")
    try:
        yield
    finally:
        if lock is not None:
            release_lock(lock)
