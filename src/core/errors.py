"""The one exception type the kit raises for bad input, and how CLIs show it.

A write the file system refuses (read-only, permissions, a full disk) is bad input too: the
user picks another folder or frees space, so it is one sentence naming the path (disk_error).
"""
from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
from pathlib import Path

from src.core.backend import choose_keras_backend
from src.core.console import quiet_native_logs, quiet_retracing_warnings


class KitError(Exception):
    """Bad input from the user: the message names the file, column or flag and what was expected."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the job left behind and how to continue it (run_cli prints it: one line, exit 130)."""


@contextlib.contextmanager
def interrupts_kept():
    """Within the block, note every Ctrl-C (SIGINT) as it is raised; after it, raise KeyboardInterrupt if one came.

    Why: a KeyboardInterrupt raised while a garbage-collection callback runs (JAX registers one, and measuring a
    backbone builds and drops models) is printed as "Exception ignored" and swallowed by Python, and the job ran on
    to exit code 0. Outside the main thread (where signals are not delivered) the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    pressed = []

    def note(signum, frame):
        pressed.append(signum)
        previous(signum, frame)  # Python's own handler raises KeyboardInterrupt here, wherever the code is

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


# The OSErrors a user fixes by choosing another folder or freeing space: each gets one sentence.
WHAT_TO_DO = {
    errno.EROFS: "the file system is read-only: write to another folder (--out)",
    errno.EACCES: "permission denied: write to a folder you own (--out), or change its permissions",
    errno.EPERM: "operation not permitted: write to a folder you own (--out), or change its permissions",
    errno.ENOSPC: "no space left on the device: free some space or write to another disk (--out); the files "
                  "written before were kept",
    errno.EDQUOT: "disk quota exceeded: free some space or write to another disk (--out); the files written "
                  "before were kept",
}


def is_disk_error(err: BaseException) -> bool:
    """Return True for an OSError the user fixes with another folder or more space (see WHAT_TO_DO).

    h5py reports a full disk as an OSError without errno, its text holding the C library's message.
    """
    return isinstance(err, OSError) and (err.errno in WHAT_TO_DO or "No space left on device" in str(err))


def disk_error(err: OSError, path: str | Path | None = None) -> KitError:
    """Return the KitError for a refused write, 'cannot write PATH: what happened: what to do'.

    `path` (what the kit was writing) wins over the OSError's own file name, which may be a temporary
    one; the OSError rides along as `os_error`, so a caller can name a larger whole.
    """
    where = path or err.filename or "a file"
    code = err.errno if err.errno in WHAT_TO_DO else errno.ENOSPC
    error = KitError(f"cannot write {where}: {WHAT_TO_DO[code]}")
    error.os_error = err
    return error


@contextlib.contextmanager
def disk_errors(path: str | Path | None = None):
    """Within the block, turn a write the disk refuses into the KitError naming path (disk_error); others pass.

    The one translation every writer uses (atomic files, submission sets, run folders, a stage's fit).
    """
    try:
        yield
    except OSError as err:
        if not is_disk_error(err):
            raise
        raise disk_error(err, path) from None


def run_cli(main, argv=None) -> int:
    """Run a CLI `main(argv)`; a KitError becomes one `error:` line and exit code 2, no traceback.

    Exists so every `python -m src.<module>` reports bad input the same way, and prints its own
    lines rather than TensorFlow's C++ start-up noise (src.core.console). Ctrl-C is one `interrupted`
    line (what to do next, when the job says: Interrupted) and exit code 130, as a shell reports SIGINT.
    """
    quiet_retracing_warnings()
    with quiet_native_logs():
        choose_keras_backend()  # before the job imports Keras: on Kaggle's TPU VMs only JAX reaches the TPU
        try:
            main(argv)
        except KitError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # a folder made or a file written outside the atomic helpers
            if not is_disk_error(err):
                raise
            print(f"error: {disk_error(err)}", file=sys.stderr)  # no path known here: the OSError's own
            return 2
        except KeyboardInterrupt as stop:
            print(f"interrupted: {stop}" if isinstance(stop, Interrupted) else "interrupted", file=sys.stderr)
            return 130
    return 0
