"""What a segmentation stage trains on: a U-Net on the run's backbone, images and masks at the stage's size.

    model = unet_network(cfg, spec, (32, 32), class_map, "none", train_backbone=True)
    train, val = mask_datasets(cfg, data, opts, fixed_batches, multiple)    # (image, mask) batches
    images, masks = stage_arrays(frame, table, size)                        # uint8, at the U-Net's size

Each image is resized to the stage's size (bilinear, PIL) and its mask with nearest (src.kinds.segmentation.tiles),
so a mask stays 0/1; the U-Net's size is the stage's rounded up to a multiple of its deepest stride (unet_size,
said once by the kind). Images and masks are held in memory at that size (uint8), read once per size: training
draws them shuffled, flipped together (left-right with --flip, up-down, and with --augment strong transposed
when square), so a flipped image never meets an unflipped mask. --augment none: no flips.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from src.kinds.segmentation.reading import mask_table
from src.kinds.segmentation.tiles import resize
from src.kinds.segmentation.unet import build_unet, size_multiple

ARRAYS: dict = {}  # (data folder, ids, size) -> (images, masks): a stage's arrays, read once per size
KEPT = 4  # sizes of arrays kept (stage 1, stage 2, the holdout's, the test's)


def unet_size(spec, size) -> tuple:
    """Return the U-Net's (height, width) for a stage's size on a backbone (a spec or a registry name): each side
    rounded up to a multiple of the deepest stride."""
    multiple = size_multiple(spec)
    return tuple(max(multiple, -(-int(side) // multiple) * multiple) for side in size)


def unet_network(cfg, spec, size, class_map, weights: str, train_backbone: bool):
    """Return the U-Net (one sigmoid channel per class) at the stage's size, its encoder frozen unless it trains."""
    model = build_unet(spec, classes=len(class_map.values), input_shape=(*unet_size(spec, size), 3), weights=weights,
                       name=f"{spec.layer_name}_unet")
    model.get_layer(spec.layer_name).trainable = train_backbone
    return model


def load_image(path, size) -> np.ndarray:
    """Return an image file as (height, width, 3) uint8 RGB at size (height, width), bilinear."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if rgb.size != (size[1], size[0]):
            rgb = rgb.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        return np.asarray(rgb, np.uint8)


def stage_arrays(frame: pd.DataFrame, table, size, masks: bool = True) -> tuple:
    """Return (images (n, h, w, 3) uint8, masks (n, h, w, classes) uint8 or None) of the frame's rows at `size`."""
    ids = tuple(frame["id"].astype(str))
    key = (str(table.source), ids, tuple(size), masks)
    if key not in ARRAYS:
        images = np.stack([load_image(path, size) for path in frame["path"]]) if ids else \
            np.zeros((0, *size, 3), np.uint8)
        found = np.stack([resize(table.mask(i), size, "nearest") for i in ids]) if ids and masks else None
        while len(ARRAYS) >= KEPT:
            ARRAYS.pop(next(iter(ARRAYS)))
        ARRAYS[key] = (images, found)
    return ARRAYS[key]


def flips(cfg):
    """Return the augmentation of an (image, mask) pair: both flipped (and transposed) together, as the flags say."""
    augment = getattr(cfg, "augment", "light")

    def apply(image, mask):
        image, mask = tf.cast(image, tf.float32), tf.cast(mask, tf.float32)
        if augment == "none":
            return image, mask
        channels = tf.shape(image)[-1]
        both = tf.concat([image, mask], axis=-1)
        if getattr(cfg, "flip", True):
            both = tf.image.random_flip_left_right(both)
        both = tf.image.random_flip_up_down(both)
        if augment == "strong" and both.shape[0] is not None and both.shape[0] == both.shape[1]:
            both = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.transpose(both, [1, 0, 2]), lambda: both)
        return both[..., :channels], both[..., channels:]

    return apply


def mask_datasets(cfg, data, opts, fixed_batches: bool, multiple: int):
    """Return (training, validation) datasets of (image float32 in [0, 255], mask float32 0/1) at the U-Net's size."""
    table, size = mask_table(data.comp.root), unet_size(cfg.backbone, opts.image_size)
    images, masks = stage_arrays(data.train, table, size)
    batch = opts.batch_size
    train = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(
        max(len(images), 1), seed=cfg.seed, reshuffle_each_iteration=True).map(
        flips(cfg), num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=fixed_batches and
                                                                len(images) >= batch).prefetch(tf.data.AUTOTUNE)
    if not len(data.val):
        return train, None  # a full-fit has no holdout
    val_images, val_masks = stage_arrays(data.val, table, size)
    val = tf.data.Dataset.from_tensor_slices((val_images, val_masks)).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.float32))).batch(batch).prefetch(tf.data.AUTOTUNE)
    return train, val

