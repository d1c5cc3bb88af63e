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
from src.pipeline.decode import JPEG_SCALES, decode, orient, resize, unsharp_mask
from src.pipeline.sampling import draw_by_class, row_repeats
from src.core.config import PipelineOptions
from src.data.sources import content_key, image_source

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER = 4096  # after a cache: the cached order is already shuffled once, this adds per-epoch mixing
CACHE_ROOT = Path("runs") / "cache"


def make_train_dataset(frame: pd.DataFrame, labels, opts: PipelineOptions, seed: int = 42,
                       num_classes: int | None = None, drop_remainder: bool = False, sampling: str = "natural",
                       classes=None, table=None) -> tf.data.Dataset:
    """Return a dataset of (float32 images, labels) batches: shuffled every epoch, augmented, prefetched.

    With MixUp or CutMix the labels come out one-hot (num_classes needed), for a categorical loss.
    sampling balanced / sqrt draws images by class (`classes`: each row's class index; see draw_by_class).
    table (--metadata): each row's table features; they travel beside the labels, and the images come out
    as {"image": images, "table": features}.
    """
    n = len(frame)
    labels, role = (labels, table) if table is not None else labels, "-table" if table is not None else ""
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
        ds = apply_cache(ds, frame, opts, f"train-seed{seed}" + ("" if sampling == "natural" else f"-{sampling}")
                         + role)
        ds = draw_by_class(ds, seed)  # after the cache: every epoch reads it whole, so the cache completes
        ds = ds.shuffle(min(n, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    augment = make_augmenter(opts.augment, opts.augment_backend, opts.flip)
    ds = ds.map(lambda x, y: (augment(tf.cast(x, tf.float32)), y),
                num_parallel_calls=AUTOTUNE, deterministic=False)
    # No num_parallel_calls on batch: on 2 cores it took threads from decoding (386 vs 624 images/s).
    ds = ds.batch(opts.batch_size, drop_remainder=drop_remainder)
    if table is not None:
        ds = ds.map(with_table)
    if opts.mixup > 0 or opts.cutmix > 0:
        if not num_classes:
            raise ValueError("MixUp/CutMix need num_classes for one-hot labels")
        ds = ds.map(lambda x, y: mix_batch(x, y if y.shape.rank == 2 else tf.one_hot(y, num_classes), opts.mixup,
                                           opts.cutmix), num_parallel_calls=AUTOTUNE)  # rank 2: multi-label rows
    return fixed_tuning(ds.prefetch(AUTOTUNE))


def make_eval_dataset(frame: pd.DataFrame, labels, opts: PipelineOptions, multiple: int = 1,
                      weights: bool = False, table=None) -> tf.data.Dataset:
    """Return (float32 images, labels) batches in frame order, every image kept (no dropped remainder).

    multiple > 1 (JAX data parallelism): batches are a multiple of the devices and the last one is
    padded (batch_for_devices); weights adds 1 / 0 per row. table: as in make_train_dataset.
    """
    labels = (labels, table) if table is not None else labels
    ds = tf.data.Dataset.zip((image_inputs(frame, opts), tf.data.Dataset.from_tensor_slices(labels)))
    ds = ds.map(lambda x, y: (load_image(x, opts), y), num_parallel_calls=AUTOTUNE)
    ds = apply_cache(ds, frame, opts, "eval" + ("-table" if table is not None else ""))
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    ds = batch_for_devices(ds, opts.batch_size, multiple, weights)
    return fixed_tuning((ds.map(with_table) if table is not None else ds).prefetch(AUTOTUNE))


def with_table(images, labels_and_table, *weights):
    """Return ({"image", "table"}, labels, *weights) from (images, (labels, table), *weights): --metadata's inputs."""
    labels, table = labels_and_table
    return ({"image": images, "table": table}, labels, *weights)


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
