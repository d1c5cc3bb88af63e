"""The run folder's lock file: one process writes into a run at a time; a dead holder's lock is taken over.

The file names its writer by id, machine and start time, so an id reused by another process (pid 1 in a
copied run) or a lock copied from another machine is no live holder.

    take_lock(run / ".lock")     # raises KitError naming the live process that holds it
    holder, gone = lock_holder(run / ".lock")   # gone: why its process no longer holds it ('' when it does)

RunFolder.lock() holds it while training writes; the ledger reads it to tell a running run from a cut one.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from src.core.errors import KitError
from src.core.processes import host_name, process_alive, process_program, process_start, runs_python, ticks_since_boot

LOCK = ".lock"


def take_lock(lock: Path, busy: str = "") -> None:
    """Create the lock file holding this process's id, host and start; raise when its live writer holds it.

    busy: the refusal's words, with {pid} for the holder's id (empty: a training run's). A lock whose
    process is gone, or whose id now names another process (a copied run: pid 1), is taken over, said.
    """
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder, gone = lock_holder(lock)
            if not gone:
                raise KitError(busy.format(pid=holder) if busy else f"{lock.parent} is in use by process {holder} "
                               f"(its {LOCK} file): wait for it to finish, or train into another --out") from None
            print(f"{lock.parent}: taking over the lock of process {holder}, {gone}")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n{host_name()} {process_start(os.getpid())}\n")
        return
    raise KitError(f"{lock}: could not take the lock")


def lock_holder(lock: Path) -> tuple:
    """Return (the lock's process id, '' when that process holds it still, else why it does not).

    Locks of older kits hold the id alone: a live process of that id is taken to hold them.
    """
    try:
        lines = lock.read_text().split("\n")
        pid = int(lines[0].strip() or "0") or None
    except (OSError, ValueError):
        return None, "which the lock file does not name"
    host, start = (lines[1].split() + ["", ""])[:2] if len(lines) > 1 and lines[1].strip() else ("", "")
    if pid is None or pid == os.getpid():
        return pid, "which is no longer running"
    if host and host != host_name():
        return pid, f"which ran on another machine ({host}): the run was copied"
    if not process_alive(pid):
        return pid, "which is no longer running"
    if start and process_start(pid) and process_start(pid) != start:
        return pid, "which is no longer running (that id now names another process)"
    return pid, not_the_writer(pid, start)


def not_the_writer(pid: int, start: str) -> str:
    """Return why the live process `pid` cannot be the lock's writer ('' when it may be): the lock's recorded start
    is later than this machine's uptime (written before it restarted), or the process runs no Python (pid 1, an
    init or a shell in a copied run: its own start may even match the one recorded)."""
    uptime = ticks_since_boot()
    if start.isdigit() and uptime is not None and int(start) > uptime:
        return "which is no longer running (its start is recorded after this machine's uptime: written before " \
               "the machine restarted)"
    program = process_program(pid)
    if program and not runs_python(program):
        return f"which is no longer running (that id now names {program}, which is no kit job)"
    return ""


@contextlib.contextmanager
def holding(lock: Path, busy: str = ""):
    """Hold the lock file while the block runs (take_lock), removing it after: one writer of a name at a time."""
    take_lock(lock, busy)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
