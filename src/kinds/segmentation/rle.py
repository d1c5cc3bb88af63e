"""Run-length strings to and from 2-D uint8 masks, as Kaggle's segmentation competitions write them.

    mask = decode("3 2 9 1", (4, 3))            # column-major: pixels top to bottom, then left to right
    text = encode(mask)                          # "3 2 9 1"; an empty mask gives ""
    decode(text, (4, 3), order="row")            # row-major (Carvana, UW-Madison): left to right, then down

A string is pairs "start length", starts 1-indexed. Column-major is the default because most
competitions define it so (Severstal, Airbus, HuBMAP); the two orders read the same numbers as different
pixels, so a mask decoded in the wrong one is silently transposed garbage: the caller names the order.
"", NaN, None and "-1" mean an empty mask. A malformed string is one KitError naming where it came from
(the file and row, from the caller) and what was expected: an odd count of numbers, a token that is not a
whole number, a start below 1 or a length below 1, a run that leaves the image, runs out of order or
overlapping (they are refused rather than merged: they mean the string was made with another order or
another image size, and a merge would hide that).
"""
from __future__ import annotations

import math

import numpy as np

from src.core.errors import KitError

ORDERS = {"column": "F", "row": "C"}  # numpy's names for column-major (Fortran) and row-major (C)
EMPTY_TEXTS = ("", "-1", "nan", "none")


def is_empty(text) -> bool:
    """Return True when a cell means "no mask": None, NaN, an empty or blank string, "-1"."""
    if text is None or isinstance(text, float) and math.isnan(text):
        return True
    return str(text).strip().lower() in EMPTY_TEXTS


def numpy_order(order: str) -> str:
    """Return numpy's flattening order ("F" or "C") for "column" or "row"; another name is a KitError."""
    if order not in ORDERS:
        raise KitError(f"run-length order {order!r}: expected column (top to bottom, then left to right) or row "
                       "(left to right, then top to bottom)")
    return ORDERS[order]


def parse_runs(text, pixels: int, where: str = "run-length string") -> tuple[np.ndarray, np.ndarray]:
    """Return (starts, lengths) as 0-indexed int64 arrays, checked against an image of `pixels` pixels.

    Why checked here: a wrong image size or order shows first as a run past the end or runs out of order,
    and the message can then say which file and row to look at.
    """
    if is_empty(text):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tokens = str(text).split()
    if len(tokens) % 2:
        raise KitError(f"{where}: {len(tokens)} numbers in the run-length string: expected pairs of start and "
                       "length (an even count)")
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
    if bad is not None:
        raise KitError(f"{where}: run-length token {bad!r} is not a whole number: expected \"start length\" pairs "
                       "of positive integers separated by spaces")
    numbers = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = numbers[:, 0] - 1, numbers[:, 1]
    check_runs(starts, lengths, pixels, where)
    return starts, lengths


def check_runs(starts: np.ndarray, lengths: np.ndarray, pixels: int, where: str) -> None:
    """Raise a KitError naming the first run that starts below 1, is empty, leaves the image or overlaps."""
    for index in np.flatnonzero((starts < 0) | (lengths < 1))[:1]:
        raise KitError(f"{where}: run {index + 1} is \"{starts[index] + 1} {lengths[index]}\": expected a start of "
                       "at least 1 (starts are 1-indexed) and a length of at least 1")
    ends = starts + lengths
    for index in np.flatnonzero(ends > pixels)[:1]:
        raise KitError(f"{where}: run {index + 1} (\"{starts[index] + 1} {lengths[index]}\") ends at pixel "
                       f"{ends[index]}, past the image's {pixels} pixels: the image size or the order (column- or "
                       "row-major) is not the one the string was made for")
    for index in np.flatnonzero(starts[1:] < ends[:-1])[:1]:
        raise KitError(f"{where}: run {index + 2} starts at pixel {starts[index + 1] + 1}, not after run {index + 1} "
                       f"(pixels {starts[index] + 1}-{ends[index]}): expected runs in increasing order, not overlapping")


def decode(text, shape, order: str = "column", where: str = "run-length string") -> np.ndarray:
    """Return the (height, width) uint8 mask, 1 inside the runs, that `text` describes in `order`.

    The runs are painted by a cumulative sum of +1 at each start and -1 at each end (no Python loop over
    runs: HuBMAP's strings hold tens of thousands of them); checked runs never share a start or an end.
    """
    height, width = (int(side) for side in shape)
    starts, lengths = parse_runs(text, height * width, where)
    edges = np.zeros(height * width + 1, np.int8)
    edges[starts] += 1
    edges[starts + lengths] -= 1
    flat = np.cumsum(edges[:-1], dtype=np.int8).astype(np.uint8)
    return flat.reshape((height, width), order=numpy_order(order))


def encode(mask, order: str = "column") -> str:
    """Return the run-length string of a 2-D mask (any nonzero pixel is inside) in `order`; "" when empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise KitError(f"run-length encoding: expected a 2-D (height, width) mask, got shape {mask.shape}")
    flat = (mask.reshape(-1, order=numpy_order(order)) != 0).astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]]))) + 1  # 1-indexed starts and ends
    runs = changes.reshape(-1, 2)
    runs[:, 1] -= runs[:, 0]
    return " ".join(map(str, runs.ravel().tolist()))
