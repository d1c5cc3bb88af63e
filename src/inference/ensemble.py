"""Several runs made one prediction, chosen and weighted for the competition's metric on their holdout.

    blended = blend(stacked, weights, "rank", positive)      # stacked: (runs, n, classes)
    chosen, steps = select_runs(stacked, y, scorer, higher_is_better, "mean", positive)
    weights = fit_weights(stacked, y, metric, scorer, "mean", positive)

`--blend mean` averages probabilities; `--blend rank` averages each run's positive-class probability
turned into its rank among the images (for AUC, which reads only the order: runs whose probabilities
live on different scales then count as their weights say). `--select-runs` is greedy forward
selection (Caruana et al. 2004, as `--tta auto` does for views): start from the best single run, add
the run whose blend with those kept scores best, stop when none helps. `--ensemble-weights fit` fits
the weights for the metric itself: log loss (and multi-label cross-entropy, whose thresholds carry
the metric) by minimising it; any other metric by hill climbing with replacement from the better of
the best single run and equal weights. Both only ever keep a change that raises the holdout score,
so neither ends below the best single run on the holdout they were fitted on (an optimistic number:
the report says so). Numbers (rmse, mae, r2) are fitted on the metric by Nelder-Mead, each run alone
a candidate too (fit_number_weights).
"""
from __future__ import annotations

import numpy as np

from src.inference.metrics import NUMBER_SCORES as NUMBER_METRICS

HILL_CLIMB_STEPS = 20  # additions of one run's share; weights are multiples of 1 / (start + steps)


def blend(stacked: np.ndarray, weights, mode: str = "mean", positive: int = 1) -> np.ndarray:
    """Return the weighted blend of per-run probabilities (runs, n, classes) as (n, classes).

    rank: binary targets; the positive column is the weighted mean of each run's ranks scaled to (0, 1],
    the other column its complement, so the rows still read as probabilities.
    """
    from scipy.stats import rankdata

    stacked = np.asarray(stacked)
    # the runs' own dtype: sklearn's log_loss clips at the dtype's eps, so a float64 blend of float32 runs
    # would score other than the same probabilities as one run
    weights = np.asarray(weights, dtype=stacked.dtype)
    if mode == "mean" or len(stacked) == 1:  # one run: its ranks would only coarsen its probabilities
        return np.tensordot(weights, stacked, axes=1).astype(stacked.dtype)
    ranks = np.stack([rankdata(run[:, positive]) / len(run) for run in stacked])
    column = np.tensordot(weights, ranks, axes=1)
    out = np.empty(stacked.shape[1:], dtype=stacked.dtype)
    out[:, positive], out[:, 1 - positive] = column, 1 - column
    return out


def is_better(new: float, old: float, higher_is_better: bool) -> bool:
    """Return True when `new` beats `old` strictly in the metric's direction (NaN never does)."""
    if np.isnan(new):
        return False
    return bool(np.isnan(old) or (new > old if higher_is_better else new < old))


def best_of(scores: dict, higher_is_better: bool):
    """Return the key whose score is best in the metric's direction, NaN last; the first of ties."""
    sign = 1 if higher_is_better else -1
    return max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else sign * scores[k])


def select_runs(stacked: np.ndarray, y: np.ndarray, scorer, higher_is_better: bool, mode: str = "mean",
                positive: int = 1, names=None) -> tuple[list, list]:
    """Return (indices of the runs kept, one {step, runs, score} row per step), by greedy forward selection.

    The kept runs are blended with equal weights at each step; a run joins only if the score rises.
    """
    names = names or [f"run {i + 1}" for i in range(len(stacked))]

    def scored(indices):
        return scorer(blend(stacked[indices], np.full(len(indices), 1 / len(indices)), mode, positive), y)

    singles = {i: scored([i]) for i in range(len(stacked))}
    chosen = [best_of(singles, higher_is_better)]
    current = singles[chosen[0]]
    steps = [{"step": 0, "runs": names[chosen[0]], "score": current}]
    while len(chosen) < len(stacked):
        trials = {i: scored(chosen + [i]) for i in range(len(stacked)) if i not in chosen}
        best = best_of(trials, higher_is_better)
        if not is_better(trials[best], current, higher_is_better):
            break
        chosen.append(best)
        current = trials[best]
        steps.append({"step": len(steps), "runs": " + ".join(names[i] for i in chosen), "score": current})
    return chosen, steps


def fit_weights(stacked: np.ndarray, y: np.ndarray, metric: str, scorer, higher_is_better: bool,
                mode: str = "mean", positive: int = 1) -> list:
    """Return one weight per run (summing to 1) fitted on the shared holdout for the metric."""
    if len(stacked) == 1:
        return [1.0]
    if metric in NUMBER_METRICS:  # numbers (regression): their y is (n, 1) too, but no probabilities
        return fit_number_weights(stacked, y, scorer, higher_is_better)
    if mode == "mean" and (metric == "log_loss" or y.ndim == 2):
        return fit_log_loss_weights(stacked, y)
    return hill_climb_weights(stacked, y, scorer, higher_is_better, mode, positive)


def fit_log_loss_weights(stacked: np.ndarray, y: np.ndarray) -> list:
    """Return the weights that minimise holdout log loss (multi-label: binary cross-entropy over every tag)."""
    from scipy.optimize import minimize

    def loss(raw):
        w = np.exp(raw) / np.exp(raw).sum()
        probs = np.clip(np.tensordot(w, stacked, axes=1), 1e-7, 1 - 1e-7)
        if y.ndim == 2:
            return -(y * np.log(probs) + (1 - y) * np.log(1 - probs)).mean()
        return -np.log(probs[np.arange(len(y)), y]).mean()

    best = minimize(loss, np.zeros(len(stacked)), method="Nelder-Mead")
    return [float(w) for w in np.exp(best.x) / np.exp(best.x).sum()]


def fit_number_weights(stacked: np.ndarray, y: np.ndarray, scorer, higher_is_better: bool) -> list:
    """Return the weights (summing to 1) of predicted numbers that score best on the holdout for the metric.

    Nelder-Mead on softmax weights from equal ones; each run alone is a candidate too, so the blend is never
    worse on the holdout than the better run (a network with an SVR on its embeddings, Pawpularity's blend).
    """
    from scipy.optimize import minimize

    sign = -1.0 if higher_is_better else 1.0

    def loss(raw):
        w = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum()
        return sign * scorer(np.tensordot(w, stacked, axes=1), y)

    best = minimize(loss, np.zeros(len(stacked)), method="Nelder-Mead")
    fitted = np.exp(best.x - best.x.max()) / np.exp(best.x - best.x.max()).sum()
    candidates = [fitted, *np.eye(len(stacked))]
    chosen = min(candidates, key=lambda w: sign * scorer(np.tensordot(w, stacked, axes=1), y))
    return [float(w) for w in chosen]


def hill_climb_weights(stacked: np.ndarray, y: np.ndarray, scorer, higher_is_better: bool, mode: str = "mean",
                       positive: int = 1, steps: int = HILL_CLIMB_STEPS) -> list:
    """Return weights found by hill climbing with replacement (Caruana et al. 2004) on the metric itself.

    Starts from the better of the best single run and equal weights; each step adds one share of the run
    that raises the score most, and stops when none does. Exists because accuracy, AUC or MAP@k are flat
    almost everywhere: a gradient-free optimiser on them stalls where it starts.
    """
    n = len(stacked)

    def scored(counts):
        return scorer(blend(stacked, counts / counts.sum(), mode, positive), y)

    singles = {i: scored(np.eye(n)[i]) for i in range(n)}
    starts = {"single": np.eye(n)[best_of(singles, higher_is_better)], "equal": np.ones(n)}
    start_scores = {k: scored(v) for k, v in starts.items()}
    counts = starts[best_of(start_scores, higher_is_better)].copy()
    current = scored(counts)
    for _ in range(steps):
        trials = {i: scored(counts + np.eye(n)[i]) for i in range(n)}
        best = best_of(trials, higher_is_better)
        if not is_better(trials[best], current, higher_is_better):
            break
        counts[best] += 1
        current = trials[best]
    return [float(c) for c in counts / counts.sum()]
