"""Holdout metrics by name, all from class probabilities: the ones Kaggle image competitions score with.

    score(probs, y, "auc", positive=1)      # y: true class indices; probs: (n, classes)

accuracy, f1_macro, log_loss (alias logloss), auc (two classes: the positive class's probability;
more: the macro mean of one-vs-rest AUCs),
map@K (mean average precision of the top K, one true label per image: Humpback's MAP@5), qwk
(quadratic weighted kappa on the class order: APTOS and Diabetic Retinopathy grades), f2_samples
(multi-label: the F2 score of each image's tags, averaged over images: Planet's metric; y is a
0/1 row per image, tags chosen by a threshold per tag, 0.5 unless fitted with fit_thresholds).
pauc@R (partial AUC above true-positive rate R, ISIC 2024's pAUC at R = 0.8: the ROC area
over TPR from R to 1, on Kaggle's scale, 0 to 1 - R; binary: the positive class's probability).
rmse, mae and r2 score numbers (a number target, regression: probs are the predicted numbers, y the
true ones). Higher is better for all but log_loss, rmse and mae (src.core.metric_choice.higher_is_better
says which).
"""
from __future__ import annotations

import numpy as np

from src.core.errors import KitError
# the names, their direction and their log columns live in src.core.metric_choice (one home for every job)
from src.core.metric_choice import check_metric, pauc_rate

MASK_SCORES = ("dice",)
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def score(probs: np.ndarray, y: np.ndarray, name: str, positive_index: int = 1, thresholds=None) -> float:
    """Return the metric of class probabilities against true class indices (multi-label: 0/1 rows)."""
    from sklearn.metrics import cohen_kappa_score, f1_score, log_loss, roc_auc_score

    name = check_metric(name)
    if name in MASK_SCORES:  # masks are scored at each image's size by their kind (src.kinds.segmentation.metrics)
        raise KitError(f"metric {name} scores masks, not class probabilities: a segmentation run's holdout is scored "
                       "by its kind (RUN/segmentation.json)")
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
    if name == "auc" and probs.shape[1] > 2:
        return macro_auc(probs, y)
    if name == "auc":
        truth = (y == positive_index).astype(int)
        if truth.min() == truth.max():
            return float("nan")  # one class only in the holdout: AUC is undefined
        return float(roc_auc_score(truth, probs[:, positive_index]))
    if name.startswith("pauc@"):
        return partial_auc(probs[:, positive_index], (y == positive_index).astype(int), pauc_rate(name))
    k = int(name.split("@")[1])
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hits = ranked == y[:, None]
    return float((hits / np.arange(1, k + 1)).sum(axis=1).mean())


def macro_auc(probs: np.ndarray, y: np.ndarray) -> float:
    """Return the mean over classes of each class's one-vs-rest ROC AUC (scikit-learn's macro "ovr").

    Why: with more than two classes, one class against the rest scores a sixth of the task; Plant
    Pathology scores the mean. A class absent from the holdout (or the only one) has no AUC: left out.
    """
    from sklearn.metrics import roc_auc_score

    truth = np.eye(probs.shape[1], dtype=int)[np.asarray(y, int)]
    scored = [roc_auc_score(truth[:, c], probs[:, c]) for c in range(probs.shape[1])
              if truth[:, c].min() != truth[:, c].max()]
    return float(np.mean(scored)) if scored else float("nan")


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


def partial_auc(scores: np.ndarray, truth: np.ndarray, min_tpr: float = 0.8) -> float:
    """Return the ROC area above true-positive rate min_tpr (0 to 1 - min_tpr), or NaN with one class only.

    ISIC 2024's scoring code, step for step: labels and scores flipped, so the region above min_tpr
    becomes the region left of false-positive rate 1 - min_tpr, the curve cut there by linear
    interpolation, no McClish standardisation (Kaggle's leaderboard shows 0 to 0.2 for 0.8).
    """
    from sklearn.metrics import auc, roc_curve

    truth = np.asarray(truth).astype(int)
    if truth.min() == truth.max():
        return float("nan")
    max_fpr = 1.0 - min_tpr
    fpr, tpr, _ = roc_curve(1 - truth, -np.asarray(scores, dtype=float))
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    if stop >= len(fpr):  # the curve ends at fpr 1: max_fpr < 1 is always inside it
        stop = len(fpr) - 1
    tpr_cut = np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]])
    return float(auc(np.append(fpr[:stop], max_fpr), np.append(tpr[:stop], tpr_cut)))
