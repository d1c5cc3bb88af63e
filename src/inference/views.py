"""Test-time augmentation views: made by name from a decoded batch, in the input pipeline (TensorFlow ops).

    make_view(images, "rot90")                         # (n, h, w, 3) -> (n, w, h, 3), np.rot90 per image
    with_scales(("identity", "hflip"), "1.0,1.15")     # identity, hflip, identity@1.15, hflip@1.15

The dihedral views are the eight symmetries of a square: identity, hflip, vflip, rot90, rot180,
rot270 (counter-clockwise quarter turns, as np.rot90), transpose (across the main diagonal) and
transpose_rot90 (across the other diagonal: the transpose of the image turned by 180 degrees; a
quarter turn of the transpose would only repeat vflip). A quarter turn or transpose of a non-square
image swaps its sides: prediction runs those views through the run's network built at the swapped
size (a pooled network's weights do not depend on it), never stretched back. A view named NAME@S
is NAME made from the image resized to S times the run's size (FixRes: a network predicts a little
better somewhat larger than it trained).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from src.core.errors import KitError
from src.core.submit_settings import view_problem

SIDE_SWAPPING = ("rot90", "rot270", "transpose", "transpose_rot90")


def split_scale(name: str) -> tuple[str, float]:
    """Return (view, scale) of a view name: hflip@1.15 -> (hflip, 1.15); hflip -> (hflip, 1.0)."""
    view, _, scale = name.partition("@")
    return view, float(scale) if scale else 1.0


def with_scales(views, scales: str) -> tuple:
    """Return every view at every --tta-scales scale, in scale order; the scale 1 keeps the plain names."""
    values = [float(s) for s in scales.split(",") if s.strip()]
    return tuple(dict.fromkeys(f"{v}@{s:g}" if s != 1 else v for s in values for v in views))


def scaled_size(size, scale: float) -> tuple[int, int]:
    """Return a run's (height, width) times scale, rounded to whole pixels."""
    return tuple(max(1, round(side * scale)) for side in size)


def view_size(name: str, size) -> tuple[int, int]:
    """Return the (height, width) a view of an image of `size` has: the sides swap for quarter turns."""
    height, width = size
    return (width, height) if split_scale(name)[0] in SIDE_SWAPPING else (height, width)


def check_views(views) -> None:
    """Raise naming the first view the kit cannot make (before any image is decoded)."""
    for name in views:
        problem = view_problem(name)
        if problem:
            raise KitError(f"--tta-views: expected {problem}")


def make_view(images, name: str):
    """Return a batch view by name (float images in [0, 255]); the @S suffix is the caller's (the size decoded)."""
    name = split_scale(name)[0]
    check_views([name])
    turns = {"identity": lambda x: x, "hflip": lambda x: x[:, :, ::-1], "vflip": lambda x: x[:, ::-1],
             "rot90": lambda x: tf.image.rot90(x, 1), "rot180": lambda x: tf.image.rot90(x, 2),
             "rot270": lambda x: tf.image.rot90(x, 3), "transpose": lambda x: tf.transpose(x, [0, 2, 1, 3]),
             "transpose_rot90": lambda x: tf.transpose(x[:, ::-1, ::-1], [0, 2, 1, 3])}
    if name in turns:
        return turns[name](images)
    kind, _, percent = name.rpartition("_")
    keep = int(percent) / 100 if kind == "center_crop" else 100 / int(percent)
    size = tf.shape(images)[1:3]
    if keep >= 1:  # a zoom out: shrink, then pad back to size
        shrunk = tf.image.resize(images, tf.cast(tf.cast(size, tf.float32) / keep, tf.int32))
        return tf.image.resize_with_crop_or_pad(shrunk, size[0], size[1])
    return tf.image.resize(tf.image.central_crop(images, keep), size)


def combine_views(per_view: np.ndarray, mean: str = "arithmetic") -> np.ndarray:
    """Return the views' arithmetic mean, or their geometric mean renormalised to sum to 1."""
    if mean == "arithmetic":
        return per_view.mean(axis=0)
    if mean != "geometric":
        raise KitError(f"--tta-mean {mean}: expected arithmetic or geometric")
    log_mean = np.log(np.clip(per_view, 1e-7, 1.0)).mean(axis=0)
    probs = np.exp(log_mean)
    return probs / probs.sum(axis=1, keepdims=True)
