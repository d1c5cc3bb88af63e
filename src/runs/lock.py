"""The run folder's lock file: one process writes into a run at a time; a dead holder's lock is taken over.

    take_lock(run / ".lock")     # raises KitError naming the live process that holds it
    holder = read_pid(run / ".lock")

RunFolder.lock() holds it while training writes; the ledger reads it to tell a running run from a cut one.
"""
from __future__ import annotations

import os
from pathlib import Path

from src.core.errors import KitError

LOCK = ".lock"


def take_lock(lock: Path) -> None:
    """Create the lock file holding this process's id; raise when a live process holds it."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = read_pid(lock)
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise KitError(f"{lock.parent} is in use by process {holder} (its {LOCK} file): wait for it to "
                               f"finish, or train into another --out") from None
            print(f"{lock.parent}: taking over the lock of process {holder}, which is no longer running")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return
    raise KitError(f"{lock}: could not take the lock")


def read_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Return True when a process with this id is running (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
