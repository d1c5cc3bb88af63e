"""Holdout metrics by name, all from class probabilities: the ones Kaggle image competitions score with.

    score(probs, y, "auc", positive=1)      # y: true class indices; probs: (n, classes)

accuracy, f1_macro, log_loss (alias logloss), auc (binary: the positive class's probability),
map@K (mean average precision of the top K, one true label per image: Humpback's MAP@5), qwk
(quadratic weighted kappa on the class order: APTOS and Diabetic Retinopathy grades).
Higher is better for all but log_loss (`higher_is_better` says which).
"""
from __future__ import annotations

import re

import numpy as np

from src.core.errors import KitError

NAMES = ("accuracy", "f1_macro", "log_loss", "logloss", "auc", "map@K", "qwk")


def check_metric(name: str) -> str:
    """Return the metric's canonical name; an unknown one is an error listing the known ones."""
    if name == "logloss":
        return "log_loss"
    if name in ("accuracy", "f1_macro", "log_loss", "auc", "qwk") or re.fullmatch(r"map@[1-9]\d*", name):
        return name
    raise KitError(f"--metric {name}: expected one of accuracy, f1_macro, log_loss, auc, qwk, map@K (map@5 ...)")


def higher_is_better(name: str) -> bool:
    return check_metric(name) != "log_loss"


def score(probs: np.ndarray, y: np.ndarray, name: str, positive_index: int = 1) -> float:
    """Return the metric of class probabilities against true class indices."""
    from sklearn.metrics import cohen_kappa_score, f1_score, log_loss, roc_auc_score

    name = check_metric(name)
    if len(y) == 0:
        return float("nan")
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
