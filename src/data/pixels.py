"""Images stored as pixel columns of a CSV (Digit Recognizer: label,pixel0..pixel783; test.csv of pixels).

Each row becomes a square grey PNG (28x28 from 784 columns) in the kit's cache, written once per
CSV version (its size and time are in the folder name), so the rest of the pipeline reads image
files as usual.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError

CACHE_ROOT = Path("runs") / "pixels"
DONE = ".complete"


def pixel_columns(columns) -> list:
    """Return the columns named pixel<N> when there are a square number of them (64 or more), else []."""
    found = [c for c in columns if re.fullmatch(r"pixel\d+", str(c))]
    side = math.isqrt(len(found))
    return found if len(found) >= 64 and side * side == len(found) else []


def write_pixel_images(csv_path: Path, raw: pd.DataFrame, names: list, role: str) -> list:
    """Write one PNG per row of raw's pixel columns as <cache>/<role>/<name>.png; return the paths in row order."""
    columns = pixel_columns(raw.columns)
    side = math.isqrt(len(columns))
    stat = os.stat(csv_path)
    digest = hashlib.sha1(f"{Path(csv_path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    folder = CACHE_ROOT / f"{Path(csv_path).parent.name}-{digest}" / role
    paths = [folder / f"{name}.png" for name in names]
    if (folder / DONE).is_file():
        return [str(p) for p in paths]
    from PIL import Image

    values = raw[columns].apply(pd.to_numeric, errors="coerce").to_numpy()
    if np.isnan(values).any() or values.min() < 0 or values.max() > 255:
        row = int(np.argmax(np.isnan(values).any(axis=1) | (values < 0).any(axis=1) | (values > 255).any(axis=1)))
        raise KitError(f"{csv_path}: row {row + 2} holds a pixel value that is not a number from 0 to 255")
    folder.mkdir(parents=True, exist_ok=True)
    pixels = values.astype(np.uint8).reshape(len(values), side, side)
    for path, image in zip(paths, pixels):
        Image.fromarray(image, "L").save(path)
    (folder / DONE).write_text(f"{len(paths)} images from {csv_path}\n")
    print(f"pixels: {len(paths)} {side}x{side} images from {csv_path} in {folder}")
    return [str(p) for p in paths]
