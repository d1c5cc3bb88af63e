"""Large images predicted in overlapping tiles and stitched back; sizes restored; TTA views made and undone.

    probs = predict_tiled(lambda x: model.predict(x, verbose=0), image, tile=512, overlap=128)   # (H, W, C)
    probs = resize(probs, (height, width))                      # probabilities: linear, half-pixel centres
    mask = resize(small_mask, (height, width), "nearest")       # masks: nearest, never a blend of labels
    probs = predict_views(predict, images, ("identity", "hflip", "rot90"))   # each view undone, then averaged

Stitching blends the tiles with a weight window: 1 inside a tile, falling linearly to 0 across the middle
half of the overlap at each side shared with another tile, 0 in the overlap's outer quarter (a side on the
image's border keeps weight 1). The weights of two neighbours sum to 1 in the ramp, so a seam is a smooth
mix, and a pixel in a tile's outer quarter of the overlap takes nothing from that tile: for a fully
convolutional model whose receptive field reaches at most overlap // 4 pixels the stitched prediction equals
the whole image's (a U-Net with pooling also needs tile starts on its stride, which the last, flush tile
may break; its seams are then only smooth).
"""
from __future__ import annotations

import numpy as np

from src.core.errors import KitError


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Return the starts of tiles of side `tile` covering `length`, `overlap` apart, the last flush with the end."""
    if tile < 1 or not 0 <= overlap < tile:
        raise KitError(f"tiles: tile {tile}, overlap {overlap}: expected a tile of at least 1 pixel and an overlap "
                       "from 0 to less than the tile")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def ramp(tile: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """Return a tile's weights along one axis; lead / trail: that end is shared with a neighbouring tile."""
    weights = np.ones(tile, np.float32)
    margin, width = overlap // 4, overlap - 2 * (overlap // 4)
    if width == 0:
        return weights
    rising = np.clip((np.arange(tile) - margin + 0.5) / width, 0.0, 1.0).astype(np.float32)
    if lead:
        weights = np.minimum(weights, rising)
    if trail:
        weights = np.minimum(weights, rising[::-1])
    return weights


def tile_window(top: int, left: int, size: tuple, shape: tuple, overlap: int) -> np.ndarray:
    """Return the (tile_h, tile_w, 1) weights of the tile at (top, left) of `size` in an image of `shape`."""
    (tile_h, tile_w), (height, width) = size, shape
    rows = ramp(tile_h, overlap, top > 0, top + tile_h < height)
    cols = ramp(tile_w, overlap, left > 0, left + tile_w < width)
    return (rows[:, None] * cols[None, :])[..., None]


def pad_to_multiple(image: np.ndarray, multiple: int, least: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Return (the image padded at the bottom and right to sides that are multiples of `multiple`, at least
    `least`, by reflection; its original (height, width)) so a U-Net can take any image and be cropped back."""
    height, width = image.shape[:2]
    target = [max(least, -(-side // multiple) * multiple) for side in (height, width)]
    pad = [(0, target[0] - height), (0, target[1] - width)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="symmetric"), (height, width)


def predict_tiled(predict, image: np.ndarray, tile: int, overlap: int, batch_size: int = 8) -> np.ndarray:
    """Return the (H, W, C) float32 probabilities of one (H, W, 3) image, predicted tile by tile and blended.

    predict: (n, tile, tile, 3) float32 -> (n, tile, tile, C). An image smaller than a tile is padded to it
    (reflection) and the answer cropped back.
    """
    padded, (height, width) = pad_to_multiple(np.asarray(image, np.float32), 1, least=tile)
    shape = padded.shape[:2]
    corners = [(top, left) for top in tile_starts(shape[0], tile, overlap)
               for left in tile_starts(shape[1], tile, overlap)]
    total, weight = None, np.zeros((*shape, 1), np.float32)
    for first in range(0, len(corners), batch_size):
        batch = corners[first:first + batch_size]
        answers = np.asarray(predict(np.stack([padded[t:t + tile, l:l + tile] for t, l in batch])), np.float32)
        if total is None:
            total = np.zeros((*shape, answers.shape[-1]), np.float32)
        for (top, left), answer in zip(batch, answers):
            window = tile_window(top, left, (tile, tile), shape, overlap)
            total[top:top + tile, left:left + tile] += answer * window
            weight[top:top + tile, left:left + tile] += window
    return (total / np.maximum(weight, 1e-12))[:height, :width]


def source_positions(size_in: int, size_out: int) -> np.ndarray:
    """Return where each output pixel's centre falls in the input, in input pixels (half-pixel centres)."""
    return (np.arange(size_out) + 0.5) * size_in / size_out - 0.5


def resize_axis(array: np.ndarray, size: int, axis: int, method: str) -> np.ndarray:
    """Return the array resized along one axis: nearest, or linear between the two nearest pixel centres."""
    size_in = array.shape[axis]
    position = source_positions(size_in, size)
    if method == "nearest":
        return np.take(array, np.clip(np.floor(position + 0.5), 0, size_in - 1).astype(np.int64), axis=axis)
    low = np.clip(np.floor(position), 0, size_in - 1).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    fraction = np.clip(position - low, 0.0, 1.0).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = size
    fraction = fraction.reshape(shape)
    return np.take(array, low, axis=axis) * (1 - fraction) + np.take(array, high, axis=axis) * fraction


def resize(array: np.ndarray, size, method: str = "linear") -> np.ndarray:
    """Return an (H, W, ...) array resized to size = (height, width): linear for probabilities, nearest for masks.

    Half-pixel centres, as tf.image.resize and OpenCV: a mask shrunk by a whole factor with nearest and
    grown back with nearest is the same mask when its regions are whole blocks of that factor.
    """
    if method not in ("linear", "nearest"):
        raise KitError(f"resize: method {method!r}: expected linear (probabilities) or nearest (masks)")
    array = np.asarray(array)
    dtype = array.dtype if method == "nearest" else np.float32
    for axis, side in enumerate(size):
        if array.shape[axis] != side:
            array = resize_axis(array if method == "nearest" else array.astype(np.float32), int(side), axis,
                                method)
    return array.astype(dtype)


# name -> (made on (..., H, W, C), undone on (..., H, W, C)): the classifier's dihedral TTA views, by the same
# names in the same order (src.core.submit_settings.DIHEDRAL_VIEWS); quarter turns counter-clockwise, as
# np.rot90 and tf.image.rot90.
VIEWS = {
    "identity": (lambda x: x, lambda x: x),
    "hflip": (lambda x: np.flip(x, -2), lambda x: np.flip(x, -2)),
    "vflip": (lambda x: np.flip(x, -3), lambda x: np.flip(x, -3)),
    "rot90": (lambda x: np.rot90(x, 1, (-3, -2)), lambda x: np.rot90(x, -1, (-3, -2))),
    "rot180": (lambda x: np.rot90(x, 2, (-3, -2)), lambda x: np.rot90(x, 2, (-3, -2))),
    "rot270": (lambda x: np.rot90(x, 3, (-3, -2)), lambda x: np.rot90(x, -3, (-3, -2))),
    "transpose": (lambda x: np.swapaxes(x, -3, -2), lambda x: np.swapaxes(x, -3, -2)),
    "transpose_rot90": (lambda x: np.swapaxes(np.flip(x, (-3, -2)), -3, -2),
                        lambda x: np.flip(np.swapaxes(x, -3, -2), (-3, -2))),
}


def make_view(images: np.ndarray, name: str) -> np.ndarray:
    """Return the view `name` of (..., H, W, C) images (src.inference.views' dihedral names)."""
    return np.ascontiguousarray(VIEWS[check_view(name)][0](images))


def undo_view(masks: np.ndarray, name: str) -> np.ndarray:
    """Return (..., H, W, C) predictions made on view `name` turned back onto the original image."""
    return np.ascontiguousarray(VIEWS[check_view(name)][1](masks))


def check_view(name: str) -> str:
    """Return the view name, or raise a KitError listing the views a mask can be turned back from."""
    if name not in VIEWS:
        raise KitError(f"segmentation TTA view {name!r}: expected one of {', '.join(VIEWS)} (a crop or a zoom "
                       "cannot be undone on a mask pixel for pixel)")
    return name


def predict_views(predict, images: np.ndarray, views=("identity",)) -> np.ndarray:
    """Return the mean over views of predict(view of the images), each turned back: (N, H, W, C) probabilities."""
    total = None
    for name in views:
        answer = undo_view(np.asarray(predict(make_view(images, name)), np.float32), name)
        total = answer if total is None else total + answer
    return total / len(views)
