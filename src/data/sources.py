"""Where a frame's image bytes come from: files on disk, or records inside TFRecord shards.

    source = image_source(frame)
    source.dataset(extra)        # tf.data of {"path": ...} or {"bytes": ...} per row, plus `extra` columns
    source.cache_names()         # what identifies each image in a cache key
    source.open_for_figures()    # file paths or in-memory files, for matplotlib

The one place that asks "is this a shard frame?"; the pipeline, the caches and the figures
all go through it, so every job reads shards exactly as it reads folders.
"""
from __future__ import annotations

import hashlib
import io
import os

import pandas as pd

from src.data.shards import check_whole_shards, is_shard_frame, parse_record, read_image_bytes


class FileImages:
    """Rows whose `path` names an image file."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def in_stream_order(self) -> pd.DataFrame:
        """Return the rows in the order dataset() yields them (files: the frame's own order)."""
        return self.frame

    def shuffle_buffer(self) -> int:
        """Return a shuffle buffer covering every row: paths are small."""
        return max(1, len(self.frame))

    def dataset(self, extra: dict):
        """Return a tf.data of {"path", **extra} per row, in frame order."""
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices({"path": self.frame["path"].astype(str).to_numpy(), **extra})

    def cache_names(self) -> list:
        """Return per image its path, size and modification time: a changed file is a new image to a cache."""
        names = []
        for path in self.frame["path"].astype(str):
            try:
                stat = os.stat(path)
                names.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
            except OSError:
                names.append(path)
        return names

    def open_for_figures(self) -> list:
        return list(self.frame["path"])


class ShardImages:
    """Rows whose (shard, record) name a record of a TFRecord shard; shards are streamed whole, in order."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def in_stream_order(self) -> pd.DataFrame:
        """Return the rows sorted by shard and record: the order in which whole shards stream."""
        return self.frame.sort_values(["shard", "record"], kind="stable")

    def shuffle_buffer(self) -> int:
        # The inputs are the image bytes, not paths: a full-size buffer would hold them all.
        return max(1, min(len(self.frame), 4096))

    def dataset(self, extra: dict):
        """Return a tf.data of {"bytes", **extra} per row, each record checked against the index's id."""
        import tensorflow as tf

        files = check_whole_shards(self.frame)
        rows = {**extra, "id": self.frame["id"].astype(str).to_numpy()}
        records = tf.data.TFRecordDataset(files, buffer_size=8 << 20).map(parse_record,
                                                                         num_parallel_calls=tf.data.AUTOTUNE)

        def merge(record, row):
            # A record out of step with the index would mislabel silently: fail loudly instead.
            same = tf.debugging.assert_equal(record["id"], row["id"], message="TFRecord shard out of step with index.csv")
            with tf.control_dependencies([same]):
                data = tf.identity(record["image"])
            return {"bytes": data, **{k: v for k, v in row.items() if k != "id"}}

        # The length is known (whole shards, one record per row): declared, Keras counts the batches instead of
        # running into the stream's end and warning "ran out of data"; a shard of another length fails loudly.
        return tf.data.Dataset.zip((records, tf.data.Dataset.from_tensor_slices(rows))).map(
            merge, num_parallel_calls=tf.data.AUTOTUNE).apply(tf.data.experimental.assert_cardinality(len(self.frame)))

    def cache_names(self) -> list:
        """Return per record its shard, record number and the shard's size and time."""
        stamps = {s: shard_stamp(s) for s in self.frame["shard"].unique()}
        return [f"{s}#{r}:{stamps[s]}" for s, r in zip(self.frame["shard"], self.frame["record"])]

    def open_for_figures(self) -> list:
        return [io.BytesIO(raw) for raw in read_image_bytes(self.frame)]


def shard_stamp(path: str) -> str:
    try:
        stat = os.stat(path)
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        return ""


def image_source(frame: pd.DataFrame) -> FileImages | ShardImages:
    """Return the image source of a frame: shard records or image files."""
    return ShardImages(frame) if is_shard_frame(frame) else FileImages(frame)


def content_key(*parts, names=()) -> str:
    """Return a short hash of settings and image names (a cache key)."""
    return hashlib.sha1("\n".join([*map(str, parts), *names]).encode()).hexdigest()[:16]


def frame_digest(frame: pd.DataFrame) -> str:
    """Return a short hash of the images a frame names, sizes and times included."""
    return content_key(names=image_source(frame).cache_names())

