"""The train/validation split: stratified, seeded, saved as a CSV and reused by every job.

Screening, training and prediction must score on the same held-out images, or their numbers
cannot be compared (and ensembling weights fitted on holdout predictions would leak). So the
split is made once per (data, settings), written to runs/splits/, and read back afterwards.

    split = load_or_make_split(comp, opts)     # id, path, labels, fold, split
    print(split_report(split, comp.target))
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from src.config import DataOptions
from src.errors import KitError

SPLITS_ROOT = Path("runs") / "splits"


def split_file_for(comp, opts: DataOptions) -> Path:
    """Return where the split for these settings lives: --split-file, else runs/splits/<name>.csv."""
    if opts.split_file:
        return Path(opts.split_file)
    settings = (f"{opts.val_fraction}-{opts.folds}-{opts.group_column}-{opts.min_class_count}-"
                f"{opts.labels_csv}-{opts.label_column}")
    digest = hashlib.sha1(settings.encode()).hexdigest()[:8]
    return SPLITS_ROOT / f"{comp.root.resolve().name}-seed{opts.seed}-{digest}.csv"


def load_or_make_split(comp, opts: DataOptions) -> pd.DataFrame:
    """Return the split frame; read from its CSV when present (checked), else made and saved."""
    if comp.layout == "tfrecords":  # one shard set per fold: the split was fixed when they were written
        print(f"split: the folds of the shards in {comp.root}")
        return mark_validation(comp.train.copy(), opts)
    path = split_file_for(comp, opts)
    if path.is_file():
        split = read_split(path, comp)
        print(f"split: reusing {path}")
    else:
        split = make_split(comp.train, comp.target, opts)
        write_split(split, path, comp.root)
        print(f"split: wrote {path}")
    return mark_validation(split, opts)


def make_split(train: pd.DataFrame, target: str, opts: DataOptions) -> pd.DataFrame:
    """Return train with a `fold` column: K stratified folds, or fold 0 = validation, 1 = training."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

    labels = train[target].astype(str).to_numpy()
    check_stratifiable(train, target, max(opts.folds, 2))
    fold = np.full(len(train), 1 if opts.folds <= 1 else -1, dtype=int)
    groups = train["group"].to_numpy() if "group" in train else None
    if opts.folds > 1 or groups is not None:
        k = opts.folds if opts.folds > 1 else max(2, round(1 / opts.val_fraction))
        splitter = (StratifiedGroupKFold(k, shuffle=True, random_state=opts.seed) if groups is not None
                    else StratifiedKFold(k, shuffle=True, random_state=opts.seed))
        for i, (_, val_idx) in enumerate(splitter.split(np.zeros(len(train)), labels, groups)):
            fold[val_idx] = i if opts.folds > 1 else (0 if i == 0 else 1)
    else:
        if not 0 < opts.val_fraction < 1:
            raise KitError(f"--val-fraction {opts.val_fraction}: expected a number between 0 and 1")
        splitter = StratifiedShuffleSplit(1, test_size=opts.val_fraction, random_state=opts.seed)
        _, val_idx = next(splitter.split(np.zeros(len(train)), labels))
        fold[val_idx] = 0
    return train.assign(fold=fold)


def check_stratifiable(train: pd.DataFrame, target: str, needed: int) -> None:
    """Raise naming the classes too small to appear on both sides of the split."""
    counts = train[target].value_counts()
    small = counts[counts < 2]
    if not small.empty:
        raise KitError(f"column {target}: class(es) {list(small.index)[:10]} have a single image, "
                       f"so they cannot be in both training and validation: pass --min-class-count 2")


def mark_validation(split: pd.DataFrame, opts: DataOptions) -> pd.DataFrame:
    """Return the split with a `split` column: 'val' for the validation fold, else 'train'."""
    val_fold = opts.fold if opts.folds > 1 else 0
    if opts.folds > 1 and not 0 <= opts.fold < opts.folds:
        raise KitError(f"--fold {opts.fold}: expected 0 .. {opts.folds - 1} with --folds {opts.folds}")
    return split.assign(split=np.where(split["fold"] == val_fold, "val", "train"))


def write_split(split: pd.DataFrame, path: Path, root: Path) -> None:
    """Write the split with image paths relative to the data folder, so data can move."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = split.drop(columns=["split"], errors="ignore").copy()
    out["path"] = [str(Path(p).resolve().relative_to(root.resolve())) for p in out["path"]]
    out.to_csv(path, index=False)


def read_split(path: Path, comp) -> pd.DataFrame:
    """Return a saved split joined onto the competition's current training rows (checked to match)."""
    saved = pd.read_csv(path, dtype={"id": str})
    if "id" not in saved or "fold" not in saved:
        raise KitError(f"{path}: not a split file: expected columns id and fold")
    now = set(comp.train["id"].astype(str))
    before = set(saved["id"])
    if now != before:
        raise KitError(f"{path} was made for other training images ({len(now ^ before)} ids differ): "
                       "delete it or pass another --split-file")
    folds = saved.set_index("id")["fold"]
    return comp.train.assign(fold=comp.train["id"].astype(str).map(folds).astype(int).to_numpy())


def split_report(split: pd.DataFrame, target: str) -> pd.DataFrame:
    """Return images per class per split (train, val, total), one row per class plus a total row."""
    table = pd.crosstab(split[target], split["split"]).reindex(columns=["train", "val"], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table
