"""The train/validation split: stratified, seeded, saved as a CSV and reused by every job.

Screening, training and prediction must score on the same held-out images, or their numbers
cannot be compared (and ensembling weights fitted on holdout predictions would leak). So the
split is made once per (data, settings), written to runs/splits/, and read back afterwards.

    split = load_or_make_split(comp, opts)     # id, path, labels, fold, split
    print(split_report(split, comp.target))
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.files import write_csv
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.data.numbers import BINS, number_bins

SPLITS_ROOT = Path("runs") / "splits"


@dataclasses.dataclass
class SplitData:
    """The competition and its split, as every job that trains or scores on the holdout needs them."""

    comp: object                # the Competition
    split: pd.DataFrame         # every training image with its fold and split ('train' / 'val')
    train: pd.DataFrame
    val: pd.DataFrame
    target: str
    class_map: object           # the target column's ClassMap

    @property
    def y_train(self) -> np.ndarray:
        return self.class_map.encode(self.train[self.target])

    @property
    def y_val(self) -> np.ndarray:
        return self.class_map.encode(self.val[self.target])

    @property
    def num_classes(self) -> int:
        return len(self.class_map.values)


def prepare_split(opts: DataOptions, extra=None) -> SplitData:
    """Return the competition's saved split, ready to train on: the one path screening, training and tuning take.

    extra(split, comp) may add rows to training (--extra-data) before the frames are cut.
    """
    comp = load_competition(opts, with_test=False)
    split = load_or_make_split(comp, opts)
    check_both_sides(split, comp, opts)
    if extra is not None:
        split = extra(split, comp)
    train, val = split[split["split"] == "train"], split[split["split"] == "val"]
    return SplitData(comp, split, train, val, comp.target, comp.class_maps[comp.target])


def check_both_sides(split: pd.DataFrame, comp, opts: DataOptions) -> None:
    """Raise when the holdout (or the training side) holds one class only: no metric can rank it (auc is
    undefined, accuracy counts one class), so neither epochs, stages nor a temperature could be chosen on it.

    Why: a --group-column whose positives are all one patient's, or a hand-made --split-file, gave val_auc
    0.0000 every epoch and exit code 0.
    """
    target, class_map = comp.target, comp.class_maps[comp.target]
    if len(class_map.kind.exclusive_classes(class_map)) < 2:  # tags, numbers: no one class per image
        return
    for side in ("val", "train"):
        held = split.loc[split["split"] == side, target]
        if not len(held) or held.nunique() > 1:
            continue
        absent = [str(v) for v in class_map.values if v != held.iloc[0]]
        where = f"--split-file {opts.split_file}" if opts.split_file else str(split_file_for(comp, opts))
        why = (f"--group-column {opts.group_column} keeps each group on one side, and every image of class(es) "
               f"{', '.join(absent)} is in {split.loc[split[target] != held.iloc[0], 'group'].nunique()} group(s): "
               "no split of whole groups can put them on both sides (drop --group-column, or check the column)"
               if opts.group_column and "group" in split else "give a split whose holdout holds every class")
        name = "holdout" if side == "val" else "training side"
        raise KitError(f"split ({where}): the {name} holds class {held.iloc[0]} only ({len(held)} images; none of "
                       f"class(es) {', '.join(absent)}), so no metric can choose epochs, stages or a temperature "
                       f"on it: {why}")


def split_file_for(comp, opts: DataOptions) -> Path:
    """Return where the split for these settings lives: --split-file, else runs/splits/<name>.csv."""
    if opts.split_file:
        return Path(opts.split_file)
    settings = (f"{opts.val_fraction}-{opts.folds}-{opts.group_column}-{opts.min_class_count}-"
                f"{opts.labels_csv}-{opts.label_column}")
    target = comp.class_maps.get(comp.target)  # another kind draws another split: identities whole, bins
    settings += kind_of(target).split_settings(target)
    digest = hashlib.sha1(settings.encode()).hexdigest()[:8]
    return SPLITS_ROOT / f"{comp.root.resolve().name}-seed{opts.seed}-{digest}.csv"


def load_or_make_split(comp, opts: DataOptions) -> pd.DataFrame:
    """Return the split frame; read from its CSV when present (checked), else made and saved."""
    if comp.fixed_split:  # TFRecord shards: one shard set per fold: the split was fixed when they were written
        print(f"split: the folds of the shards in {comp.root}")
        return mark_validation(comp.train.copy(), opts)
    path = split_file_for(comp, opts)
    if path.is_file():
        split = read_split(path, comp)
        print(f"split: reusing {path}")
    else:
        split = make_split(comp.train, comp.target, opts, comp.class_maps[comp.target])
        write_split(split, path, comp.root)
        print(f"split: wrote {path}")
    return mark_validation(split, opts)


def make_split(train: pd.DataFrame, target: str, opts: DataOptions, class_map=None) -> pd.DataFrame:
    """Return train with a `fold` column: K stratified folds, or fold 0 = validation, 1 = training.

    Multi-label targets are stratified by each image's rarest tag, so rare tags reach every side; a number
    target by its quantile bin (src.data.numbers.number_bins).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

    needed = opts.folds if opts.folds > 1 else 2
    # the strata the task kind draws by: classes, each image's rarest tag, a number's quantile bin; or the folds
    # themselves (identities: every one kept, some held out whole)
    kind = kind_of(class_map)
    folds = kind.draw_folds(train, target, opts, class_map)
    if folds is not None:
        return train.assign(fold=folds)
    labels = kind.strata(train, target, opts, class_map, needed)
    fold = np.full(len(train), 1 if opts.folds <= 1 else -1, dtype=int)
    groups = train["group"].to_numpy() if "group" in train else None
    if opts.folds > 1 or groups is not None:
        k = opts.folds if opts.folds > 1 else max(2, round(1 / opts.val_fraction))
        check_group_count(groups, k, opts)
        splitter = (StratifiedGroupKFold(k, shuffle=True, random_state=opts.seed) if groups is not None
                    else StratifiedKFold(k, shuffle=True, random_state=opts.seed))
        for i, (_, val_idx) in enumerate(splitter.split(np.zeros(len(train)), labels, groups)):
            fold[val_idx] = i if opts.folds > 1 else (0 if i == 0 else 1)
    else:
        if not 0 < opts.val_fraction < 1:
            raise KitError(f"--val-fraction {opts.val_fraction}: expected a number between 0 and 1")
        check_holdout_size(len(train), len(set(labels)), opts.val_fraction)
        splitter = StratifiedShuffleSplit(1, test_size=opts.val_fraction, random_state=opts.seed)
        _, val_idx = next(splitter.split(np.zeros(len(train)), labels))
        fold[val_idx] = 0
        fold = hold_out_every_class(fold, labels, opts.seed)
    return train.assign(fold=fold)


def check_group_count(groups, k: int, opts: DataOptions) -> None:
    """Raise naming --group-column, its column and its group count when fewer groups than folds (scikit-learn's
    ValueError otherwise): each fold, or the holdout drawn as one of k, needs a group of its own (src.stack's words)."""
    count = len(np.unique(groups)) if groups is not None else k
    if count >= k:
        return
    if opts.folds > 1:
        folds, fix = f"--folds {k} folds", f"--folds {count} at most"
    else:
        folds, fix = f"the {k} folds a --val-fraction {opts.val_fraction} holdout is drawn from", \
            f"--val-fraction {1 / max(count, 1):.2g} or more"
    fix = fix if count > 1 else "no --group-column: one group cannot be split"
    raise KitError(f"--group-column {opts.group_column}: only {count} group(s) in column {opts.group_column!r} to "
                   f"spread over {folds}: each fold needs whole groups of its own ({fix}, or a column with more "
                   "groups)")


def hold_out_every_class(fold: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Return the folds with one image of each class the holdout lacks swapped in for one of its commonest class.

    Why: StratifiedShuffleSplit rounds a class of 2 images in 50 to none held out (ISIC's rare melanomas),
    and a holdout without a class cannot rank it (auc undefined): the split is stratified where it can be.
    """
    rng, fold = np.random.default_rng(seed), fold.copy()
    for label in sorted(set(labels)):
        if (labels == label).sum() < 2 or ((labels == label) & (fold == 0)).any():
            continue
        held = pd.Series(labels[fold == 0]).value_counts()
        if held.iloc[0] < 2:
            break  # every class held out has one image: none can give one up
        fold[rng.choice(np.flatnonzero((labels == label) & (fold != 0)))] = 0
        fold[rng.choice(np.flatnonzero((labels == held.index[0]) & (fold == 0)))] = 1
    return fold


def check_holdout_size(images: int, classes: int, fraction: float) -> None:
    """Raise naming --val-fraction when it cannot hold out one image of every class and keep one for training.

    scikit-learn's StratifiedShuffleSplit would refuse it with its own words ('test_size = 200 should
    be greater or equal to the number of classes = 500'); this says which values work.
    """
    held_out = math.ceil(fraction * images)
    if classes <= held_out <= images - classes:
        return
    low, high = math.ceil(100 * classes / images) / 100, math.floor(100 * (images - classes) / images) / 100
    works = f"pass --val-fraction from {low:.2f} to {high:.2f}" if low <= high else \
        "pass --min-class-count to drop the rarest classes"
    raise KitError(f"--val-fraction {fraction:g}: holds out {held_out} of {images} images, but a stratified split "
                   f"needs one image of each of the {classes} classes on both sides: {works}")


def label_strata(train: pd.DataFrame, target: str, needed: int) -> np.ndarray:
    """Return one label per image as the strata of its split, after checking each class can reach every side."""
    check_stratifiable(train, target, needed)
    return train[target].astype(str).to_numpy()


def rarest_tag_strata(train: pd.DataFrame, target: str, class_map, needed: int) -> np.ndarray:
    """Return each image's rarest tag as the strata (rare keys pooled), so rare tags reach every side."""
    return pool_rare_keys(class_map.stratify_key(train[target]), needed)


def number_strata(train: pd.DataFrame, target: str, opts: DataOptions, needed: int) -> np.ndarray:
    """Return each image's quantile bin of the number as the strata, fewer bins where the holdout (or a fold) is
    small, so every side sees the number's range."""
    held = math.ceil(opts.val_fraction * len(train)) if opts.folds <= 1 else len(train) // opts.folds
    bins = min(BINS, held, len(train) - held) if opts.folds <= 1 else min(BINS, held)
    return pool_rare_keys(number_bins(train[target], target, bins), needed)


def pool_rare_keys(keys: np.ndarray, needed: int) -> np.ndarray:
    """Return the keys with those under `needed` rows pooled, then the pool joined to the commonest key if small."""
    counts = pd.Series(keys).value_counts()
    keys = np.where(pd.Series(keys).map(counts).to_numpy() < needed, "(rare tags)", keys)
    if (keys == "(rare tags)").sum() < needed:
        keys = np.where(keys == "(rare tags)", counts.index[0], keys)
    return keys


def check_stratifiable(train: pd.DataFrame, target: str, needed: int) -> None:
    """Raise naming the classes with fewer than `needed` images: each fold (or each side) needs one of each."""
    counts = train[target].value_counts()
    small = counts[counts < needed]
    if not small.empty:
        what = f"--folds {needed} needs at least {needed} images per class" if needed > 2 else \
            "they cannot be in both training and validation"
        raise KitError(f"column {target}: class(es) {list(small.index)[:10]} have fewer than {needed} images, so "
                       f"{what}: pass --min-class-count {needed}")


def mark_validation(split: pd.DataFrame, opts: DataOptions) -> pd.DataFrame:
    """Return the split with a `split` column: 'val' for the validation fold, else 'train'."""
    val_fold = max(opts.fold, 0) if opts.folds > 1 else 0  # -1 (every fold) is src.train's; one job, fold 0
    if opts.folds > 1 and not -1 <= opts.fold < opts.folds:
        raise KitError(f"--fold {opts.fold}: expected 0 .. {opts.folds - 1} with --folds {opts.folds}")
    return split.assign(split=np.where(split["fold"] == val_fold, "val", "train"))


def write_split(split: pd.DataFrame, path: Path, root: Path) -> None:
    """Write the split with image paths relative to the data folder, so data can move."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = split.drop(columns=["split"], errors="ignore").copy()
    # Relative to the data folder where possible (a link may point elsewhere: then the path as given).
    out["path"] = [relative_or_absolute(p, root) for p in out["path"]]
    write_csv(path, out)


def relative_or_absolute(path: str, root: Path) -> str:
    """Return path relative to root when it lies inside it (links are not followed), else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(os.path.abspath(root)))
    except ValueError:
        return str(absolute)


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


def split_report(split: pd.DataFrame, target: str, multi_label: bool = False) -> pd.DataFrame:
    """Return images per class (multi-label: per tag) per split (train, val, total), plus a total row."""
    if multi_label:
        split = split.assign(**{target: split[target].astype(str).str.split()}).explode(target)
    table = pd.crosstab(split[target], split["split"]).reindex(columns=["train", "val"], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table
