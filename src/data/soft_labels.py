"""Soft training targets: `--soft-labels OOF.csv --soft-weight A` and `--pseudo-soft` (src.data.pseudo_labels).

    python -m src.train --folds 5 --out runs/cv5 ...                      # writes runs/cv5/oof_predictions.csv
    python -m src.train --soft-labels runs/cv5/oof_predictions.csv --soft-weight 0.3 --out runs/soft ...

Each training image's target becomes A x its out-of-fold probabilities + (1 - A) x its one-hot
label (the Plant Pathology 2020 winner mixed 3:7). The targets ride in the split frame's soft_<class>
columns; rows without them (--extra-data images, pseudo-labels without --pseudo-soft) stay one-hot.
Validation targets stay the true labels. The out-of-fold probabilities of a holdout run's training
images come from fold models that trained on its holdout images, so that holdout score is a little
optimistic (said when it happens).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.core.errors import KitError

SOFT_PREFIX = "soft_"  # the split frame's columns of soft targets, one per class: soft_<class value>


def soft_columns(class_map) -> list:
    """Return the split frame's soft-target column names, in class index order."""
    return [f"{SOFT_PREFIX}{v}" for v in class_map.values]


def add_soft_labels(split: pd.DataFrame, comp, cfg) -> pd.DataFrame:
    """Return the split with soft_<class> targets on its competition training rows (--soft-labels, --soft-weight).

    Raises KitError naming the file when a class column is missing or training images have no row in it.
    """
    class_map = comp.class_maps[comp.target]
    oof = pd.read_csv(cfg.soft_labels, dtype={"id": str}, keep_default_na=False)
    probs = [f"prob_{v}" for v in class_map.values]
    missing_columns = [c for c in ["id", *probs] if c not in oof]
    others = [c for c in oof.columns if c.startswith("prob_") and c not in probs]
    if missing_columns or others:
        classes = ", ".join(map(str, class_map.values))
        raise KitError(f"--soft-labels {cfg.soft_labels}: " + (f"no column {missing_columns[0]}" if missing_columns
                       else f"column {others[0]} is no class of {comp.target} ({classes})") + f": expected a K-fold run's oof_predictions.csv for the classes of {comp.target} (id, "
                       "prob_<class> per class)")
    own = (split["split"] == "train") & (split["source"] == "competition" if "source" in split else True)
    ids = split.loc[own, "id"].astype(str)
    table = oof.drop_duplicates("id").set_index("id")
    absent = ids[~ids.isin(table.index)]
    if len(absent):
        raise KitError(f"--soft-labels {cfg.soft_labels}: {len(absent)} of the {len(ids)} training image(s) have "
                       f"no out-of-fold probabilities (first {absent.iloc[0]!r}): expected a K-fold run's "
                       "oof_predictions.csv made on this competition's training images")
    onehot = np.eye(len(class_map.values))[class_map.encode(split.loc[own, comp.target])]
    mixed = cfg.soft_weight * read_probabilities(table.loc[ids, probs], f"--soft-labels {cfg.soft_labels}") + \
        (1 - cfg.soft_weight) * onehot
    out = split.assign(**{c: np.nan for c in soft_columns(class_map) if c not in split})  # pseudo-soft's kept
    out.loc[own, soft_columns(class_map)] = mixed
    print(f"soft labels: {len(ids)} training image(s) learn {cfg.soft_weight:g} x the out-of-fold probabilities of "
          f"{cfg.soft_labels} + {1 - cfg.soft_weight:g} x their labels" +
          ("; the fold models that made them trained on this run's holdout images, so its holdout score is a "
           "little optimistic" if (split["split"] == "val").any() else ""))
    return out


def read_probabilities(table: pd.DataFrame, flag: str) -> np.ndarray:
    """Return the table's prob_<class> columns as floats; refuse, naming the first row, an empty cell, a NaN or a
    row that is no distribution (logits, scores: values outside 0..1, or not summing to 1 within 0.01).

    Why: an empty cell raised pandas' ValueError, NaN rows were trained on as hard labels, logits were mixed in.
    """
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values).all(axis=1)
    why = "a cell that is no number"
    if not bad.any():
        bad = (values < 0).any(axis=1) | (values > 1).any(axis=1) | (np.abs(values.sum(axis=1) - 1) > 0.01)
        why = "no probabilities (each from 0 to 1, summing to 1: not logits or scores)"
    if bad.any():
        first = int(np.argmax(bad))
        cells = ", ".join(f"{c}={v!r}" for c, v in table.iloc[first].items())
        raise KitError(f"{flag}: {int(bad.sum())} row(s) hold {why}; the first: id {table.index[first]!r} ({cells}); "
                       "expected the class probabilities src.train --folds K or src.submit wrote")
    return values


def soft_targets(frame: pd.DataFrame, class_map, target: str) -> np.ndarray | None:
    """Return one float32 target row per frame row (soft_<class> where set, else the one-hot label), or None when
    no row has soft targets (then training takes class indices, as always)."""
    columns = soft_columns(class_map)
    if not set(columns) <= set(frame.columns) or frame[columns].isna().all(axis=None):
        return None
    rows = frame[columns].to_numpy(float)
    hard = np.isnan(rows).any(axis=1)
    rows[hard] = np.eye(len(columns))[class_map.encode(frame.loc[hard, target])]
    return rows.astype(np.float32)
