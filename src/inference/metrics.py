"""Holdout metrics by name, all from class probabilities: the ones Kaggle image competitions score with.

    score(probs, y, "auc", positive=1)      # y: true class indices; probs: (n, classes)

accuracy, f1_macro, log_loss (alias logloss), auc (binary: the positive class's probability),
map@K (mean average precision of the top K, one true label per image: Humpback's MAP@5), qwk
(quadratic weighted kappa on the class order: APTOS and Diabetic Retinopathy grades), f2_samples
(multi-label: the F2 score of each image's tags, averaged over images: Planet's metric; y is a
0/1 row per image, tags chosen by a threshold per tag, 0.5 unless fitted with fit_thresholds).
rmse, mae and r2 score numbers (a number target, regression: probs are the predicted numbers, y the
true ones). Higher is better for all but log_loss, rmse and mae (src.core.metric_choice.higher_is_better says which).
"""
from __future__ import annotations

import numpy as np

# the names, their direction and their log columns live in src.core.metric_choice (one home for every job)
from src.core.metric_choice import check_metric

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def score(probs: np.ndarray, y: np.ndarray, name: str, positive_index: int = 1, thresholds=None) -> float:
    """Return the metric of class probabilities against true class indices (multi-label: 0/1 rows)."""
    from sklearn.metrics import cohen_kappa_score, f1_score, log_loss, roc_auc_score

    name = check_metric(name)
    if len(y) == 0:
        return float("nan")
    if name in NUMBER_SCORES:
        return number_score(probs, y, name)
    if name == "f2_samples":
        return f2_samples(probs >= (0.5 if thresholds is None else np.asarray(thresholds)), y)
    if name == "accuracy":
        return float((probs.argmax(axis=1) == y).mean())
    if name == "f1_macro":
        return float(f1_score(y, probs.argmax(axis=1), average="macro"))
    if name == "qwk":  # class indices follow the sorted labels: grades 0..4 keep their order
        return float(cohen_kappa_score(y, probs.argmax(axis=1), weights="quadratic",
                                       labels=list(range(probs.shape[1]))))
    if name == "log_loss":
        return float(log_loss(y, np.clip(probs, 1e-7, 1), labels=list(range(probs.shape[1]))))
    if name == "auc":
        truth = (y == positive_index).astype(int)
        if truth.min() == truth.max():
            return float("nan")  # one class only in the holdout: AUC is undefined
        return float(roc_auc_score(truth, probs[:, positive_index]))
    k = int(name.split("@")[1])
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hits = ranked == y[:, None]
    return float((hits / np.arange(1, k + 1)).sum(axis=1).mean())


NUMBER_SCORES = ("rmse", "mae", "r2")


def number_score(predicted: np.ndarray, y: np.ndarray, name: str) -> float:
    """Return rmse, mae or r2 of predicted numbers against true ones (any shapes of n values).

    r2 is 1 - SSE / the sum of squares around the true values' mean (scikit-learn's r2_score); nan
    when every true value is the same.
    """
    guess = np.asarray(predicted, dtype=np.float64).reshape(-1)
    truth = np.asarray(y, dtype=np.float64).reshape(-1)
    if name == "rmse":
        return float(np.sqrt(np.mean((guess - truth) ** 2)))
    if name == "mae":
        return float(np.mean(np.abs(guess - truth)))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return float(1.0 - np.sum((guess - truth) ** 2) / total) if total > 0 else float("nan")


def f2_samples(chosen: np.ndarray, y: np.ndarray) -> float:
    """Return the mean over images of F2 between chosen and true tags (0/1 rows); an image with neither scores 1."""
    chosen, truth = np.asarray(chosen, bool), np.asarray(y) > 0.5
    hits = (chosen & truth).sum(axis=1)
    precision = np.divide(hits, chosen.sum(axis=1), out=np.zeros(len(hits)), where=chosen.sum(axis=1) > 0)
    recall = np.divide(hits, truth.sum(axis=1), out=np.zeros(len(hits)), where=truth.sum(axis=1) > 0)
    denominator = 4 * precision + recall
    f2 = np.divide(5 * precision * recall, denominator, out=np.zeros(len(hits)), where=denominator > 0)
    f2[(chosen.sum(axis=1) == 0) & (truth.sum(axis=1) == 0)] = 1.0
    return float(f2.mean())


def fit_thresholds(probs: np.ndarray, y: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Return one threshold per tag that maximises f2_samples on (probs, y): coordinate ascent over a grid.

    Exists because F2 weighs recall four times precision: the best threshold is far below 0.5 and
    differs per tag (rare tags want lower ones). Starts at 0.5; each round tries every grid value
    for each tag with the others held, keeping a change only when the score rises.
    """
    thresholds = np.full(probs.shape[1], 0.5)
    best = f2_samples(probs >= thresholds, y)
    for _ in range(rounds):
        for tag in range(probs.shape[1]):
            for value in THRESHOLD_GRID:
                trial = thresholds.copy()
                trial[tag] = value
                found = f2_samples(probs >= trial, y)
                if found > best + 1e-12:
                    best, thresholds = found, trial
    return thresholds
