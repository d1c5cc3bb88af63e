"""Labels CSVs: which file, which id and label columns, what their values mean.

Reads CompCars-style (filename,make_id,model_id), image_id,label, one-hot columns (Plant
Pathology 2020), pixel rows (Digit Recognizer), numbers (read as such by src.data.numbers);
refuses masks and boxes by name.

    path = find_labels_csv(root, opts.labels_csv, schema, opts.label_column)
    frame, label_columns = read_labels_csv(path, root, opts, schema)   # id, path, <labels>
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.files import read_user_csv
from src.data.layout import find_images_dir, image_folder_for, resolve_image_paths
from src.data.numbers import check_number_cells
from src.data.pixels import pixel_columns, write_pixel_images

ID_COLUMN_NAMES = ("id", "image_id", "imageid", "image", "filename", "file_name", "file", "path",
                   "image_path", "img", "image_name", "name", "fname")


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


def label_csvs(root: Path, schema) -> list:
    """Return the CSVs in root that may hold training labels (not the sample submission, not a solution)."""
    skip = {schema.path} if schema else set()
    return [p for p in sorted(root.glob("*.csv")) if p not in skip and "solution" not in p.stem.lower()]


def read_labels_csv(path: Path, root: Path, opts: DataOptions, schema) -> tuple[pd.DataFrame, list]:
    """Return (id/path/labels frame, label columns) from a labels CSV; checks columns and files."""
    # As text: '007' stays '007' and a label 'NA' stays a label (pandas would read 7 and a missing value).
    raw = read_user_csv(path, dtype=str, keep_default_na=False, sep=sniff_separator(path))
    if pixel_columns(raw.columns):
        return read_pixel_labels(path, raw, opts)
    id_column = opts.id_column or guess_id_column(raw, root, opts.images_dir)
    label_columns = pick_label_columns(raw, id_column, opts, schema, path)
    for column in [id_column, *label_columns] + ([opts.group_column] if opts.group_column else []):
        if column not in raw.columns:
            raise KitError(f"{path}: no column {column!r}: expected one of {', '.join(map(str, raw.columns))}")
    if not label_columns:
        raise KitError(f"{path}: no label column besides the id column {id_column!r}")
    for column in label_columns:  # masks and boxes named first: their empty cells are empty masks, not a fault
        check_classifiable(raw[column], column, path)
    for column in [id_column, *label_columns]:
        empty = raw[column].str.strip() == ""
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            what = "id" if column == id_column else "label"
            raise KitError(f"{path}: empty {what} in column {column!r} at row {row + 2}")
    for column in label_columns:
        check_number_cells(raw[column], column, path)  # nan, inf among numbers: named by row, never a class
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
    # Listed images that are missing are skipped with the corrupt ones, named (or refused: --strict-images).
    frame = pd.DataFrame({"id": ids, "path": resolve_image_paths(images_dir, ids, path, missing_ok=True)})
    for column in label_columns:
        frame[column] = clean_labels(raw[column])
    if opts.group_column:
        frame["group"] = raw[opts.group_column].astype(str)
    return frame, label_columns


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


def pick_label_columns(raw: pd.DataFrame, id_column: str, opts: DataOptions, schema, path: Path) -> list:
    """Return the label columns: --label-column, else the ones the sample submission names, else all the others.

    ISIC 2020's train.csv carries patient_id, sex, age_approx ... beside `target`, and its sample names only
    `target`: the other columns are metadata, said once, never labels (so their empty cells do not matter).
    """
    explicit = [c.strip() for c in opts.label_column.split(",") if c.strip()]
    if explicit:
        return explicit
    others = [c for c in raw.columns if c not in (id_column, opts.group_column)]
    sample = schema.sample if schema is not None else None
    wanted = {str(c).lower() for c in sample.columns[1:]} if sample is not None else set()
    named = [c for c in others if str(c).lower() in wanted]
    if not named:  # the sample names none of them (Id,Category beside filename,label): every column is a label
        return others
    # A column --targets names is a target too (CompCars: make_id beside the sample's model_id), never metadata.
    targets = {c.strip() for c in str(getattr(opts, "targets", "") or "").split(",") if c.strip()}
    named = [c for c in others if c in named or c in targets]
    metadata = [c for c in others if c not in named]
    if metadata:
        print(f"metadata: {', '.join(map(str, metadata))} of {path.name} (not named by {schema.path.name}: "
              "not labels; --targets or --label-column names labels, --group-column a column to group the split "
              "by)")
    return named


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


def check_classifiable(values: pd.Series, column: str, path: Path) -> None:
    """Raise naming the column when it holds a target the kit cannot serve: masks, boxes."""
    text = values.astype(str).str.strip()
    what = ""
    name = str(column).lower()
    if name in ("encodedpixels", "rle", "rle_mask", "mask_rle", "segmentation") or \
            text.str.fullmatch(r"\d+( \d+){3,}").mean() > 0.5:
        what = "run-length encoded masks (segmentation)"
    elif name in ("bbox", "bboxes", "box", "boxes") or \
            text.str.fullmatch(r"\[?\s*[\d.]+(\s*[, ]\s*[\d.]+){3}\s*\]?").mean() > 0.5:
        what = "bounding boxes (detection)"
    # continuous values are a number target (regression): src.data.numbers reads them
    if what:
        masks = "; masks are read as segmentation when the sample submission asks for run-length strings (its " \
                "target column rle, EncodedPixels ...) or with --task segmentation" if "segmentation" in what else ""
        raise KitError(f"{path}: column {column!r} holds {what}; the kit classifies images: it supports one label, "
                       "a class probability, per-class probabilities, top-k labels or space-separated tags per "
                       f"image, or a number (--label-column names the column){masks}")


def is_one_hot(raw: pd.DataFrame, columns: list) -> bool:
    """Return True when two or more columns hold 0/1 with exactly one 1 in every row."""
    if len(columns) < 2 or not raw[columns].isin(["0", "1"]).all().all():
        return False
    return bool((raw[columns].astype(int).sum(axis=1) == 1).all())
