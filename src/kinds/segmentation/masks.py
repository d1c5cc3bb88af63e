"""A labels CSV (or a folder of mask files) read into per-image masks, in each layout Kaggle uses.

    table = read_masks("data/severstal/train.csv", "data/severstal/train_images")
    print(table.describe())            # train.csv: one row per image and class (ImageId, ClassId, EncodedPixels) ...
    table.ids, table.classes           # image ids in file order; class names in channel order
    mask = table.mask(table.ids[0])    # (height, width, classes) uint8, 1 inside

The layout is told from the columns:
  image        one row per image: `id,rle`; HuBMAP's `id,organ,img_height,img_width,rle` (sizes from the columns);
               several rows for one image (Airbus: one ship each) are merged
  image_class  one row per image and class: Severstal's `ImageId,ClassId,EncodedPixels` (or its first release's
               `ImageId_ClassId`), UW-Madison's `id,class,segmentation`
  files        a folder of mask images beside the images: `train_masks/NAME_mask.gif` (Carvana) or `NAME.png`
An empty cell, NaN or -1 is an empty mask. A CSV with no empty cell lists only the masks (Severstal): the
images of images_dir it does not name are then its empty masks. Runs are column-major unless the columns are
a competition known to write row-major (Carvana, UW-Madison) or the caller says so. A mask's size comes from
the size columns, else `size` (a (height, width) or a function of the id), else its image file; a mask whose
size differs from its image is a KitError naming the row (or the mask file).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from src.core.errors import KitError
from src.kinds.segmentation.rle import decode, is_empty, numpy_order

ID_COLUMNS = ("id", "imageid", "image_id", "img", "image", "img_id", "image_name", "filename", "file_name")
RLE_COLUMNS = ("rle", "encodedpixels", "encoded_pixels", "encoding", "rle_mask", "mask_rle", "segmentation",
               "annotation")
CLASS_COLUMNS = ("classid", "class_id", "class", "category", "category_id")
HEIGHT_COLUMNS, WIDTH_COLUMNS = ("img_height", "image_height", "height"), ("img_width", "image_width", "width")
COMBINED_COLUMN = "imageid_classid"  # Severstal's first release: "0002cc93b.jpg_1" in one cell
ROW_MAJOR = {("img", "rle_mask"): "Carvana", ("id", "class", "segmentation"): "UW-Madison"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp", ".webp")
MASK_NAMES = ("{stem}_mask{suffix}", "{stem}{suffix}")  # Carvana's train_masks/NAME_mask.gif, else the same stem
LAYOUTS = {"image": "one row per image", "image_class": "one row per image and class",
           "files": "mask files beside the images"}


@dataclasses.dataclass
class MaskTable:
    """The masks of a competition: ids, class names, and `mask(id)` building one image's (H, W, C) mask."""

    source: Path
    layout: str                 # image | image_class | files (LAYOUTS)
    ids: list                   # image ids, in the file's order (then the unlisted images, sorted)
    classes: list               # class names, in channel order
    columns: tuple = ()         # the columns read, as the file spells them
    order: str = "column"       # the runs' order: column | row
    why_order: str = ""         # "Carvana's layout" when the columns chose row-major
    rows: dict = dataclasses.field(default_factory=dict)   # id -> [(channel, run-length text, file row)]
    sizes: dict = dataclasses.field(default_factory=dict)  # id -> ((height, width), file row), from the columns
    images_dir: Path | None = None
    size: tuple | Callable | None = None
    unlisted: int = 0           # images without rows, taken as empty masks

    def mask(self, image_id: str) -> np.ndarray:
        """Return the (height, width, classes) uint8 mask of one image: 1 inside, a channel per class."""
        if image_id not in self.rows:
            raise KitError(f"{self.source}: no image {image_id!r} among its {len(self.ids)} images")
        if self.layout == "files":
            return read_mask_file(self.rows[image_id], self.images_dir / image_id)[..., None]
        shape = self.image_size(image_id)
        mask = np.zeros((*shape, len(self.classes)), np.uint8)
        for channel, text, row in self.rows[image_id]:
            where = f"{self.source}: row {row} (id {image_id!r})"
            mask[..., channel] |= decode(text, shape, self.order, where)
        return mask

    def image_size(self, image_id: str) -> tuple[int, int]:
        """Return (height, width) of an image: its size columns (checked against its file), `size`, its file."""
        path = find_image(self.images_dir, image_id)
        if image_id in self.sizes:
            shape, row = self.sizes[image_id]
            actual = file_size(path) if path is not None else shape
            if actual != shape:
                raise KitError(f"{self.source}: row {row} (id {image_id!r}) gives the mask size {shape[0]}x{shape[1]} "
                               f"(height x width), but {path} is {actual[0]}x{actual[1]}")
            return shape
        if self.size is not None:
            return tuple(self.size(image_id) if callable(self.size) else self.size)
        if path is None:
            first = self.rows[image_id][0][2] if self.rows[image_id] else "-"
            raise KitError(f"{self.source}: row {first} (id {image_id!r}): no mask size: expected img_height and "
                           f"img_width columns, a size, or the image in --images-dir ({self.images_dir or 'not given'})")
        return file_size(path)

    def describe(self) -> str:
        """Return the layout in one line: file, layout, columns, images, classes, run order, unlisted images."""
        columns = f" ({', '.join(self.columns)})" if self.columns else ""
        classes = f"{len(self.classes)} class{'es' if len(self.classes) > 1 else ''} ({', '.join(self.classes)})"
        order = "" if self.layout == "files" else \
            f", {self.order}-major runs{f' ({self.why_order})' if self.why_order else ''}"
        unlisted = f", {self.unlisted} image{'s' if self.unlisted > 1 else ''} without rows taken as empty masks" \
            if self.unlisted else ""
        return f"{self.source.name}: {LAYOUTS[self.layout]}{columns}: {len(self.ids)} images, {classes}{order}{unlisted}"


def read_masks(source, images_dir=None, order: str = "auto", size=None, unlisted_empty: bool | None = None):
    """Return the MaskTable of a labels CSV or a mask folder; the layout is told from its columns.

    order: auto (row-major for the competitions known to write it, else column-major), column or row.
    unlisted_empty: images of images_dir without rows are empty masks; None: when the CSV has no empty cell.
    """
    source, images_dir = Path(source), Path(images_dir) if images_dir else None
    if source.is_dir():
        return read_mask_folder(source, images_dir)
    if not source.is_file():
        raise KitError(f"{source}: no such labels CSV or mask folder")
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    names = {column.strip().lower(): column for column in frame.columns}
    table = MaskTable(source, "image", [], ["mask"], images_dir=images_dir, size=size)
    table.order, table.why_order = choose_order(order, names)
    image_ids, classes, texts, columns = read_columns(frame, names, source)
    table.columns = columns
    if classes is not None:
        table.layout, table.classes = "image_class", sorted_classes(classes)
    channel = {name: index for index, name in enumerate(table.classes)}
    for index, (image_id, text) in enumerate(zip(image_ids, texts)):
        found = table.rows.setdefault(image_id, [])
        if not is_empty(text):
            found.append((channel[classes[index]] if classes is not None else 0, text, index + 2))
    table.ids = list(table.rows)
    table.sizes = read_sizes(frame, names, image_ids, source)
    if table.sizes:
        table.columns += (pick(names, HEIGHT_COLUMNS), pick(names, WIDTH_COLUMNS))
    only_masks = not any(is_empty(text) for text in texts)  # Severstal lists only the pairs with a mask
    if only_masks if unlisted_empty is None else unlisted_empty:
        add_unlisted(table)
    return table


def choose_order(order: str, names: dict) -> tuple[str, str]:
    """Return (order, why): the caller's, else row-major for a known row-major competition's columns."""
    if order != "auto":
        numpy_order(order)  # a KitError for another name
        return order, ""
    for columns, competition in ROW_MAJOR.items():
        if set(columns) <= set(names):
            return "row", f"{competition}'s layout"
    return "column", ""


def read_columns(frame: pd.DataFrame, names: dict, source: Path) -> tuple[list, list | None, list, tuple]:
    """Return (image ids, class of each row or None, run-length texts, the columns read) of a labels CSV."""
    rle = pick(names, RLE_COLUMNS)
    if rle is None:
        raise KitError(f"{source}: no run-length column among {', '.join(frame.columns)}: expected one of "
                       f"{', '.join(RLE_COLUMNS)} (case-insensitive)")
    texts = frame[rle].tolist()
    if COMBINED_COLUMN in names:  # "IMAGE_CLASS" in one cell
        combined = names[COMBINED_COLUMN]
        parts = [cell.rpartition("_") for cell in frame[combined]]
        for row, (image_id, sep, _) in enumerate(parts):
            if not sep or not image_id:
                raise KitError(f"{source}: row {row + 2}, column {combined}: {frame[combined].iloc[row]!r}: "
                               "expected IMAGE_CLASS (an image id, an underscore, a class)")
        return [p[0] for p in parts], [p[2] for p in parts], texts, (combined, rle)
    image = pick(names, ID_COLUMNS)
    if image is None:
        raise KitError(f"{source}: no image id column among {', '.join(frame.columns)}: expected one of "
                       f"{', '.join(ID_COLUMNS)} (case-insensitive)")
    label = pick(names, CLASS_COLUMNS)
    classes = frame[label].str.strip().tolist() if label else None
    columns = (image, label, rle) if label else (image, rle)
    return frame[image].str.strip().tolist(), classes, texts, columns


def pick(names: dict, candidates: tuple) -> str | None:
    """Return the file's spelling of the first candidate column it has (names: lower-case -> as spelled)."""
    return next((names[c] for c in candidates if c in names), None)


def sorted_classes(classes: list) -> list:
    """Return the distinct class names in channel order: by number when all are whole numbers (Severstal's 1-4)."""
    distinct = set(classes)
    if all(c.isdigit() for c in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def read_sizes(frame: pd.DataFrame, names: dict, image_ids: list, source: Path) -> dict:
    """Return {id: ((height, width), file row)} from the size columns; {} when the CSV has none."""
    height, width = pick(names, HEIGHT_COLUMNS), pick(names, WIDTH_COLUMNS)
    if height is None or width is None:
        return {}
    sizes = {}
    for row, (image_id, h, w) in enumerate(zip(image_ids, frame[height], frame[width])):
        for column, value in ((height, h), (width, w)):
            if not value.strip().isdigit() or int(value) < 1:
                raise KitError(f"{source}: row {row + 2} (id {image_id!r}), column {column}: {value!r}: expected the "
                               "image's side in pixels, a whole number of at least 1")
        sizes.setdefault(image_id, ((int(h), int(w)), row + 2))
    return sizes


def add_unlisted(table: MaskTable) -> None:
    """Add the images of images_dir the CSV does not name to table.ids, with no runs (empty masks).

    The ids are matched as the CSV writes them: file names (Severstal's "0002cc93b.jpg") or stems.
    """
    if table.images_dir is None or not table.images_dir.is_dir():
        return
    files = [p for p in sorted(table.images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    with_suffix = any((table.images_dir / image_id).is_file() for image_id in table.ids[:20])
    for path in files:
        image_id = path.name if with_suffix else path.stem
        if image_id not in table.rows:
            table.rows[image_id] = []
            table.ids.append(image_id)
            table.unlisted += 1


def read_mask_folder(folder: Path, images_dir: Path | None) -> MaskTable:
    """Return the MaskTable of mask files: one per image of images_dir, NAME_mask.EXT or NAME.EXT in `folder`."""
    if images_dir is None or not images_dir.is_dir():
        raise KitError(f"{folder}: a folder of mask files needs the folder of their images (--images-dir); got "
                       f"{images_dir or 'none'}")
    masks = {p.name: p for p in folder.iterdir()}
    table = MaskTable(folder, "files", [], ["mask"], images_dir=images_dir)
    for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        tried = [name.format(stem=image.stem, suffix=s) for name in MASK_NAMES for s in IMAGE_SUFFIXES]
        found = next((masks[name] for name in tried if name in masks), None)
        if found is None:
            raise KitError(f"{folder}: no mask for image {image.name}: expected {image.stem}_mask.png or .gif "
                           f"(or {image.stem}.png) there")
        table.rows[image.name] = found
        table.ids.append(image.name)
    return table


def read_mask_file(path: Path, image: Path) -> np.ndarray:
    """Return a mask file as a (height, width) uint8 0/1 array, checked to be its image's size.

    Inside is above half the file's largest value: 0/1 palettes (Carvana's GIFs), 0/255 PNGs and a JPEG's
    noise around them all read the same.
    """
    with Image.open(path) as img:
        values = np.asarray(img.convert("L") if img.mode not in ("L", "P", "1", "I", "I;16") else img)
    expected = file_size(image)
    if values.shape != expected:
        raise KitError(f"{path}: the mask is {values.shape[0]}x{values.shape[1]} (height x width), but its image "
                       f"{image} is {expected[0]}x{expected[1]}")
    return (values > values.max() / 2).astype(np.uint8) if values.max() > 0 else np.zeros(values.shape, np.uint8)


def find_image(folder: Path | None, image_id: str) -> Path | None:
    """Return the image file of an id written with or without its suffix, or None (no folder, no file)."""
    if folder is None:
        return None
    for path in [folder / image_id] + [folder / f"{image_id}{s}" for s in IMAGE_SUFFIXES]:
        if path.is_file():
            return path
    return None


def file_size(path: Path) -> tuple[int, int]:
    """Return an image file's (height, width), read from its header (HuBMAP's large TIFFs are not decoded)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # a header read is no decompression bomb
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    finally:
        Image.MAX_IMAGE_PIXELS = limit
