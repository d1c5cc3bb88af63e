"""A competition's data, worked out from its folder with no per-competition code.

Training labels come from train/<class>/ folders (sf-dl-car-classification: train/0..9/*.jpg)
or from a CSV (filename,make_id,model_id as in CompCars; image_id,label; ...). The test images
and the submission schema (id column, target column, id format, row order) come from the
sample submission. Every label column gets a ClassMap so submissions write the competition's
own label values back: ints stay ints, strings stay strings.

This module puts the pieces together; each concern has its own module: src.data.layout (where
the images are), src.data.label_tables (labels CSVs), src.data.class_maps (class maps and
class_map.json), src.data.sample_submission (schema and test images).

    comp = load_competition(DataOptions(data="data/demo"))
    comp.train      # id, path, <label columns>, width, height, orientation
    comp.test       # id, path, width, height, orientation, in sample-submission order
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.task_kind import reading_order, registered
from src.data.class_maps import ClassMap, load_class_maps, make_class_map, order_classes, save_class_maps
from src.data.imagefiles import describe_bad, scan_images
from src.data.label_tables import find_labels_csv, label_csvs, read_labels_csv
from src.data.layout import find_class_folders, read_class_folders, read_named_files
from src.data.sample_submission import SubmissionSchema, find_test_images, read_sample_submission
from src.data.shards import is_shard_folder, read_shard_index

# Re-exported: jobs and tests import these from here.
__all__ = ["ClassMap", "Competition", "SubmissionSchema", "load_class_maps", "load_competition", "save_class_maps"]


@dataclasses.dataclass
class Competition:
    """Everything found in a competition folder; see the module docstring."""

    root: Path
    layout: str                         # "folders", "csv", "names" (labels in file names) or "tfrecords"
    train: pd.DataFrame
    label_columns: list
    target: str                         # the label column the submission predicts
    class_maps: dict
    test: pd.DataFrame | None
    schema: SubmissionSchema | None
    skipped: pd.DataFrame               # training files left out (corrupt, not images), with why

    @property
    def fixed_split(self) -> bool:
        """True for TFRecord shards: their folds were fixed when they were written."""
        return self.layout == "tfrecords"


def load_competition(opts: DataOptions, with_test: bool = True) -> Competition:
    """Return the Competition in `opts.data`; bad input raises a KitError naming the file or column."""
    root = Path(opts.data)
    if root.is_file():
        raise KitError(f"--data {root} is a file: expected the competition's folder (the one holding train/ "
                       "and the sample submission)")
    if not root.is_dir():
        raise KitError(f"data folder {root} does not exist: expected a competition folder "
                       "(python -m src.demo builds data/demo)")
    if is_shard_folder(root):
        return load_shard_competition(root, opts, with_test)
    schema = read_sample_submission(root, need_rows=with_test)
    layout, train, label_columns = read_training_labels(root, opts, schema)
    train, skipped = check_training_images(train, opts.strict_images)
    target = pick_target(label_columns, schema)
    train, target_map = read_target(train, target, opts, schema)
    class_maps = {col: target_map if col == target else make_class_map(train[col], col) for col in label_columns}
    if getattr(opts, "class_order", ""):  # a training job's --class-order: the target's output order
        class_maps[target] = order_classes(class_maps[target], opts.class_order)
    test = find_test_images(root, opts, schema) if with_test else None
    return Competition(root, layout, train.reset_index(drop=True), label_columns, target,
                       class_maps, test, schema, skipped)


def read_target(train: pd.DataFrame, target: str, opts, schema) -> tuple:
    """Return (training rows, the target's ClassMap) as the first task kind that claims the column reads them.

    Each kind (src.kinds) reads its own answers: a number, an identity with its new answer, tags, one label;
    the rows a kind cannot learn from (an identity's new-answer rows, a class below --min-class-count) dropped.
    """
    for kind in reading_order():
        found = kind.read_target(train, target, opts, schema)
        if found is not None:
            return found
    raise KitError(f"column {target}: no task kind reads its values ({', '.join(registered())})")


def load_shard_competition(root: Path, opts: DataOptions, with_test: bool = True) -> Competition:
    """Return the Competition of a TFRecord shard folder (rows point into the shards, split fixed)."""
    train, test, manifest = read_shard_index(root, opts)
    columns = manifest["label_columns"]
    class_maps = {c: make_class_map(train[c], c) for c in columns}
    if getattr(opts, "class_order", ""):
        class_maps[manifest["target"]] = order_classes(class_maps[manifest["target"]], opts.class_order)
    return Competition(root, "tfrecords", train, columns, manifest["target"], class_maps,
                       test if with_test and len(test) else None, read_sample_submission(root),
                       pd.DataFrame(columns=["path", "why"]))


def read_training_labels(root: Path, opts: DataOptions, schema) -> tuple[str, pd.DataFrame, list]:
    """Return (layout, frame of id/path/labels, label columns) as the first task kind that reads them returns them:
    a kind with a layout of its own (masks: src.kinds.segmentation), else one label's, the catch-all's
    (read_label_files: class folders, labels in file names, a labels CSV)."""
    for kind in reading_order():
        found = kind.read_labels(root, opts, schema)
        if found is not None:
            return found
    raise KitError(f"{root}: no task kind reads its training labels ({', '.join(registered())})")


def read_label_files(root: Path, opts: DataOptions, schema) -> tuple[str, pd.DataFrame, list]:
    """Return (layout, frame of id/path/labels, label columns) from class folders, file names or a labels CSV."""
    if not (opts.labels_csv or opts.label_column):
        folder = find_class_folders(root, opts.images_dir)
        if folder is not None:
            if opts.group_column:
                raise KitError(f"--group-column {opts.group_column}: groups need a labels CSV; "
                               f"{folder} holds class folders")
            column = schema.target_column if schema else "label"
            return "folders", read_class_folders(folder).rename(columns={"label": column}), [column]
        named = None if label_csvs(root, schema) else read_named_files(root, opts.images_dir)
        if named is not None:
            column = schema.target_column if schema else "label"
            return "names", named.rename(columns={"label": column}), [column]
    csv_path = find_labels_csv(root, opts.labels_csv, schema, opts.label_column)
    frame, label_columns = read_labels_csv(csv_path, root, opts, schema)
    return "csv", frame, label_columns


def check_training_images(train: pd.DataFrame, strict: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (good rows with width/height/orientation, skipped rows with why); strict: raise."""
    scan = scan_images(train["path"].tolist())
    bad = scan["error"] != ""
    if bad.any():
        what = describe_bad(scan[bad])
        if strict:
            raise KitError(f"bad training images (--strict-images): {what}")
        print(f"warning: skipping {what}")
    good = train[~bad.to_numpy()].copy()
    for column in ("width", "height", "orientation"):
        good[column] = scan.loc[~bad, column].to_numpy()
    if good.empty:
        raise KitError("no training images: every training file failed to decode")
    return good, scan[bad].reset_index(drop=True)


def pick_target(label_columns: list, schema: SubmissionSchema | None) -> str:
    """Return the label column the submission predicts: the sample's target if named, else the first."""
    if schema and schema.target_column in label_columns:
        return schema.target_column
    return label_columns[0]


def drop_sparse_classes(train: pd.DataFrame, target: str, min_count: int) -> pd.DataFrame:
    """Return train without the classes under `min_count` images; what was dropped is printed."""
    counts = train[target].value_counts()
    sparse = counts[counts < min_count]
    if sparse.empty:
        return train
    dropped = {k.item() if hasattr(k, "item") else k: int(v) for k, v in sparse.items()}
    print(f"--min-class-count {min_count}: dropped {len(dropped)} class(es), "
          f"{int(sparse.sum())} image(s): {dropped}")
    return train[~train[target].isin(sparse.index)]


def check_learnable(train: pd.DataFrame, target: str, min_count: int) -> None:
    """Raise when the target column leaves nothing to learn: no image, or a single class."""
    classes = train[target].unique()
    if len(classes) == 0:
        raise KitError(f"--min-class-count {min_count}: every class of column {target} has fewer images; "
                       "nothing is left to train on")
    if len(classes) == 1:
        raise KitError(f"column {target} holds one class ({classes[0]!r}): a classifier needs two or more; "
                       "is it the label column? (--label-column names it)")
