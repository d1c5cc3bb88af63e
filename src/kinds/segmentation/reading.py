"""Segmentation competitions read: the sample asks for run-length masks, a labels CSV (or mask files) holds them.

    found = read_mask_labels(root, opts, schema)   # (layout, frame of id/path/<target>, [target]) or None
    table = mask_table(root)                       # the MaskTable read with them (src.kinds.segmentation.masks)
    why = sample_rows(sample)                      # 'a row per image and class (ClassId)' or ''

The kind reads a folder when its sample submission's target column holds run-length strings (by its name, rle,
EncodedPixels ..., or by its values), or when --task segmentation says so, and the masks are found: a labels CSV
with a run-length column (HuBMAP's id,organ,img_height,img_width,rle; Severstal's ImageId,ClassId,EncodedPixels)
or a folder of mask files beside the images (train_masks/). The frame has one row per image, its target column
the classes its mask holds, space-separated ('' for an image without a mask): what the split is stratified by
and the task line counts. The masks themselves stay in the MaskTable, kept here per data folder for this process
(every job reads the competition, so the labels, before it asks for a mask).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.data.label_tables import find_labels_csv
from src.data.layout import TRAIN_FOLDERS, find_images_dir, resolve_image_paths
from src.data.splits import pool_rare_keys
from src.kinds.segmentation.masks import CLASS_COLUMNS, RLE_COLUMNS, find_image, pick, read_masks
from src.kinds.segmentation.rle import is_empty, parse_runs

TABLES: dict = {}  # resolved data folder -> the MaskTable its labels were read into, in this process
MASK_FOLDERS = ("train_masks", "masks", "train_mask")
RUNS = r"\d+ \d+( \d+ \d+)*"  # a run-length string: pairs of start and length
NO_MASK = "(empty)"  # how the counts and the split name an image whose mask is empty (one word: counted as a tag)


def asks_for_masks(schema) -> bool:
    """Return True when the sample submission's target column holds run-length strings: by its name (rle,
    EncodedPixels ...), or every written value a run-length string (empty cells and -1 are empty masks)."""
    if schema is None or schema.sample is None:
        return False
    if str(schema.target_column).strip().lower() in RLE_COLUMNS:
        return True
    values = schema.sample[schema.target_column].astype(str).str.strip()
    written = values[~values.map(is_empty)]
    return bool(len(written)) and bool(written.str.fullmatch(RUNS).all())


def sample_rows(sample: pd.DataFrame) -> str:
    """Return why a sample lists an image on several rows when it is a row per image and class (Severstal's
    ImageId,EncodedPixels,ClassId, each pair once), else ''."""
    names = {str(column).strip().lower(): column for column in sample.columns}
    label = pick(names, CLASS_COLUMNS)
    if pick(names, RLE_COLUMNS) is None or label is None or sample.duplicated([sample.columns[0], label]).any():
        return ""
    return f"a row per image and class ({label})"


def sample_class_column(sample: pd.DataFrame) -> str | None:
    """Return the sample's class column (a row per image and class), or None (a row per image)."""
    names = {str(column).strip().lower(): column for column in sample.columns}
    return pick(names, CLASS_COLUMNS) if sample_rows(sample) else None


def mask_folder(root: Path) -> Path | None:
    """Return the folder of mask files beside the images (train_masks/), or None."""
    return next((root / name for name in MASK_FOLDERS if (root / name).is_dir()), None)


def image_folder(root: Path, images_dir: str) -> Path:
    """Return the training images' folder for mask files: --images-dir, else the first usual name that exists."""
    if images_dir:
        return Path(images_dir) if Path(images_dir).is_dir() else root / images_dir
    found = next((root / name for name in TRAIN_FOLDERS if (root / name).is_dir()), None)
    if found is None:
        raise KitError(f"{root}: mask files but no training images: expected a folder {', '.join(TRAIN_FOLDERS)} "
                       "(or --images-dir)")
    return found


def masks_csv(root: Path, opts, schema) -> Path | None:
    """Return the labels CSV when it has a run-length column (rle, EncodedPixels ...), else None."""
    path = find_labels_csv(root, opts.labels_csv, schema, opts.label_column)
    names = {str(c).strip().lower() for c in pd.read_csv(path, nrows=0).columns}
    return path if names & set(RLE_COLUMNS) else None


def read_mask_labels(root: Path, opts, schema):
    """Return (layout, frame of id/path/<target>, [target]) when the folder is a segmentation competition, else None.

    The target column (the sample's, else the CSV's run-length column) holds each image's classes present.
    """
    key = str(Path(root).resolve())
    TABLES.pop(key, None)
    asked = getattr(opts, "task", "") == "segmentation"
    if not (asks_for_masks(schema) or asked):
        return None
    folder = mask_folder(root)
    source = masks_csv(root, opts, schema) if folder is None else folder
    if source is None:
        if asked:
            raise KitError(f"--task segmentation: no masks in {root}: expected a labels CSV with a run-length column "
                           f"({', '.join(RLE_COLUMNS[:3])} ...) or a folder of mask files ({MASK_FOLDERS[0]}/)")
        return None  # a run-length sample without masks: read as labels are (which names what is missing)
    if opts.group_column:
        raise KitError(f"--group-column {opts.group_column}: a segmentation split is stratified by the classes each "
                       "mask holds; groups are not read for masks yet: leave --group-column out")
    if folder is not None:
        images_dir = image_folder(root, opts.images_dir)
    else:
        first = read_masks(source)  # its ids, to find the folder they name
        images_dir = find_images_dir(root, opts.images_dir, pd.Series(first.ids, dtype=str), source)
    table = read_masks(source, images_dir)
    check_strings(table)
    print(f"masks: {table.describe()}; images in {images_dir}")
    column = schema.target_column if schema is not None else next(
        (c for c in table.columns if str(c).strip().lower() in RLE_COLUMNS), "mask")
    frame = pd.DataFrame({"id": table.ids,
                          "path": resolve_image_paths(images_dir, pd.Series(table.ids, dtype=str), source,
                                                      missing_ok=True),
                          column: [present(table, image_id) for image_id in table.ids]})
    TABLES[key] = table
    return ("files" if folder is not None else "csv"), frame, [column]


def check_strings(table) -> None:
    """Refuse the first run-length string that does not fit its image (its size, the order), naming its file and row:
    read now, before a model is built, not when training first asks for its mask. Images without a file are left to
    the image check (skipped, named)."""
    for image_id in table.ids if table.layout != "files" else ():
        rows = table.rows[image_id]
        if not rows or (image_id not in table.sizes and find_image(table.images_dir, image_id) is None):
            continue
        pixels = int(np.prod(table.image_size(image_id)))
        for _, text, row in rows:
            parse_runs(text, pixels, f"{table.source}: row {row} (id {image_id!r})")


def present(table, image_id: str) -> str:
    """Return the classes an image's mask holds, space-separated ('' for none); mask files are taken as holding one."""
    if table.layout == "files":
        return table.classes[0]
    channels = sorted({channel for channel, _, _ in table.rows[image_id]})
    return " ".join(str(table.classes[c]) for c in channels)


def mask_table(root):
    """Return the MaskTable read with the competition in `root` (load_competition reads it first)."""
    key = str(Path(root).resolve())
    if key not in TABLES:
        raise KitError(f"{root}: its masks were not read: load the competition (src.data.competition) first")
    return TABLES[key]


def has_masks(opts) -> bool:
    """Return True when the competition in opts.data was read as masks by this process's last reading of it."""
    return str(Path(opts.data).resolve()) in TABLES


def mask_strata(train: pd.DataFrame, target: str, needed: int) -> np.ndarray:
    """Return each image's classes present (or NO_MASK) as the strata, rare combinations pooled, so every side of
    the split sees empty masks and each class."""
    keys = train[target].astype(str).str.strip().replace("", NO_MASK).to_numpy()
    return pool_rare_keys(keys, needed)


def empty_token(sample: pd.DataFrame, column: str) -> str:
    """Return how the sample writes an empty mask: '-1' when it does so, else an empty cell."""
    return "-1" if (sample[column].astype(str).str.strip() == "-1").any() else ""
