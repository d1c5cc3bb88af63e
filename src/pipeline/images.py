"""tf.data builders for training, evaluation and prediction.

    train_ds = make_train_dataset(frame, labels, opts)       # shuffled, augmented, batched
    val_ds = make_eval_dataset(frame, labels, opts)          # fixed order, every image
    test_ds = make_predict_dataset(frame, opts)              # (images, ids), fixed order

`frame` holds path, width, height and orientation per image (competition.py fills them from
the file headers). Images come out float32 in [0, 255]: the backbone's own preprocessing
belongs to the model (BackboneSpec), never to the pipeline.

Speed, on few CPU cores (Kaggle GPU kernels): JPEGs much larger than the target size are
decoded at 1/2, 1/4 or 1/8 scale inside libjpeg (the decoder skips the work; the width and
height from the headers say which scale still covers the target); `--cache memory|disk` keeps
the decoded, resized uint8 images after the first epoch so later epochs skip decoding.
Every dataset made here runs with tf.data's autotuning model off (fixed_tuning): deleting an
iterator waits for that model's thread, and Keras deletes one at the end of every epoch.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from src.pipeline.augment import make_augmenter, mix_batch
from src.pipeline.sampling import draw_by_class, row_repeats
from src.core.config import PipelineOptions
from src.data.sources import content_key, image_source

AUTOTUNE = tf.data.AUTOTUNE
JPEG_SCALES = (1, 2, 4, 8)
SHUFFLE_BUFFER = 4096  # after a cache: the cached order is already shuffled once, this adds per-epoch mixing
CACHE_ROOT = Path("runs") / "cache"


def make_train_dataset(frame: pd.DataFrame, labels, opts: PipelineOptions, seed: int = 42,
                       num_classes: int | None = None, drop_remainder: bool = False, sampling: str = "natural",
                       classes=None) -> tf.data.Dataset:
    """Return a dataset of (float32 images, labels) batches: shuffled every epoch, augmented, prefetched.

    With MixUp or CutMix the labels come out one-hot (num_classes needed), for a categorical loss.
    sampling balanced / sqrt draws images by class (`classes`: each row's class index; see draw_by_class).
    """
    n = len(frame)
    parts = (image_inputs(frame, opts), tf.data.Dataset.from_tensor_slices(labels))
    if sampling != "natural":  # a third element per row: how many copies an epoch draws, on average
        parts += (tf.data.Dataset.from_tensor_slices(row_repeats(classes, sampling)),)
    ds = tf.data.Dataset.zip(parts)
    buffer = image_source(frame).shuffle_buffer()
    if opts.cache == "none":
        ds = draw_by_class(ds, seed).shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda x, y: (load_image(x, opts, as_uint8=False), y), num_parallel_calls=AUTOTUNE,
                    deterministic=False)
    else:
        # Shuffled once before caching, so the small per-epoch buffer below still mixes classes.
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(lambda x, y, *repeats: (load_image(x, opts), y, *repeats), num_parallel_calls=AUTOTUNE)
        # a disk cache of rows with repeat counts is another file than one without
        ds = apply_cache(ds, frame, opts, f"train-seed{seed}" + ("" if sampling == "natural" else f"-{sampling}"))
        ds = draw_by_class(ds, seed)  # after the cache: every epoch reads it whole, so the cache completes
        ds = ds.shuffle(min(n, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    augment = make_augmenter(opts.augment, opts.augment_backend, opts.flip)
    ds = ds.map(lambda x, y: (augment(tf.cast(x, tf.float32)), y),
                num_parallel_calls=AUTOTUNE, deterministic=False)
    # No num_parallel_calls on batch: on 2 cores it took threads from decoding (386 vs 624 images/s).
    ds = ds.batch(opts.batch_size, drop_remainder=drop_remainder)
    if opts.mixup > 0 or opts.cutmix > 0:
        if not num_classes:
            raise ValueError("MixUp/CutMix need num_classes for one-hot labels")
        ds = ds.map(lambda x, y: mix_batch(x, y if y.shape.rank == 2 else tf.one_hot(y, num_classes), opts.mixup,
                                           opts.cutmix), num_parallel_calls=AUTOTUNE)  # rank 2: multi-label rows
    return fixed_tuning(ds.prefetch(AUTOTUNE))


def make_eval_dataset(frame: pd.DataFrame, labels, opts: PipelineOptions, multiple: int = 1,
                      weights: bool = False) -> tf.data.Dataset:
    """Return (float32 images, labels) batches in frame order, every image kept (no dropped remainder).

    multiple > 1 (JAX data parallelism): batches are a multiple of the devices and the last one is
    padded (batch_for_devices); weights adds 1 / 0 per row.
    """
    ds = tf.data.Dataset.zip((image_inputs(frame, opts), tf.data.Dataset.from_tensor_slices(labels)))
    ds = ds.map(lambda x, y: (load_image(x, opts), y), num_parallel_calls=AUTOTUNE)
    ds = apply_cache(ds, frame, opts, "eval")
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    return fixed_tuning(batch_for_devices(ds, opts.batch_size, multiple, weights).prefetch(AUTOTUNE))


def make_predict_dataset(frame: pd.DataFrame, opts: PipelineOptions) -> tf.data.Dataset:
    """Return (float32 images, ids) batches: ids stay beside their images.

    In frame order for image files; in shard order for TFRecord rows (shards are streamed), so
    callers match results to rows by the ids.
    """
    frame = image_source(frame).in_stream_order()
    return make_eval_dataset(frame, frame["id"].astype(str).to_numpy(), opts)


def fixed_tuning(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Return ds with tf.data's autotuning model off and every AUTOTUNE map at one call per usable core.

    Why: in TensorFlow 2.20 and 2.21 an iterator is deleted only once its autotune thread wakes
    from its current sleep, a period that doubles up to 60 s, and Keras's fit makes a new
    iterator every epoch, so epochs ended with a stall of up to their own length. Measured here
    (benchmarks/epoch_end.py, the kit's defaults, 10 epochs of 2,000 JPEGs): 9.9 s with
    autotune, 7.4 s without; a plain decode pipeline under Kaggle's TF 2.20: 13.4 s vs 8.2 s
    for 6 epochs. With the model off, AUTOTUNE parallelism is initial_parallelism (here the
    cores this process may use, what autotune reaches on a CPU-bound decode); prefetch buffers
    keep their own small tuner, which needs no thread.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.autotune.initial_parallelism = usable_cores()
    return ds.with_options(options)


def usable_cores() -> int:
    """Return the number of CPU cores this process may run on (its affinity, else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def batch_for_devices(ds: tf.data.Dataset, batch_size: int, multiple: int = 1, weights: bool = False):
    """Return ds in batches of batch_size rounded up to `multiple` rows, the last batch padded with zeros.

    Exists for Keras's JAX data parallelism, which splits every batch evenly over the devices:
    only the final batch is ever padded, so the padding rows are the last rows of the output and
    the caller cuts them off (predictions[:n]). weights: add a third element, 1 for real rows and
    0 for padding, so the padding counts in no weighted metric. multiple 1: plain batches.
    """
    ds = ds.batch(-(-batch_size // multiple) * multiple)
    if multiple <= 1:
        return ds

    def pad(*parts):
        rows = tf.shape(tf.nest.flatten(parts[0])[0])[0]
        extra = (multiple - rows % multiple) % multiple
        padded = tf.nest.map_structure(lambda t: tf.pad(t, [[0, extra]] + [[0, 0]] * (len(t.shape) - 1)), parts)
        if weights:
            padded += (tf.concat([tf.ones([rows]), tf.zeros([extra])], axis=0),)
        return padded

    return ds.map(pad, num_parallel_calls=AUTOTUNE)


def image_inputs(frame: pd.DataFrame, opts: PipelineOptions) -> tf.data.Dataset:
    """Return a dataset of the decoder's inputs per row: a file path or a shard record's bytes, plus hints."""
    return image_source(frame).dataset(decode_inputs(frame, opts))


def decode_inputs(frame: pd.DataFrame, opts: PipelineOptions) -> dict:
    """Return the per-image hints the decoder needs besides the bytes: EXIF orientation, JPEG scale index.

    Orientation and scale are left out when no image needs them: the branch costs ~10%.
    """
    inputs = {}
    orientation = frame["orientation"].astype(np.int32).to_numpy()
    if (orientation != 1).any():
        inputs["orientation"] = orientation
    scale = jpeg_scale_index(frame, opts.image_size)
    if scale.any():
        inputs["scale"] = scale
    return inputs


def jpeg_scale_index(frame: pd.DataFrame, size) -> np.ndarray:
    """Return, per image, the index into JPEG_SCALES of the largest decode scale that still covers `size`.

    Only for JPEGs; a reduced decode never goes below the target, so the result is not upsampled.
    """
    height, width = size
    is_jpeg = frame["path"].str.lower().str.endswith((".jpg", ".jpeg")).to_numpy()
    index = np.zeros(len(frame), dtype=np.int32)
    for i, scale in enumerate(JPEG_SCALES[1:], start=1):
        fits = (frame["width"].to_numpy() // scale >= width) & (frame["height"].to_numpy() // scale >= height)
        index[fits & is_jpeg] = i
    return index


def load_image(inputs: dict, opts: PipelineOptions, as_uint8: bool = True) -> tf.Tensor:
    """Return one image decoded, upright, resized and optionally sharpened, as uint8 HxWx3.

    as_uint8=False returns float32 in [0, 255] instead: no round trip when nothing is cached.

    inputs["orientation"] / inputs["scale"] may be None: no image needs turning / reducing.
    """
    data = inputs["bytes"] if "bytes" in inputs else tf.io.read_file(inputs["path"])
    image = decode(data, inputs.get("scale"))
    if inputs.get("orientation") is not None:
        image = orient(image, inputs["orientation"])
    image = resize(tf.cast(image, tf.float32), opts.image_size, opts.resize)
    if opts.sharpen > 0:
        image = unsharp_mask(image, opts.sharpen)
    if not as_uint8:
        return image
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode(data: tf.Tensor, scale_index: tf.Tensor | None = None) -> tf.Tensor:
    """Return an image file's bytes decoded to uint8 RGB (greyscale, CMYK, RGBA and palettes converted)."""
    branches = [lambda: tf.cond(is_webp(data), lambda: decode_webp(data),
                                lambda: tf.io.decode_image(data, channels=3, expand_animations=False))]
    branches += [lambda s=s: tf.io.decode_jpeg(data, channels=3, ratio=s) for s in JPEG_SCALES[1:]]
    image = branches[0]() if scale_index is None else tf.switch_case(scale_index, branches)
    image.set_shape([None, None, 3])
    return image


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


def apply_cache(ds: tf.data.Dataset, frame: pd.DataFrame, opts: PipelineOptions, role: str):
    """Return ds cached in memory or in a file under runs/cache keyed by images and settings."""
    if opts.cache == "none":
        return ds
    if opts.cache == "memory":
        return ds.cache()
    # File sizes and times are part of the key: new pixels at the same paths are new images.
    key = content_key(role, tuple(opts.image_size), opts.resize, opts.sharpen,
                      names=image_source(frame).cache_names())
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    stem = CACHE_ROOT / f"{role}-{key}"
    if not Path(f"{stem}.index").exists():
        # A run killed while writing leaves a lock file that would block every later run.
        for lock in CACHE_ROOT.glob(f"{stem.name}*.lockfile"):
            lock.unlink()
    return ds.cache(str(stem))
