"""Whether a process id still names the process that wrote it: for lock files and stale temporary folders."""
from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Return True when a process with this id is running (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
