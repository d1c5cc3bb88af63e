"""Whether a process id still names the process that wrote it: for lock files and stale temporary folders."""
from __future__ import annotations

import os
import socket
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Return True when a process with this id is running (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str:
    """Return when the process started, as Linux's /proc/<pid>/stat gives it (clock ticks after boot); '' elsewhere.

    Why: a process id is reused. A lock file holding its writer's id and start can tell its writer from
    a later process given the same id (in a copied run folder, pid 1 is always running, and is no training).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""  # the 22nd field: starttime (the first two precede the ")")


def ticks_since_boot() -> int | None:
    """Return how long this machine has been up, in the clock ticks process_start counts in; None elsewhere.

    Why: a lock recording a start later than now was written before the machine (or its container's host)
    last started, so its writer is gone whatever process holds that id today.
    """
    try:
        seconds = float(Path("/proc/uptime").read_text().split()[0])
        return int(seconds * os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def process_program(pid: int) -> str:
    """Return the program the process runs, its command line's first word (from /proc); '' when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def runs_python(program: str) -> bool:
    """Return True when the program is a Python interpreter: every kit job runs in one (python -m src.train, a
    notebook's ipykernel, pytest by its shebang); an init, a shell or a daemon holding a lock's id is no writer."""
    return any(word in Path(program).name.lower() for word in ("python", "pypy"))


def host_name() -> str:
    """Return this machine's name: a lock written on another machine names a process this one cannot see."""
    return socket.gethostname()
