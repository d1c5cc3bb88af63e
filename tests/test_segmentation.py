"""The segmentation kind's foundations (src.kinds.segmentation) on tiny generated masks and images."""
from __future__ import annotations


import numpy as np
import pytest

from src.core.errors import KitError
from src.kinds.segmentation import rle


def random_masks(count: int, shape, seed: int = 0) -> list:
    """Return `count` random blobby 0/1 masks of `shape` (the first empty, the second full)."""
    rng = np.random.default_rng(seed)
    masks = [np.zeros(shape, np.uint8), np.ones(shape, np.uint8)]
    while len(masks) < count:
        masks.append((rng.random(shape) < rng.uniform(0.1, 0.6)).astype(np.uint8))
    return masks[:count]


# --- run-length strings ---

def test_decode_by_hand_in_both_orders():
    """"3 2 9 1" on 4x3: column-major runs down the columns, row-major along the rows."""
    assert rle.decode("3 2 9 1", (4, 3)).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert rle.decode("3 2 9 1", (4, 3), "row").tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("order", ["column", "row"])
def test_round_trip_in_both_orders(order):
    for mask in random_masks(6, (7, 5)):
        text = rle.encode(mask, order)
        assert np.array_equal(rle.decode(text, mask.shape, order), mask)
    assert rle.encode(np.ones((2, 3)), order) == "1 6"


@pytest.mark.parametrize("empty", ["", "  ", "-1", None, float("nan")])
def test_empty_cells_are_empty_masks(empty):
    assert rle.decode(empty, (3, 4)).sum() == 0 and rle.decode(empty, (3, 4)).shape == (3, 4)
    assert rle.encode(np.zeros((3, 4), np.uint8)) == ""


@pytest.mark.parametrize("text, expected", [
    ("1 2 3", "3 numbers in the run-length string: expected pairs"),
    ("1 2 x 1", "run-length token 'x' is not a whole number"),
    ("1 2.5", "run-length token '2.5' is not a whole number"),
    ("0 2", r'run 1 is "0 2": expected a start of at least 1 \(starts are 1-indexed\)'),
    ("4 0", r'run 1 is "4 0": expected a start of at least 1 .* and a length of at least 1'),
    ("11 3", r'run 1 \("11 3"\) ends at pixel 13, past the image\'s 12 pixels'),
    ("5 2 6 1", r"run 2 starts at pixel 6, not after run 1 \(pixels 5-6\): expected runs in increasing order"),
    ("8 1 2 1", r"run 2 starts at pixel 2, not after run 1 \(pixels 8-8\)"),
])
def test_bad_strings_name_where_and_what(text, expected):
    with pytest.raises(KitError, match=r"^train.csv: row 7 \(id 'a'\): " + expected):
        rle.decode(text, (4, 3), where="train.csv: row 7 (id 'a')")


def test_an_unknown_order_is_refused():
    with pytest.raises(KitError, match="order 'fortran': expected column .* or row"):
        rle.encode(np.ones((2, 2)), "fortran")
