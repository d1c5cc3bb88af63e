"""Pseudo-labels: confidently predicted test images added to training only (`--pseudo-labels FILE`).

    python -m src.submit ... --name first             # writes submissions/first.csv and first.probs.csv
    python -m src.train ... --pseudo-labels submissions/first.csv --pseudo-threshold 0.95

A test image whose most probable class has at least --pseudo-threshold probability joins the
training images with that class (--pseudo-soft: with its probabilities as the target). Never a holdout or a fold's validation image: the split is
made from the competition's own training images, so the same holdout says whether they helped
(submit's holdout table counts each run's pseudo-labelled images, as it counts extra images).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.data.competition import load_competition
from src.data.soft_labels import SOFT_PREFIX, read_probabilities

PROBS_SUFFIX = ".probs.csv"  # written by src.inference.submission beside NAME.csv


def probabilities_file(path: str) -> Path:
    """Return the test probabilities for a submission: NAME.probs.csv beside NAME.csv, or the file itself."""
    given = Path(path)
    stem = str(given)[:-4] if given.suffix == ".csv" else str(given)
    candidates = [given] if given.name.endswith(PROBS_SUFFIX) else [Path(stem + PROBS_SUFFIX)]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise KitError(f"--pseudo-labels {path}: no test probabilities ({candidates[-1].name}) beside it: "
                       "give a submission written by python -m src.submit, which writes them")
    return found


def add_pseudo_labels(split: pd.DataFrame, comp, cfg) -> pd.DataFrame:
    """Return the split with the confidently predicted test images added to training (source 'pseudo')."""
    probs = pd.read_csv(probabilities_file(cfg.pseudo_labels), dtype={"id": str}, keep_default_na=False)
    class_map = comp.class_maps[comp.target]
    columns = [f"prob_{v}" for v in class_map.values]
    missing = [c for c in columns if c not in probs]
    if missing:
        raise KitError(f"--pseudo-labels {cfg.pseudo_labels}: no column {missing[0]} (the file is for other classes)")
    test = load_competition(cfg).test
    if test is None:
        raise KitError(f"--pseudo-labels: {comp.root} has no test images to pseudo-label")
    rows = test.set_index(test["id"].astype(str))
    named = probs[probs["id"].isin(rows.index)]
    if named.empty:
        raise KitError(f"--pseudo-labels {cfg.pseudo_labels}: none of its {len(probs)} id(s) is a test image of "
                       f"{comp.root} (first {probs['id'].iloc[0] if len(probs) else 'none'!r}; the test's first "
                       f"{rows.index[0]!r}): expected a submission of this competition's test images")
    probs = named
    values = read_probabilities(probs.set_index("id")[columns], f"--pseudo-labels {cfg.pseudo_labels}")
    confident = values.max(axis=1) >= cfg.pseudo_threshold
    chosen = probs[confident]
    picked = rows.loc[chosen["id"]]
    added = pd.DataFrame({"id": "pseudo/" + chosen["id"].to_numpy(), "path": picked["path"].to_numpy(),
                          comp.target: class_map.decode(values[confident].argmax(axis=1)),
                          "width": picked["width"].to_numpy(), "height": picked["height"].to_numpy(),
                          "orientation": picked["orientation"].to_numpy(), "fold": -1, "split": "train",
                          "source": "pseudo"})
    if cfg.pseudo_soft:  # the probabilities themselves are the targets (src.data.soft_labels)
        added = added.assign(**{f"{SOFT_PREFIX}{v}": values[confident][:, i] for i, v in enumerate(class_map.values)})
    print(f"pseudo-labels: {len(added)} of {len(probs)} test image(s) at probability >= {cfg.pseudo_threshold:g} "
          f"added to training only ({np.unique(added[comp.target].astype(str)).size} class(es)" +
          (", their probabilities as targets (--pseudo-soft))" if cfg.pseudo_soft else ")"))
    base = split if "source" in split else split.assign(source="competition")
    return pd.concat([base, added], ignore_index=True)
