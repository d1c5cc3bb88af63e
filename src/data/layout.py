"""Where a competition's training images are and how their files are named.

Class folders (train/<class>/*.jpg), labels in flat file names (Dogs vs. Cats: train/cat.0.jpg),
and the folder a labels CSV's ids resolve in; every id becomes one file path or an error naming it.

    folder = find_class_folders(root, "")          # train/ when it holds class folders, else None
    paths = resolve_image_paths(folder, ids, csv)  # one file per id, with or without its extension
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from src.core.errors import KitError
from src.data.imagefiles import IMAGE_EXTENSIONS, list_folder

TRAIN_FOLDERS = ("train", "training", "train_images", "train_data", "images", "imgs")
ID_SAMPLE = 20  # ids tried in each candidate folder when looking for the one a table's ids name


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


def candidate_folders(root: Path) -> list:
    """Return where a competition's images may sit: the usual names, the root, every other subfolder, nested twins."""
    usual = [root / n for n in TRAIN_FOLDERS]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p not in usual and not p.name.startswith("."))
    folders = usual + [root] + others
    twins = [f / f.name for f in usual + others]
    return folders + twins + [f for f in nested_folders(usual + others) if f not in twins]


def nested_folders(folders: list, most: int = 10) -> list:
    """Return the subfolders of each folder that has at most `most` of them: images one level further down.

    ISIC 2024 keeps its images in train-image/image/ and test-image/image/; a folder of many subfolders
    (class folders, one folder per patient) is not a place to look one by one.
    """
    found = []
    for folder in (f for f in folders if f.is_dir()):
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        found += subfolders if len(subfolders) <= most else []
    return found


def image_folder_for(root: Path, images_dir: str, ids: pd.Series) -> Path | None:
    """Return the folder where most of the first ids resolve to files (more than half of them), or None.

    Not all of them: a labels CSV may list a few images its folder lacks (they are skipped later, named).
    """
    folders = [Path(images_dir) if Path(images_dir).is_dir() else root / images_dir] if images_dir else \
        candidate_folders(root)
    sample = list(ids.head(ID_SAMPLE))
    hits = [(sum(resolve_one(f, i) is not None for i in sample), f) for f in folders if f.is_dir()]
    best = max(hits, key=lambda hit: hit[0], default=(0, None))  # max keeps the first of equal counts
    return best[1] if best[0] * 2 > len(sample) else None


def find_images_dir(root: Path, images_dir: str, ids: pd.Series, csv_path: Path) -> Path:
    """Return the folder where most of the CSV's first ids resolve to files (--images-dir wins)."""
    if images_dir:
        folder = Path(images_dir) if Path(images_dir).is_dir() else root / images_dir
        if not folder.is_dir():
            raise KitError(f"--images-dir {images_dir}: no such folder")
        return folder
    folder = image_folder_for(root, "", ids)
    if folder is not None:
        return folder
    raise KitError(f"{csv_path}: cannot find the images its ids name (first: {ids.iloc[0]!r}): no folder under "
                   f"{root} holds most of its first {min(len(ids), ID_SAMPLE)} ids: pass --images-dir")


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


def resolve_image_paths(folder: Path, ids: pd.Series, source: Path, missing_ok: bool = False) -> list[str]:
    """Return the file path of every id; a missing file raises naming the id, row and folder.

    missing_ok: a missing file's path is the id in `folder`, left for the image check to skip or refuse
    (training rows); a submission needs every test image, so the test set never passes it.
    """
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
        if path is None and missing_ok:
            path = folder / image_id
        elif path is None:
            raise KitError(f"{source}: row {row + 2} names image {image_id!r}, but no such file is in "
                           f"{folder} (tried the name as is and with {', '.join(IMAGE_EXTENSIONS)})")
        paths.append(str(path))
    return paths
