"""The runs' holdout and test predictions made one for `python -m src.submit`: which runs, what weights,
how blended, and (for log loss) what temperature, with the report rows that show each choice.

    check_combination(cfg, runs, metric)                 # flags that do not fit, before anything runs
    ensemble = combine_runs(runs, holdout, test, cfg, metric, scorer, positive)
    ensemble.test, ensemble.weights, ensemble.rows, ensemble.record

Everything is fitted on the runs' shared holdout (out of fold for K-fold runs), never on the test set.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from src.core.errors import KitError
from src.core.metric_choice import higher_is_better, is_ranking
from src.inference.calibration import apply_temperature, fit_temperature, separates
from src.inference.ensemble import blend, fit_weights, select_runs


@dataclasses.dataclass
class Ensemble:
    """What combine_runs made: the probabilities, the weights and what the report shows of it."""

    holdout: np.ndarray     # the ensemble's holdout probabilities (the first run's when holdouts differ)
    test: np.ndarray
    weights: list           # one per run; 0 for a run --select-runs left out
    rows: list              # holdout table rows: selection steps, the ensemble, the calibrated ensemble
    record: dict            # for NAME.json: blend, run selection, calibration


def same_holdout(a, b) -> bool:
    """Return True when two runs (or K-fold runs) held out exactly the same images in the same folds."""
    return a.holdout_folds() == b.holdout_folds()


def check_combination(cfg, runs, metric: str) -> None:
    """Raise naming the flag when --blend, --select-runs or --identity-blend cannot work with this metric or these
    runs (this is no identity submission: src.kinds.identity.submission checks its own)."""
    if cfg.identity_blend:
        raise KitError(f"--identity-blend {cfg.identity_blend:g}: mixes an identity run's nearest neighbours with its "
                       f"margin head; column {runs[0].class_map.column} is no identity (no new answer): leave it out")
    if cfg.blend == "rank" and not is_ranking(metric):
        raise KitError(f"--blend rank: ranks keep only the order of the images, which is what auc scores; the "
                       f"metric here is {metric}: use --blend mean (or --metric auc)")
    if cfg.blend == "rank" and len(runs[0].class_map.values) != 2:
        raise KitError(f"--blend rank: ranks one class's probability, for a binary target; "
                       f"{runs[0].class_map.column} has {len(runs[0].class_map.values)} classes: use --blend mean")
    if cfg.select_runs and not all(same_holdout(run, runs[0]) for run in runs[1:]):
        raise KitError("--select-runs: the runs held out different images (other splits), so no run can be "
                       "compared with another on one holdout; train them on one split (--split-file)")


def row(name: str, views: str, value: float) -> dict:
    """Return one holdout table row (the columns every row of the table has)."""
    return {"run": name, "extra_images": "", "pseudo_images": "", "views": views, "score": value}


def combine_runs(runs, holdout: dict, test: list, cfg, metric: str, scorer, positive: int = 1) -> Ensemble:
    """Return the Ensemble of the runs' predictions: selected (--select-runs), weighted (--ensemble-weights),
    blended (--blend) and, for log loss, calibrated (--calibrate)."""
    views = " | ".join(dict.fromkeys(holdout["views"]))
    shared = all(same_holdout(run, runs[0]) for run in runs[1:]) and len(holdout["y"][0]) > 0
    y = np.asarray(holdout["y"][0])
    one_class = shared and y.ndim == 1 and len(np.unique(y)) < 2  # a metric ranks nothing on one class
    if not shared or one_class:  # check_runs_agree and check_combination refused what needs a shared holdout
        print(("full-fit runs have no holdout: equal weights, no holdout score, no holdout figures"
               if not len(holdout["y"][0]) else f"the holdout holds one class only ({len(y)} images of "
               f"{runs[0].class_map.values[int(y[0])]!r}): no holdout score, equal weights, nothing chosen on it"
               if one_class else "the runs held out different images: the ensemble has no holdout "
               "score; the report's figures show the first run") +
              ("; no temperature is fitted (--calibrate)" if metric == "log_loss" and cfg.calibrate == "auto" else ""))
        weights = [1.0 / len(runs)] * len(runs)
        probs = blend(np.stack(test), weights, cfg.blend, positive)
        return Ensemble(holdout["tta"][0], probs, weights, [row("ensemble", views, float("nan"))],
                        {"blend": cfg.blend, "run_selection": [], "calibration": None})
    stacked, y = np.stack(holdout["tta"]), holdout["y"][0]
    higher = higher_is_better(metric)
    kept, steps = list(range(len(runs))), []
    if cfg.select_runs and len(runs) > 1:
        kept, steps = select_runs(stacked, y, scorer, higher, cfg.blend, positive, [str(r.folder) for r in runs])
        print(f"--select-runs kept {len(kept)} of {len(runs)} runs: {steps[-1]['runs']} "
              f"({len(steps) - 1} addition(s) that helped the holdout {metric})")
    fitted = fit_weights(stacked[kept], y, metric, scorer, higher, cfg.blend, positive) \
        if cfg.ensemble_weights == "fit" else [1.0 / len(kept)] * len(kept)
    weights = [0.0] * len(runs)
    for index, weight in zip(kept, fitted):
        weights[index] = weight
    ensemble_holdout = blend(stacked[kept], fitted, cfg.blend, positive)
    ensemble_test = blend(np.stack([test[i] for i in kept]), fitted, cfg.blend, positive)
    rows = [row(f"run selection step {s['step']}: {s['runs']}", "", s["score"]) for s in steps]
    rows.append(row("ensemble", views, scorer(ensemble_holdout, y)))
    record = {"blend": cfg.blend, "run_selection": steps, "calibration": None}
    if metric == "log_loss" and cfg.calibrate == "auto":
        ensemble_holdout, ensemble_test, record["calibration"] = calibrate(
            ensemble_holdout, ensemble_test, y, scorer, any(r.is_cv for r in runs))
        if record["calibration"]["temperature"] != 1.0:  # else the ensemble row above says it all
            rows.append(row(f"ensemble, temperature {record['calibration']['temperature']:.3f}", views,
                            record["calibration"]["after"]))
    return Ensemble(ensemble_holdout, ensemble_test, weights, rows, record)


def calibrate(holdout_probs: np.ndarray, test_probs: np.ndarray, y: np.ndarray, scorer, out_of_fold: bool):
    """Return (holdout, test probabilities at the temperature fitted on the holdout, what the report records)."""
    temperature = fitted = fit_temperature(holdout_probs, y)
    # Only softening is applied: the epoch, stage and views were chosen for their log loss on these same images,
    # so they look better calibrated here than on new ones, and a sharpening temperature (< 1) fitted here
    # raised the test log loss in the runs measured (benchmarks/matrix.py: 0.083 -> 0.091, 0.64 -> 0.75).
    temperature = max(temperature, 1.0)
    calibrated = apply_temperature(holdout_probs, temperature) if temperature != 1.0 else holdout_probs
    before, after = scorer(holdout_probs, y), scorer(calibrated, y)
    where = "the out-of-fold predictions" if out_of_fold else "the holdout"
    if separates(holdout_probs, y):
        print(f"calibration (--calibrate auto): every image of {where} is right, so its log loss ({before:.4f}) "
              "falls with any sharpening and cannot choose a temperature; the probabilities stay as predicted")
    elif fitted < 1.0:
        print(f"calibration (--calibrate auto): temperature {fitted:.3f} would sharpen the probabilities on {where}, "
              "whose images chose the epochs and views (they flatter it there); only softening is applied: the "
              "probabilities stay as predicted")
    elif temperature == 1.0:
        print(f"calibration (--calibrate auto): no temperature lowers the log loss on {where} ({before:.4f}); "
              "the probabilities stay as predicted")
    else:
        print(f"calibration (--calibrate auto): temperature {temperature:.3f} fitted on {where}: log_loss "
              f"{before:.4f} -> {after:.4f} (on the images it was fitted to); applied to the test predictions")
    record = {"temperature": temperature, "fitted": fitted, "fitted_on": where, "before": before, "after": after}
    return calibrated, apply_temperature(test_probs, temperature) if temperature != 1.0 else test_probs, record
