"""Writing files so that a kill never leaves half of one: write a temporary name, then rename.

Every file the kit writes that a later job reads back (config.json, state.json, split.csv,
weights, tables) goes through here or through the same temporary-name-and-rename pattern.
A write the file system refuses (read-only, permissions, a full disk) is one KitError naming the
path and what to do (disk_error), and leaves the previous file as it was, with no temporary file.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from pathlib import Path

from src.core.errors import KitError, disk_error, disk_errors
from src.core.processes import process_alive


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    On an exception the temporary file is removed and `path` is left as it was; a refused write
    (read-only, permissions, full disk) becomes a KitError naming `path` (disk_error).
    """
    path = Path(path)
    # The suffix is kept last: writers such as Keras's save_weights check the extension.
    temp = path.with_name(f".{path.stem}.partial-{os.getpid()}{''.join(path.suffixes)}")
    try:
        with disk_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield temp
            os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_files(folder: str | Path, name: str):
    """Yield a temporary folder inside `folder`; on success every file in it is moved into `folder`.

    Exists for a set of files that belong together (a submission and its report): the files are
    written under temporary names first, so a full disk or a kill leaves the previous set (or
    none), never half of a new one or a zero-byte file. Renames need no space.
    """
    folder = Path(folder)
    stage = folder / f".{name}.partial-{os.getpid()}"
    remove_stale_stages(folder, name)
    try:
        with disk_errors(folder / f"{name}.*"):
            stage.mkdir(parents=True, exist_ok=True)
            yield stage
            for file in sorted(stage.iterdir()):
                os.replace(file, folder / file.name)
    except KitError as err:  # a file of the set refused by atomic_path: name the set's folder, not the stage
        if getattr(err, "os_error", None) is None:
            raise
        raise disk_error(err.os_error, folder / f"{name}.*") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_stale_stages(folder: Path, name: str) -> None:
    """Remove the .NAME.partial-PID folders of processes no longer running (a SIGTERM or kill skips the cleanup)."""
    for stale in folder.glob(f".{glob.escape(name)}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if stale.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def check_writable(folder: str | Path) -> Path:
    """Make `folder` and write and remove a file in it; raise disk_error naming it when that is refused.

    Exists so a job that writes only at its end (src.submit) fails at its start, not after the work.
    """
    folder = Path(folder)
    probe = folder / f".write-check-{os.getpid()}"
    try:
        with disk_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return folder


def write_text(path: str | Path, text: str) -> Path:
    """Write text to `path` atomically; return the path."""
    with atomic_path(path) as temp:
        temp.write_text(text)
    return Path(path)


def write_json(path: str | Path, payload) -> Path:
    """Write `payload` as indented JSON atomically; return the path."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | Path, frame, **kwargs) -> Path:
    """Write a pandas frame as CSV atomically (index left out unless asked); return the path."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as temp:
        frame.to_csv(temp, **kwargs)
    return Path(path)


def read_json(path: Path, what: str):
    """Return a kit file's JSON; a damaged one (a kill, an editor) is a KitError naming it, not a JSONDecodeError."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise KitError(f"{path}: damaged, not valid JSON ({err}); it holds {what}: restore it from a copy, or "
                       "train the run again into another --out") from None


def read_user_csv(path: Path, **kwargs):
    """Return a CSV the user gave (a sample submission, a labels table) read by pandas with kwargs.

    Why: an empty file (0 bytes, a failed download) raised pandas' EmptyDataError, a broken one a ParserError or
    UnicodeDecodeError, far from the file's name; each is a KitError naming the file and what was expected.
    """
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise KitError(f"{path}: an empty file (no header, no rows): expected a CSV with a header line; download "
                       "or write it again") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise KitError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None


def read_log(path: Path):
    """Return a per-epoch CSV log as a frame, None when absent; an unreadable one raises KitError naming it.

    Read with float_precision="round_trip": Keras's CSVLogger writes each value's full repr, and pandas 2's
    default parser (Kaggle's image) can land one unit in the last place away from it, so an epoch read back
    on --resume would rank apart from an equal epoch scored live.
    """
    import pandas as pd

    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, float_precision="round_trip")
    except ValueError as err:  # pandas' parser and empty-file errors, undecodable bytes
        raise KitError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
