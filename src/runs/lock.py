"""The run folder's lock file: one process writes into a run at a time; a dead holder's lock is taken over.

    take_lock(run / ".lock")     # raises KitError naming the live process that holds it
    holder = read_pid(run / ".lock")

RunFolder.lock() holds it while training writes; the ledger reads it to tell a running run from a cut one.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from src.core.errors import KitError
from src.core.processes import process_alive

LOCK = ".lock"


def take_lock(lock: Path, busy: str = "") -> None:
    """Create the lock file holding this process's id; raise when a live process holds it.

    busy: the refusal's words, with {pid} for the holder's id (empty: a training run's).
    """
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = read_pid(lock)
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise KitError(busy.format(pid=holder) if busy else f"{lock.parent} is in use by process {holder} "
                               f"(its {LOCK} file): wait for it to finish, or train into another --out") from None
            print(f"{lock.parent}: taking over the lock of process {holder}, which is no longer running")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return
    raise KitError(f"{lock}: could not take the lock")


@contextlib.contextmanager
def holding(lock: Path, busy: str = ""):
    """Hold the lock file while the block runs (take_lock), removing it after: one writer of a name at a time."""
    take_lock(lock, busy)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def read_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None
