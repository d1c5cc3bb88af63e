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


def host_name() -> str:
    """Return this machine's name: a lock written on another machine names a process this one cannot see."""
    return socket.gethostname()
