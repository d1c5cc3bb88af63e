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
    if missing_columns:
        raise KitError(f"--soft-labels {cfg.soft_labels}: no column {missing_columns[0]}: expected a K-fold run's "
                       f"oof_predictions.csv for the classes of {comp.target} (id, prob_<class> per class)")
    own = (split["split"] == "train") & (split["source"] == "competition" if "source" in split else True)
    ids = split.loc[own, "id"].astype(str)
    table = oof.drop_duplicates("id").set_index("id")
    absent = ids[~ids.isin(table.index)]
    if len(absent):
        raise KitError(f"--soft-labels {cfg.soft_labels}: {len(absent)} of the {len(ids)} training image(s) have "
                       f"no out-of-fold probabilities (first {absent.iloc[0]!r}): expected a K-fold run's "
                       "oof_predictions.csv made on this competition's training images")
    onehot = np.eye(len(class_map.values))[class_map.encode(split.loc[own, comp.target])]
    mixed = cfg.soft_weight * table.loc[ids, probs].to_numpy(float) + (1 - cfg.soft_weight) * onehot
    out = split.assign(**{c: np.nan for c in soft_columns(class_map) if c not in split})  # pseudo-soft's kept
    out.loc[own, soft_columns(class_map)] = mixed
    print(f"soft labels: {len(ids)} training image(s) learn {cfg.soft_weight:g} x the out-of-fold probabilities of "
          f"{cfg.soft_labels} + {1 - cfg.soft_weight:g} x their labels" +
          ("; the fold models that made them trained on this run's holdout images, so its holdout score is a "
           "little optimistic" if (split["split"] == "val").any() else ""))
    return out


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
