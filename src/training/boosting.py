"""Gradient-boosted trees (LightGBM) under grouped, stratified folds, early-stopped by the kit's metric.

    folds = group_folds(y, groups, k=5, seed=0)                # fold number per row; a group in one fold
    fit = fit_boosted(X, y, X_test, folds, metric, seed=0)     # out-of-fold and test probabilities, importance

The second stage of src.stack. Each fold's trees stop when the metric on that fold's held-out rows has not
improved for `patience` rounds (the usual Kaggle practice; it makes the out-of-fold score slightly
optimistic, the same for every feature set compared). LightGBM is imported here, when used.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.metric_choice import higher_is_better
from src.inference.metrics import score

# num_threads 1: on a shared 2-core machine two OpenMP threads spin against other jobs (measured 0.8 s on one
# thread against 32 s on two for the same 5 folds); tables of a few thousand rows gain nothing from more
PARAMS = {"objective": "binary", "metric": "None", "num_leaves": 15, "min_data_in_leaf": 10, "feature_fraction": 0.8,
          "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1, "num_threads": 1,
          "deterministic": True, "force_row_wise": True}


@dataclasses.dataclass
class BoostedFit:
    """One feature set's trees over every fold: out-of-fold and test probabilities of the positive class."""

    oof: np.ndarray
    test: np.ndarray
    importance: pd.Series       # total gain per feature, summed over folds
    rounds: list                # the kept rounds of each fold


def group_folds(y: np.ndarray, groups, k: int, seed: int) -> np.ndarray:
    """Return each row's fold (0 .. k-1): stratified by y, every group whole in one fold (StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    positives = int(np.sum(y == 1))
    if positives < k:
        raise KitError(f"--folds {k}: only {positives} positive rows; every fold needs one: pass fewer folds")
    folds = np.full(len(y), -1)
    if groups is None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        groups = np.asarray(groups)
        if len(np.unique(groups)) < k:
            raise KitError(f"--folds {k}: only {len(np.unique(groups))} groups to spread over {k} folds")
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)
    for fold, (_, held) in enumerate(splitter):
        folds[held] = fold
    return folds


def lightgbm():
    """Return the lightgbm module, or a KitError saying how to install it."""
    try:
        import lightgbm
    except ImportError:
        raise KitError("python -m src.stack needs lightgbm (pip install -r requirements.txt; Kaggle's image has it)") \
            from None
    return lightgbm


def fit_boosted(X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, folds: np.ndarray, metric: str,
                seed: int = 0, rounds: int = 2000, learning_rate: float = 0.05, patience: int = 50) -> BoostedFit:
    """Return the out-of-fold and test probabilities of trees trained on every fold but one, in turn.

    The test probability is the folds' mean. The metric scores the positive class's probability (index 1).
    """
    lgb = lightgbm()
    params = {**PARAMS, "learning_rate": learning_rate, "seed": seed}
    oof, test = np.zeros(len(y)), np.zeros(len(X_test))
    importance, kept = pd.Series(0.0, index=X.columns), []
    higher = higher_is_better(metric)

    def evaluate(preds, data):
        probs = np.stack([1 - preds, preds], axis=1)
        value = score(probs, data.get_label().astype(int), metric)
        return metric, (-np.inf if higher else np.inf) if np.isnan(value) else value, higher

    for fold in np.unique(folds):
        held = folds == fold
        train_set = lgb.Dataset(X[~held], y[~held], free_raw_data=False)
        valid_set = lgb.Dataset(X[held], y[held], reference=train_set)
        booster = lgb.train(params, train_set, rounds, valid_sets=[valid_set], feval=evaluate,
                            callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)])
        oof[held] = booster.predict(X[held], num_iteration=booster.best_iteration)
        test += booster.predict(X_test, num_iteration=booster.best_iteration) / len(np.unique(folds))
        importance += booster.feature_importance("gain", iteration=booster.best_iteration)
        kept.append(int(booster.best_iteration))
    return BoostedFit(oof, test, importance, kept)


def score_positive(p: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Return the metric of the positive class's probabilities p against 0/1 labels y."""
    return score(np.stack([1 - np.asarray(p), np.asarray(p)], axis=1), np.asarray(y).astype(int), metric)
