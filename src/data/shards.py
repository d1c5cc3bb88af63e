"""Reading a competition written as TFRecord shards (src.data.shard_writer writes them).

A shard folder holds train-f<fold>-<nnn>-<count>.tfrec and test-<nnn>-<count>.tfrec, index.csv
(one row per record: shard, record, id, labels, original path, size, EXIF orientation), the
sample submission and tfrecords.json. Every job given `--data DIR` of shards reads images
from them (src.data.sources) and labels from the index, with the split fixed by the shards.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError

MANIFEST = "tfrecords.json"
INDEX = "index.csv"


def make_example(image: bytes, image_id: str, labels: dict) -> bytes:
    """Return one serialized tf.train.Example: the file's bytes, its id and its labels as text."""
    import tensorflow as tf

    def text(value: str | bytes):
        raw = value if isinstance(value, bytes) else value.encode()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))

    features = {"image": text(image), "id": text(image_id), **{f"label/{k}": text(v) for k, v in labels.items()}}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_record(serialized, label_columns=()):
    """Return {'image': bytes, 'id': text, 'label/<column>': text} from one record."""
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string), "id": tf.io.FixedLenFeature([], tf.string)}
    spec.update({f"label/{c}": tf.io.FixedLenFeature([], tf.string) for c in label_columns})
    return tf.io.parse_single_example(serialized, spec)


def is_shard_folder(root: str | Path) -> bool:
    """Return True when the folder holds shards written by this module."""
    return (Path(root) / MANIFEST).is_file()


def read_shard_index(root: Path, opts: DataOptions) -> tuple:
    """Return (training rows, test rows, manifest) of a shard folder: rows point into the shards (shard, record).

    The split is fixed by the shards: --folds must be the one they were written with.
    """
    manifest = json.loads((root / MANIFEST).read_text())
    if opts.folds != manifest["folds"]:
        raise KitError(f"--folds {opts.folds}: the shards in {root} were written with --folds "
                       f"{manifest['folds']}; write them again with the split you want")
    index = pd.read_csv(root / INDEX, dtype=str, keep_default_na=False)
    for column in ("record", "fold", "width", "height", "orientation"):
        index[column] = index[column].astype(int)
    index["shard"] = [str(root / name) for name in index["shard"]]
    train = index[index["role"] == "train"].drop(columns="role").reset_index(drop=True)
    for column, kind in manifest["label_types"].items():  # as the folders gave them: 7 stays an int
        if kind == "int":
            train[column] = train[column].astype(int)
    test = index[index["role"] == "test"][["id", "path", "width", "height", "orientation", "shard", "record"]]
    return train, test.reset_index(drop=True), manifest


def is_shard_frame(frame: pd.DataFrame) -> bool:
    """Return True when a frame's rows point into TFRecord shards rather than at image files."""
    return "shard" in frame


def shard_count(path: str) -> int:
    """Return the record count a shard's name carries (train-f0-003-1437.tfrec -> 1437)."""
    return int(Path(path).name.rsplit("-", 1)[1].split(".")[0])


def check_whole_shards(frame: pd.DataFrame) -> list:
    """Return the frame's shard files in order; raise unless the frame is whole shards, records in order.

    Shards are streamed, not indexed: labels line up with images only when every shard is read
    from its first record to its last, in the frame's order.
    """
    files = list(dict.fromkeys(frame["shard"]))
    expected = [(f, r) for f in files for r in range(shard_count(f))]
    if list(zip(frame["shard"], frame["record"])) != expected:
        raise ValueError("a TFRecord frame must list whole shards with their records in order "
                         f"({len(frame)} rows over {len(files)} shard(s) holding {len(expected)} records)")
    return files


def read_image_bytes(frame: pd.DataFrame) -> list:
    """Return the image file bytes of a few shard rows, in the frame's order (for figures)."""
    import tensorflow as tf

    wanted = {}
    for shard, record in zip(frame["shard"], frame["record"]):
        wanted.setdefault(shard, set()).add(int(record))
    found = {}
    for shard, records in wanted.items():
        for number, raw in enumerate(tf.data.TFRecordDataset(shard).take(max(records) + 1)):
            if number in records:
                found[(shard, number)] = parse_record(raw)["image"].numpy()
    return [found[(s, int(r))] for s, r in zip(frame["shard"], frame["record"])]
