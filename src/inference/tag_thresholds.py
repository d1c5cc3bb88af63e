"""Tags (multi-label): a threshold per tag fitted on the holdout for the metric, and the per-tag report.

    fmt, row = fit_tag_thresholds(fmt, holdout_probs, y, "f2_samples")   # the thresholds the submission writes by
    table = tag_table(holdout_probs, y, tags, fmt.thresholds)            # threshold, images, precision, recall
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from src.inference.formats import SubmissionFormat
from src.inference.metrics import fit_thresholds, score


def fit_tag_thresholds(fmt: SubmissionFormat, probs: np.ndarray, y: np.ndarray, metric: str) -> tuple:
    """Return (the format with a threshold per tag fitted on the ensemble's holdout, the report row it scores).

    The row's score is on the same holdout the thresholds were fitted to: optimistic, and named so.
    """
    thresholds = fit_thresholds(probs, y)
    fitted = score(probs, y, metric, thresholds=thresholds)
    print(f"multi-label: a threshold per tag fitted on the holdout for {metric}: {fitted:.4f} "
          f"(0.5 everywhere: {score(probs, y, metric):.4f})")
    row = {"run": "ensemble, fitted thresholds", "extra_images": "", "pseudo_images": "", "views": "", "score": fitted}
    return dataclasses.replace(fmt, thresholds=tuple(float(t) for t in thresholds)), row


def tag_table(probs: np.ndarray, y: np.ndarray, tags: list, thresholds) -> pd.DataFrame:
    """Return per tag: threshold, holdout images holding it, precision and recall of the chosen tags."""
    chosen, truth = probs >= np.asarray(thresholds), y > 0.5
    hits = (chosen & truth).sum(axis=0)
    return pd.DataFrame({"tag": tags, "threshold": thresholds, "images": truth.sum(axis=0),
                         "precision": hits / np.maximum(chosen.sum(axis=0), 1),
                         "recall": hits / np.maximum(truth.sum(axis=0), 1)})
