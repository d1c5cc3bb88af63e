"""The reference run of a full-fit (`python -m src.train --full-fit RUN`): checked, its chosen epochs, its score.

    ref = reference_run("runs/effb0")          # KitError unless a finished one-split (or one-fold) run
    epochs = chosen_epochs(ref)                 # {"stage1": 2, "stage2": 1}: each stage's best epoch
    line = reference_score(ref)["line"]         # "reference score: runs/effb0's holdout val_auc 0.9100 ..."

A full-fit trains on every training image, so it has no holdout: its numbers are its reference
run's, whose early stopping chose the epochs it trains and whose holdout (or its K-fold run's CV)
scored the recipe. Training, src.submit and the ledger read them here, so all three say the same.
"""
from __future__ import annotations

from pathlib import Path

from src.core.errors import KitError
from src.core.metric_choice import monitor, rank_key
from src.runs.folder import FOLD_PREFIX, RunFolder


def reference_run(path: str, flag: str = "--full-fit") -> RunFolder:
    """Return RUN as a RunFolder once it is a finished, one-split training run; else a KitError naming it."""
    run = RunFolder(path)
    expected = "a finished run folder of python -m src.train (config.json, state.json naming its kept stage, " \
               "history.csv)"
    if not run.path.is_dir():
        raise KitError(f"{flag} {path}: no such folder; expected {expected}")
    if run.folds():
        raise KitError(f"{flag} {path}: a K-fold run ({', '.join(f.path.name for f in run.folds())}), whose folds "
                       f"stopped at different epochs: pass one fold's folder ({run.fold(0)}) as the reference")
    run.require_run(flag)
    values = run.config_values()
    if values.get("full_fit"):
        raise KitError(f"{flag} {path}: itself a full-fit (of {values['full_fit']}), which has no holdout and chose "
                       f"no epochs: pass its reference run, {values['full_fit']}")
    state = run.state()
    if not state.kept or not run.history_file.is_file():
        finished = ", ".join(state.finished) or "no stage"
        raise KitError(f"{flag} {path}: not finished ({finished} finished, no kept stage in {run.state_file.name} "
                       f"or no {run.history_file.name}): expected {expected}; {run.how_to_resume()}")
    return run


def chosen_epochs(run: RunFolder) -> dict:
    """Return {stage: the epoch (1-based) its early stopping kept} for every stage the run planned.

    The best epoch is chosen as training's checkpoint chose it: the metric in its direction, ties to
    the lower val_loss, then the earlier epoch.
    """
    config = run.load_config()
    history = run.history()
    column = monitor(config.metric or "accuracy")
    chosen = {}
    for stage in run.planned_stages(run.config_values()):
        rows = history[history["stage"] == stage.name] if column in history else history.iloc[:0]
        if rows.empty:
            raise KitError(f"--full-fit {run}: {run.history_file} has no {column} rows of {stage.name}: expected "
                           "the per-epoch log of a finished run")
        keys = [(rank_key(v, loss, config.metric or "accuracy"), i)
                for i, (v, loss) in enumerate(zip(rows[column].astype(float), rows["val_loss"].astype(float)))]
        chosen[stage.name] = min(keys)[1] + 1
    return chosen


def reference_score(run: RunFolder) -> dict:
    """Return the reference's score: {run, metric, value, scored_on, line}, the kept stage's best holdout value
    (NaN, said in the line, when the reference is no longer there).

    A fold of a K-fold run (RUN/fold-<i>) also names its K-fold run's CV mean, when cv.csv is there.
    """
    state = run.state()
    if state.kept_score() is None:  # moved or deleted since the full-fit trained
        return {"run": str(run), "metric": "", "value": float("nan"), "scored_on": f"reference: {run} (not found)",
                "line": f"reference score: none: the reference run {run} has no finished {run.state_file.name} "
                        "here (moved or deleted?), and a full-fit has no holdout"}
    metric = state.metric or "accuracy"
    value = float(state.kept_score())
    line = f"reference score: {run}'s holdout {monitor(metric)} {value:.4f} (full-fit has no holdout)"
    parent = RunFolder(run.path.parent)
    if run.path.name.startswith(FOLD_PREFIX) and parent.cv_file.is_file():
        import pandas as pd

        cv = pd.read_csv(parent.cv_file)
        mean = cv.loc[cv["fold"].astype(str) == "mean", "score"]
        if not mean.empty:
            line += f"; its K-fold run {parent}: CV {metric} {float(mean.iloc[0]):.4f}"
    return {"run": str(run), "metric": metric, "value": value, "scored_on": f"reference: {run} holdout",
            "line": line}


def full_fit_reference(folder: str | Path) -> RunFolder | None:
    """Return the reference run of a full-fit run folder (its config.json's full_fit), None for any other run."""
    values = RunFolder(folder).config_values()
    return RunFolder(values["full_fit"]) if values.get("full_fit") else None
