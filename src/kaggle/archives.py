"""Unpacking a downloaded competition archive: every safe entry, none outside the target folder.

    counts = unpack(Path("data/x/x.zip"), Path("data/x"))   # {"written": n, "kept": n, "refused": [names]}

Kept apart from src.kaggle.client because it needs no Kaggle client: tests give it archives they make.
"""
from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path


def unpack(archive: Path, dest: Path) -> dict:
    """Extract every safe entry of a zip into dest; return counts and the refused entries.

    zipfile.extract would rewrite '../evil.txt' to 'evil.txt' silently: here such an entry is
    refused by name, so a hostile archive is noticed, and the rest still unpacks.
    """
    root = dest.resolve()
    written, kept, refused = 0, 0, []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if info.filename.startswith(("/", "\\")) or not target.is_relative_to(root):
                refused.append(info.filename)
                print(f"refused archive entry {info.filename!r}: it would land outside {dest}", file=sys.stderr)
                continue
            if info.is_dir() or target == root:  # "./" is the folder itself, not an escape
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                if write_entry(zf, info, target):
                    written += 1
                else:
                    kept += 1
            except OSError as err:  # a name too long for this file system, a full disk: say which, go on
                refused.append(info.filename)
                print(f"could not write archive entry {info.filename[:80]!r}: {err.strerror}", file=sys.stderr)
    return {"written": written, "kept": kept, "refused": refused}


def write_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> bool:
    """Write one archive entry to target; return False when an identical-size file was already there."""
    if target.is_file() and target.stat().st_size == info.file_size:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return True
