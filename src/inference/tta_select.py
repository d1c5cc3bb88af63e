"""Test-time augmentation views chosen on the holdout: `--tta auto`.

Greedy forward selection (the way ensembles are built from a library of models, Caruana et
al. 2004): start from the plain prediction, add the view whose average with those kept
scores best on the holdout, stop when no view improves the score. A view is kept only if it
helps, so the chosen views never score below the plain prediction on the holdout they were
chosen on; a flip that changes the meaning of the image (a vertical flip of a digit) is left out.

    chosen, steps = select_views(per_view, names, y, scorer, higher_is_better=True)
"""
from __future__ import annotations

import numpy as np

from src.inference.views import combine_views


def select_views(per_view: np.ndarray, names: list, y: np.ndarray, scorer, higher_is_better: bool = True,
                 mean: str = "arithmetic") -> tuple[list, list]:
    """Return (chosen view names, one {step, views, score} row per step) from holdout probabilities per view.

    per_view: (views, n, classes) in the order of names; names must hold "identity" (the start).
    """
    chosen = [names.index("identity")]
    current = scorer(per_view[chosen[0]], y)
    steps = [{"step": 0, "views": "identity", "score": current}]
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    while len(chosen) < len(names):
        trials = {i: scorer(combine_views(per_view[chosen + [i]], mean), y)
                  for i in range(len(names)) if i not in chosen}
        best = max(trials, key=trials.get) if higher_is_better else min(trials, key=trials.get)
        if not better(trials[best], current):  # nothing left helps (NaN never does)
            break
        chosen.append(best)
        current = trials[best]
        steps.append({"step": len(steps), "views": "+".join(names[i] for i in chosen), "score": current})
    return [names[i] for i in chosen], steps
