"""Probabilities fit for log loss: temperature scaling (Guo et al. 2017), fitted on holdout predictions.

    temperature = fit_temperature(holdout_probs, y)       # > 1 softens an over-confident model
    test_probs = apply_temperature(test_probs, temperature)

A network trained for a few epochs is often over-confident: right most of the time, but the few
images it gets wrong at 0.99 cost log loss dearly. Dividing its logits (here: the logs of its
probabilities, which differ from the logits by a constant per row) by one number T fitted on the
holdout (out of fold for K-fold runs) keeps every ranking and every argmax, so only log loss moves.
"""
from __future__ import annotations

import numpy as np

BOUNDS = (0.05, 20.0)  # temperatures searched; beyond them the holdout is too small to say anything


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Return probabilities softened (T > 1) or sharpened (T < 1): softmax(log(p) / T) per row."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.asarray(probs).dtype)  # scored as the input is


def holdout_log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Return the mean negative log probability of the true classes (clipped as the kit's log_loss is)."""
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean())


def separates(probs: np.ndarray, y: np.ndarray) -> bool:
    """Return True when every image's likeliest class is its true one: then log loss falls without end as the
    temperature falls, so the holdout cannot say which temperature the test images want."""
    return bool((probs.argmax(axis=1) == y).all())


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Return the temperature that minimises log loss on (probs, y); 1.0 when none lowers it or the holdout
    cannot tell (every image right: sharpening to the bound would only bet the test set on no mistake)."""
    from scipy.optimize import minimize_scalar

    if separates(probs, y):
        return 1.0

    def loss(log_t):
        return holdout_log_loss(apply_temperature(probs, float(np.exp(log_t))), y)

    found = minimize_scalar(loss, bounds=tuple(np.log(BOUNDS)), method="bounded")
    temperature = float(np.exp(found.x))
    return temperature if loss(found.x) < loss(0.0) else 1.0
