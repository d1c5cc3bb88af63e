"""A competition's data, worked out from its folder with no per-competition code.

Training labels come from train/<class>/ folders (sf-dl-car-classification: train/0..9/*.jpg)
or from a CSV (filename,make_id,model_id as in CompCars; image_id,label; ...). The test images
and the submission schema (id column, target column, id format, row order) come from the
sample submission. Every label column gets a ClassMap so submissions write the competition's
own label values back: ints stay ints, strings stay strings.

    comp = load_competition(DataOptions(data="data/demo"))
    comp.train      # id, path, <label columns>, width, height, orientation
    comp.test       # id, path, width, height, orientation, in sample-submission order
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.files import write_json
from src.data.imagefiles import IMAGE_EXTENSIONS, describe_bad, list_folder, scan_images
from src.data.pixels import pixel_columns, write_pixel_images
from src.data.shards import is_shard_folder, read_shard_index

TRAIN_FOLDERS = ("train", "training", "train_images", "train_data", "images", "imgs")
TEST_FOLDERS = ("test_upload", "test", "test_images", "testing", "test_data")
ID_COLUMN_NAMES = ("id", "image_id", "imageid", "image", "filename", "file_name", "file", "path",
                   "image_path", "img", "image_name", "name", "fname")


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """Competition label values in index order: index i of the network's output means values[i]."""

    column: str
    values: tuple
    multi_label: bool = False   # values are tags; a row's label is several of them, space-separated

    def encode(self, labels) -> np.ndarray:
        """Return the index of each competition label value (multi-label: a 0/1 row per image, a column per tag).

        Unknown values raise naming them.
        """
        lookup = {value: i for i, value in enumerate(self.values)}
        if self.multi_label:
            rows = [str(v).split() for v in labels]
            missing = [t for tags in rows for t in tags if t not in lookup]
            if missing:
                raise KitError(f"column {self.column}: tag {missing[0]!r} is not a known tag")
            hot = np.zeros((len(rows), len(self.values)), dtype=np.float32)
            for i, tags in enumerate(rows):
                hot[i, [lookup[t] for t in tags]] = 1.0
            return hot
        missing = [v for v in labels if v not in lookup]
        if missing:
            raise KitError(f"column {self.column}: label {missing[0]!r} is not a known class")
        return np.array([lookup[v] for v in labels], dtype=np.int32)

    def decode_tags(self, hot) -> list:
        """Return each row's tags, space-separated, from a 0/1 (or boolean) matrix."""
        return [" ".join(str(self.values[i]) for i in np.flatnonzero(row)) for row in np.asarray(hot)]

    def stratify_key(self, labels) -> np.ndarray:
        """Return one stratification label per row: the label itself, or a row's rarest tag (multi-label)."""
        if not self.multi_label:
            return np.asarray([str(v) for v in labels])
        rows = [str(v).split() for v in labels]
        counts = pd.Series([t for tags in rows for t in tags]).value_counts()
        return np.asarray([min(tags, key=lambda t: (counts[t], t)) for tags in rows])

    def decode(self, indices) -> list:
        """Return the competition's own label values for network output indices."""
        return [self.values[int(i)] for i in indices]

    def to_json(self) -> dict:
        return {"column": self.column, "values": list(self.values), **({"multi_label": True} if self.multi_label else {})}

    @classmethod
    def from_json(cls, data: dict) -> "ClassMap":
        return cls(column=data["column"], values=tuple(data["values"]), multi_label=bool(data.get("multi_label")))


@dataclasses.dataclass(frozen=True)
class SubmissionSchema:
    """What the sample submission says a submission must look like."""

    path: Path
    id_column: str
    target_column: str
    ids: tuple          # ids exactly as the sample writes them, in its row order
    sample: pd.DataFrame = dataclasses.field(repr=False, compare=False, default=None)  # the file, as text


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


def save_class_maps(path: str | Path, target: str, maps: dict) -> Path:
    """Write class_map.json: the target column and every label column's classes in index order."""
    return write_json(path, {"target": target, "maps": [m.to_json() for m in maps.values()]})


def load_class_maps(path: str | Path) -> tuple[str, dict]:
    """Return (target column, {column: ClassMap}) from a run's class_map.json."""
    payload = json.loads(Path(path).read_text())
    maps = {m["column"]: ClassMap.from_json(m) for m in payload["maps"]}
    return payload["target"], maps


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
    if not holds_tags(train[target]):  # tag combinations are not classes: nothing to drop or count
        train = drop_sparse_classes(train, target, opts.min_class_count)
        check_learnable(train, target, opts.min_class_count)
    class_maps = {col: make_class_map(train[col], col) for col in label_columns}
    test = find_test_images(root, opts, schema) if with_test else None
    return Competition(root, layout, train.reset_index(drop=True), label_columns, target,
                       class_maps, test, schema, skipped)


def load_shard_competition(root: Path, opts: DataOptions, with_test: bool = True) -> Competition:
    """Return the Competition of a TFRecord shard folder (rows point into the shards, split fixed)."""
    train, test, manifest = read_shard_index(root, opts)
    columns = manifest["label_columns"]
    class_maps = {c: make_class_map(train[c], c) for c in columns}
    return Competition(root, "tfrecords", train, columns, manifest["target"], class_maps,
                       test if with_test and len(test) else None, read_sample_submission(root),
                       pd.DataFrame(columns=["path", "why"]))


def read_sample_submission(root: Path, need_rows: bool = True) -> SubmissionSchema | None:
    """Return the schema of root's sample submission CSV, or None when there is none.

    need_rows: a job that predicts the test set needs its rows (training reads only the columns).
    """
    found = [p for p in sorted(root.glob("*.csv"))
             if re.sub(r"[^a-z]", "", p.stem.lower()).startswith("samplesubmission")]
    if not found:
        return None
    path = found[0]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if frame.shape[1] < 2:
        raise KitError(f"{path}: expected an id column and a target column, found {list(frame.columns)}")
    if frame.empty and need_rows:
        raise KitError(f"{path}: only a header, no rows: expected one row per test image")
    id_column, target_column = frame.columns[0], frame.columns[1]
    dup = frame[id_column].duplicated()
    if dup.any():
        row = int(np.argmax(dup.to_numpy()))
        raise KitError(f"{path}: duplicate id {frame[id_column].iloc[row]!r} in column {id_column} "
                       f"(row {row + 2} of the file): expected each id once")
    ids = tuple(frame[id_column])
    return SubmissionSchema(path, id_column, target_column, ids, frame)


def read_training_labels(root: Path, opts: DataOptions, schema) -> tuple[str, pd.DataFrame, list]:
    """Return (layout, frame of id/path/labels, label columns) from class folders or a labels CSV."""
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


def find_class_folders(root: Path, images_dir: str) -> Path | None:
    """Return the folder whose subfolders are classes (train/<class>/), or None."""
    candidates = [Path(images_dir)] if images_dir else [root / n for n in TRAIN_FOLDERS]
    candidates += [c / c.name for c in candidates]  # Kaggle zips often nest train/train/
    for folder in candidates:
        if folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
            return folder
    return None


def read_class_folders(folder: Path) -> pd.DataFrame:
    """Return id/path/label rows for train/<class>/<file>; an empty class folder is an error."""
    rows = []
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_dir in class_dirs:
        images, others = list_folder(class_dir)
        if not images and not others:
            raise KitError(f"class folder {class_dir} is empty: expected image files "
                           f"({', '.join(IMAGE_EXTENSIONS)}) or no folder")
        rows += [(f"{class_dir.name}/{p.name}", str(p), class_dir.name) for p in images + others]
    if not rows:
        raise KitError(f"{folder}: no training images: expected class folders holding image files")
    frame = pd.DataFrame(rows, columns=["id", "path", "label"])
    frame["label"] = typed_labels(frame["label"])
    return frame


def typed_labels(values: pd.Series) -> pd.Series:
    """Return folder-name labels as ints when every name is a plain integer ('7', not '07')."""
    if all(re.fullmatch(r"-?(0|[1-9]\d*)", v) for v in values.astype(str)):
        return values.astype(int)
    return values.astype(str)


def find_labels_csv(root: Path, labels_csv: str, schema, label_column: str = "") -> Path:
    """Return the labels CSV: --labels-csv, else the one CSV that is not a sample or solution."""
    if labels_csv:
        path = Path(labels_csv) if Path(labels_csv).is_file() else root / labels_csv
        if not path.is_file():
            raise KitError(f"--labels-csv {labels_csv}: no such file")
        return path
    found = label_csvs(root, schema)
    preferred = [p for p in found if "train" in p.stem.lower() or "label" in p.stem.lower()]
    found = preferred or found
    if len(found) == 1:
        return found[0]
    if not found and label_column:
        raise KitError(f"--label-column {label_column}: names a column of a labels CSV, but {root} has no CSV "
                       "besides the sample submission (class folders need no --label-column)")
    if not found:
        raise KitError(f"{root}: no training images: expected train/<class>/ folders or a labels CSV")
    raise KitError(f"{root}: several label CSVs ({', '.join(p.name for p in found)}): pass --labels-csv")


def read_pixel_labels(path: Path, raw: pd.DataFrame, opts: DataOptions) -> tuple[pd.DataFrame, list]:
    """Return (id/path/labels frame, label columns) of a CSV whose rows are images (pixel columns)."""
    pixels = set(pixel_columns(raw.columns))
    label_columns = [c.strip() for c in opts.label_column.split(",") if c.strip()] or \
        [c for c in raw.columns if c not in pixels]
    if not label_columns:
        raise KitError(f"{path}: pixel columns but no label column")
    ids = [str(i) for i in range(len(raw))]
    frame = pd.DataFrame({"id": ids, "path": write_pixel_images(path, raw, ids, "train")})
    for column in label_columns:
        frame[column] = clean_labels(raw[column])
    return frame, label_columns


def pixel_test_images(root: Path, schema) -> Path | None:
    """Return the folder of test images written from a pixel CSV (test.csv), named by the sample's ids, or None.

    Digit Recognizer's sample ImageId 1..N numbers test.csv's rows in order.
    """
    found = [p for p in sorted(root.glob("*.csv")) if "test" in p.stem.lower() and p != schema.path]
    for path in found:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sniff_separator(path))
        if pixel_columns(raw.columns):
            if len(raw) != len(schema.ids):
                raise KitError(f"{path}: {len(raw)} rows of pixels, but {schema.path} lists {len(schema.ids)} ids")
            return Path(write_pixel_images(path, raw, list(schema.ids), "test")[0]).parent
    return None


def check_classifiable(values: pd.Series, column: str, path: Path) -> None:
    """Raise naming the column when it holds a target the kit cannot serve: masks, boxes, continuous values."""
    text = values.astype(str).str.strip()
    what = ""
    name = str(column).lower()
    if name in ("encodedpixels", "rle", "rle_mask", "mask_rle", "segmentation") or \
            text.str.fullmatch(r"\d+( \d+){3,}").mean() > 0.5:
        what = "run-length encoded masks (segmentation)"
    elif name in ("bbox", "bboxes", "box", "boxes") or \
            text.str.fullmatch(r"\[?\s*[\d.]+(\s*[, ]\s*[\d.]+){3}\s*\]?").mean() > 0.5:
        what = "bounding boxes (detection)"
    else:
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().all() and (numbers % 1 != 0).mean() > 0.5 and numbers.nunique() > 20:
            what = "continuous values (regression)"
    if what:
        raise KitError(f"{path}: column {column!r} holds {what}; the kit classifies images: it supports one label, "
                       "a class probability, per-class probabilities, top-k labels or space-separated tags per "
                       "image (--label-column names the column to classify)")


def holds_tags(values: pd.Series) -> bool:
    """Return True when a label column holds space-separated tags (multi-label), not one class per image."""
    return not pd.api.types.is_numeric_dtype(values) and looks_multi_label(values.astype(str))


def looks_multi_label(text: pd.Series) -> bool:
    """Return True for tags: many values hold several words, from fewer distinct words than distinct values.

    "audi a4", "audi a6", "bmw x5" are class names (5 words for 3 values); Planet's "clear primary
    road" is a set of tags (17 words over hundreds of combinations).
    """
    tokens = text.str.split()
    several = (tokens.str.len() > 1).mean()
    vocabulary = {word for words in tokens for word in words}
    return several >= 0.3 and text.nunique() >= 4 and len(vocabulary) < text.nunique()


def is_one_hot(raw: pd.DataFrame, columns: list) -> bool:
    """Return True when two or more columns hold 0/1 with exactly one 1 in every row."""
    if len(columns) < 2 or not raw[columns].isin(["0", "1"]).all().all():
        return False
    return bool((raw[columns].astype(int).sum(axis=1) == 1).all())


def label_csvs(root: Path, schema) -> list:
    """Return the CSVs in root that may hold training labels (not the sample submission, not a solution)."""
    skip = {schema.path} if schema else set()
    return [p for p in sorted(root.glob("*.csv")) if p not in skip and "solution" not in p.stem.lower()]


def read_named_files(root: Path, images_dir: str) -> pd.DataFrame | None:
    """Return id/path/label rows when a flat training folder's names carry the label, else None.

    Dogs vs. Cats: train/cat.0.jpg, train/dog.0.jpg. The label is the part before the first '.',
    '_' or '-', when every file has one, there are at least two such labels, each on two files
    or more, and no label is a number (that would be an id, not a class).
    """
    folders = [Path(images_dir)] if images_dir else [root / n for n in TRAIN_FOLDERS]
    folders += [f / f.name for f in folders]
    for folder in (f for f in folders if f.is_dir()):
        images, _ = list_folder(folder)
        labels = [re.split(r"[._-]", p.stem, maxsplit=1) for p in images]
        if len(images) < 4 or any(len(parts) < 2 or not parts[0] for parts in labels):
            continue
        prefixes = pd.Series([parts[0] for parts in labels])
        counts = prefixes.value_counts()
        if 2 <= len(counts) <= len(images) // 2 and counts.min() >= 2 and not prefixes.str.isdigit().any():
            print(f"labels: from the file names in {folder} ({', '.join(map(str, counts.index[:10]))})")
            return pd.DataFrame({"id": [p.name for p in images], "path": [str(p) for p in images],
                                 "label": prefixes.to_numpy()})
    return None


def read_labels_csv(path: Path, root: Path, opts: DataOptions, schema) -> tuple[pd.DataFrame, list]:
    """Return (id/path/labels frame, label columns) from a labels CSV; checks columns and files."""
    # As text: '007' stays '007' and a label 'NA' stays a label (pandas would read 7 and a missing value).
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sniff_separator(path))
    if pixel_columns(raw.columns):
        return read_pixel_labels(path, raw, opts)
    id_column = opts.id_column or guess_id_column(raw, root, opts.images_dir)
    label_columns = [c.strip() for c in opts.label_column.split(",") if c.strip()]
    label_columns = label_columns or [c for c in raw.columns if c not in (id_column, opts.group_column)]
    for column in [id_column, *label_columns] + ([opts.group_column] if opts.group_column else []):
        if column not in raw.columns:
            raise KitError(f"{path}: no column {column!r}: expected one of {', '.join(map(str, raw.columns))}")
    if not label_columns:
        raise KitError(f"{path}: no label column besides the id column {id_column!r}")
    for column in [id_column, *label_columns]:
        empty = raw[column].str.strip() == ""
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            what = "id" if column == id_column else "label"
            raise KitError(f"{path}: empty {what} in column {column!r} at row {row + 2}")
    for column in label_columns:
        check_classifiable(raw[column], column, path)
    if not opts.label_column and is_one_hot(raw, label_columns):
        # Plant Pathology 2020: healthy,multiple_diseases,rust,scab as 0/1 columns, one 1 a row -> one label
        print(f"labels: one-hot columns {', '.join(label_columns)} of {path.name} read as one label column")
        raw = raw.assign(label=raw[label_columns].astype(int).to_numpy().argmax(axis=1))
        raw["label"] = [label_columns[i] for i in raw["label"]]
        label_columns = ["label"]
    check_duplicate_ids(raw, id_column, label_columns, path)
    if raw[id_column].duplicated().any():
        print(f"warning: {path}: {int(raw[id_column].duplicated().sum())} repeated row(s) of the same id and "
              "labels; each image is kept once")
        raw = raw.drop_duplicates(subset=[id_column]).reset_index(drop=True)
    ids = raw[id_column].astype(str)
    images_dir = find_images_dir(root, opts.images_dir, ids, path)
    frame = pd.DataFrame({"id": ids, "path": resolve_image_paths(images_dir, ids, path)})
    for column in label_columns:
        frame[column] = clean_labels(raw[column])
    if opts.group_column:
        frame["group"] = raw[opts.group_column].astype(str)
    return frame, label_columns


def sniff_separator(path: Path) -> str:
    """Return the CSV's separator (comma, semicolon, tab or pipe), read from its header line."""
    import csv

    with open(path, newline="") as handle:
        header = handle.readline()
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or nothing to tell: the default
        return ","


def guess_id_column(raw: pd.DataFrame, root: Path, images_dir: str = "") -> str:
    """Return the column whose values name image files; names (id, image_id, filename ...) only break ties.

    Humpback Whale Identification's train.csv is Image,Id: "Id" is the whale, "Image" the file.
    """
    by_name = {str(c).lower(): c for c in raw.columns}
    named = [by_name[n] for n in ID_COLUMN_NAMES if n in by_name]
    ordered = named + [c for c in raw.columns if c not in named]
    for column in ordered:
        values = raw[column].astype(str)
        if len(values) and image_folder_for(root, images_dir, values) is not None:
            return column
    return ordered[0]


def candidate_folders(root: Path) -> list:
    """Return where a competition's images may sit: the usual names, the root, every other subfolder, nested twins."""
    usual = [root / n for n in TRAIN_FOLDERS]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p not in usual and not p.name.startswith("."))
    folders = usual + [root] + others
    return folders + [f / f.name for f in usual + others]


def image_folder_for(root: Path, images_dir: str, ids: pd.Series) -> Path | None:
    """Return the first folder where the first ids resolve to files, or None."""
    folders = [Path(images_dir) if Path(images_dir).is_dir() else root / images_dir] if images_dir else \
        candidate_folders(root)
    return next((f for f in folders if f.is_dir() and all(resolve_one(f, i) for i in ids.head(5))), None)


def clean_labels(values: pd.Series) -> pd.Series:
    """Return labels as ints when every one is written as a plain integer ('3', '3.0'), else as stripped text.

    '05' stays '05': a competition whose labels are zero-padded wants them back that way.
    """
    text = values.astype(str).str.strip()
    if text.str.fullmatch(r"-?(0|[1-9]\d*)(\.0+)?").all():
        return text.str.replace(r"\.0+$", "", regex=True).astype(int)
    return text


def check_duplicate_ids(raw: pd.DataFrame, id_column: str, label_columns: list, path: Path) -> None:
    """Raise naming an id listed twice with different labels (the split and the class maps would disagree)."""
    rows = raw[[id_column, *label_columns]].drop_duplicates()
    dup = rows[id_column].duplicated(keep=False)
    if dup.any():
        image_id = rows.loc[dup, id_column].iloc[0]
        labels = rows.loc[rows[id_column] == image_id, label_columns].astype(str).agg("/".join, axis=1).tolist()
        raise KitError(f"{path}: id {image_id!r} is listed with different labels ({', '.join(labels)}): "
                       "expected one label per image")


def find_images_dir(root: Path, images_dir: str, ids: pd.Series, csv_path: Path) -> Path:
    """Return the folder where the CSV's first ids resolve to files (--images-dir wins)."""
    if images_dir:
        folder = Path(images_dir) if Path(images_dir).is_dir() else root / images_dir
        if not folder.is_dir():
            raise KitError(f"--images-dir {images_dir}: no such folder")
        return folder
    folder = image_folder_for(root, "", ids)
    if folder is not None:
        return folder
    raise KitError(f"{csv_path}: cannot find the images its ids name (first: {ids.iloc[0]!r}) under "
                   f"{root}: pass --images-dir")


def resolve_one(folder: Path, image_id: str) -> Path | None:
    """Return the file for an id written with or without its extension, or None."""
    direct = folder / image_id
    if direct.is_file():
        return direct
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        path = folder / f"{image_id}{ext}"
        if path.is_file():
            return path
    return None


def resolve_image_paths(folder: Path, ids: pd.Series, source: Path) -> list[str]:
    """Return the file path of every id; a missing file raises naming the id, row and folder."""
    by_name, by_stem = {}, {}
    for entry in folder.iterdir():  # one listing instead of a stat per row
        by_name[entry.name] = entry
        if entry.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(entry.stem, []).append(entry)
    paths = []
    for row, image_id in enumerate(ids):
        stems = by_stem.get(image_id, [])
        if image_id not in by_name and len(stems) > 1:
            raise KitError(f"{source}: row {row + 2} names image {image_id!r}, and {folder} holds "
                           f"{' and '.join(sorted(p.name for p in stems))}: which one is meant? Remove the other")
        path = by_name.get(image_id) or (stems[0] if stems else None) or resolve_one(folder, image_id)
        if path is None:
            raise KitError(f"{source}: row {row + 2} names image {image_id!r}, but no such file is in "
                           f"{folder} (tried the name as is and with {', '.join(IMAGE_EXTENSIONS)})")
        paths.append(str(path))
    return paths


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


def make_class_map(values: pd.Series, column: str) -> ClassMap:
    """Return the ClassMap of a label column: sorted values as plain Python ints or strings.

    Space-separated tags (Planet's "clear primary road") make a multi-label map: its values are the tags.
    """
    if holds_tags(values):
        tags = sorted({t for v in values.astype(str) for t in v.split()})
        print(f"labels: column {column} holds space-separated tags: multi-label, {len(tags)} tags")
        return ClassMap(column, tuple(tags), multi_label=True)
    unique = sorted(set(values.tolist()))
    return ClassMap(column, tuple(v.item() if hasattr(v, "item") else v for v in unique))


def find_test_images(root: Path, opts: DataOptions, schema) -> pd.DataFrame | None:
    """Return the test images (id, path, size, orientation) in the sample submission's order.

    Every test image must decode: a submission needs every row, so a bad one is fatal.
    """
    if opts.test_dir and not Path(opts.test_dir).is_dir():
        raise KitError(f"--test-dir {opts.test_dir}: no such folder")
    folder = Path(opts.test_dir) if opts.test_dir else next(
        (root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    if (folder is None or not folder.is_dir()) and schema is not None and schema.ids:
        # Train and test images in one folder (Plant Pathology 2020's images/): where the sample's ids are;
        # or rows of pixels in test.csv (Digit Recognizer).
        folder = image_folder_for(root, "", pd.Series(schema.ids, dtype=str)) or pixel_test_images(root, schema)
    if folder is None or not folder.is_dir():
        if schema is None:
            return None
        raise KitError(f"{schema.path} lists test ids but no test folder was found in {root} "
                       f"(looked for {', '.join(TEST_FOLDERS)} and the folders holding its ids): pass --test-dir")
    if schema is None:
        images, _ = list_folder(folder)
        frame = pd.DataFrame({"id": [p.name for p in images], "path": [str(p) for p in images]})
    else:
        ids = pd.Series(schema.ids, dtype=str)
        frame = pd.DataFrame({"id": ids, "path": resolve_image_paths(folder, ids, schema.path)})
    scan = scan_images(frame["path"].tolist())
    bad = scan[scan["error"] != ""]
    if not bad.empty:
        raise KitError(f"bad test images (a submission needs every row): {describe_bad(bad)}")
    for column in ("width", "height", "orientation"):
        frame[column] = scan[column].to_numpy()
    return frame
