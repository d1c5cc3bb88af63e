"""One image's pixels: decoded from its file's bytes, turned upright, resized to the network's size, sharpened.

    image = decode(data, scale_index)        # uint8 RGB: JPEG (at 1/2, 1/4, 1/8 scale), PNG, BMP, GIF, still WebP
    image = resize(orient(image, orientation), (224, 224), "pad")

The graph ops tf.data maps over every image (src.pipeline.images builds the datasets around them).
"""
from __future__ import annotations

import tensorflow as tf

JPEG_SCALES = (1, 2, 4, 8)


def decode(data: tf.Tensor, scale_index: tf.Tensor | None = None) -> tf.Tensor:
    """Return an image file's bytes decoded to uint8 RGB (greyscale, CMYK, RGBA and palettes converted).

    scale_index (from the file's name and size) is obeyed for JPEG bytes only: a WebP or PNG named .jpg decoded at
    a JPEG scale gave tf.data a wrongly shaped image and training a "Graph execution error".
    """
    branches = [lambda: tf.cond(is_webp(data), lambda: decode_webp(data),
                                lambda: tf.io.decode_image(data, channels=3, expand_animations=False))]
    branches += [lambda s=s: tf.io.decode_jpeg(data, channels=3, ratio=s) for s in JPEG_SCALES[1:]]
    image = branches[0]() if scale_index is None else tf.switch_case(
        tf.where(is_jpeg(data), scale_index, tf.zeros_like(scale_index)), branches)
    image.set_shape([None, None, 3])
    return image


def is_jpeg(data: tf.Tensor) -> tf.Tensor:
    """Return True for JPEG bytes (they start with the SOI marker FF D8), whatever the file's name says."""
    return tf.strings.substr(data, 0, 2) == b"\xff\xd8"


def is_webp(data: tf.Tensor) -> tf.Tensor:
    """Return True for WebP bytes (RIFF....WEBP); shorter inputs are not WebP."""
    return tf.cond(tf.strings.length(data) >= 12, lambda: tf.strings.substr(data, 8, 4) == "WEBP",
                   lambda: tf.constant(False))


def decode_webp(data: tf.Tensor) -> tf.Tensor:
    """Return a still WebP decoded to RGB: TensorFlow decodes one with transparency only as RGBA (alpha dropped,
    as decode_png drops a PNG's), and refuses channels=3 for it."""
    return tf.io.decode_image(data, channels=0, expand_animations=False)[:, :, :3]


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Return the image turned upright per its EXIF orientation (1-8), as PIL's exif_transpose does."""
    transpose = lambda img: tf.transpose(img, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,                                       # 1: upright
        lambda: image[:, ::-1],                              # 2: mirrored
        lambda: image[::-1, ::-1],                           # 3: upside down
        lambda: image[::-1],                                 # 4: mirrored upside down
        lambda: transpose(image),                            # 5: transposed
        lambda: tf.image.rot90(image, k=3),                  # 6: turn 90 degrees clockwise
        lambda: tf.image.rot90(transpose(image), k=2),       # 7: transversed
        lambda: tf.image.rot90(image, k=1),                  # 8: turn 90 degrees anticlockwise
    ]
    return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), branches)


def resize(image: tf.Tensor, size, mode: str) -> tf.Tensor:
    """Return a float image of exactly `size` (height, width) by stretch, pad, crop or longest."""
    height, width = size
    if mode == "stretch":
        image = scale_to(image, tf.constant([height, width]))
        image.set_shape([height, width, 3])  # static shapes let XLA compile the augmentation once
        return image
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    fit = tf.minimum(height / shape[0], width / shape[1])
    scale = {"pad": fit, "longest": tf.minimum(fit, 1.0),
             "crop": tf.maximum(height / shape[0], width / shape[1])}[mode]
    new_size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    if mode == "crop":
        new_size = tf.maximum(new_size, [height, width])
    image = scale_to(image, new_size)
    # Centred: pads with black on two sides ("pad", "longest") or crops the middle ("crop").
    image = tf.image.resize_with_crop_or_pad(image, height, width)
    image.set_shape([height, width, 3])
    return image


def scale_to(image: tf.Tensor, new_size: tf.Tensor) -> tf.Tensor:
    """Return the float image resized to new_size: box-filtered first when shrinking 3x or more.

    Below 3x, bilinear's 2x2 footprint still touches most source pixels (the TF and Keras
    default, no antialiasing). From 3x it would skip rows and alias, so k x k blocks are
    averaged first (k = whole part of the factor). The box pass costs ~40% of decode time,
    and tf.image.resize(antialias=True) ~55%, which is why neither runs on every image.
    """
    new_size = tf.cast(new_size, tf.int32)
    factors = tf.shape(image)[:2] // new_size
    factors = tf.where(factors >= 3, factors, 1)
    image = tf.cond(tf.reduce_any(factors > 1), lambda: box_shrink(image, factors[0], factors[1]),
                    lambda: image)
    return tf.image.resize(image, new_size)


def box_shrink(image: tf.Tensor, kh: tf.Tensor, kw: tf.Tensor) -> tf.Tensor:
    """Return the mean of each kh x kw block (the few rows/columns past the last whole block are dropped)."""
    height, width = tf.shape(image)[0] // kh, tf.shape(image)[1] // kw
    blocks = tf.reshape(image[: height * kh, : width * kw], [height, kh, width, kw, -1])
    return tf.reduce_mean(blocks, axis=[1, 3])


def unsharp_mask(image: tf.Tensor, amount: float) -> tf.Tensor:
    """Return image + amount * (image - gaussian blur): the CIFAR-100 reference's sharpening."""
    taps = tf.constant([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    kernel = (taps[:, None] * taps[None, :])[:, :, None, None] * tf.ones([1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]
    return tf.clip_by_value(image + amount * (image - blurred), 0.0, 255.0)
