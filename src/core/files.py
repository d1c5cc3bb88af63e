"""Writing files so that a kill never leaves half of one: write a temporary name, then rename.

Every file the kit writes that a later job reads back (config.json, state.json, split.csv,
weights, tables) goes through here or through the same temporary-name-and-rename pattern.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The suffix is kept last: writers such as Keras's save_weights check the extension.
    temp = path.with_name(f".{path.stem}.partial-{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


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
