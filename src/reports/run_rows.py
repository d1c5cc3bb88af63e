"""One ledger row per training run, read from the run's own files (the runs half of `python -m src.ledger`).

A run's metric is its config.json's `metric` when it has one, with history.csv's val_<metric>
column; runs without it are scored by val_accuracy, as they trained. A K-fold run's score is
cv.csv's mean and standard deviation, in its metric or else the one its submission format
implies (as cross-validation chose it). The best holdout score is the best epoch of the stage
the run keeps (state.json's final stage, else the last planned), in the metric's direction; a
full-fit run (no holdout) shows its reference run's, scored_on saying so.
A run that cannot be read, or has not finished, is a row that says so.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from src.core.errors import KitError
from src.core.metric_choice import check_metric, higher_is_better, monitor
from src.core.roles import names_where
from src.core.settings import TrainConfig
from src.data.sample_submission import read_sample_submission
from src.inference.formats import implied_metric
from src.runs.auto_state import AutoState, is_auto_folder
from src.runs.folder import RunFolder
from src.runs.lock import LOCK, lock_holder
from src.runs.state import RunState
from src.runs.reference import reference_score

# Shown in their own columns, or where the data sits and how it is read: not recipe options.
# Settings a row shows in columns of their own (backbone, sizes, epochs, metric, the folds' score); the rest of
# a run's settings are options when their role says so (src.core.roles: not where files sit, nor speed).
COLUMNS = {"backbone", "stage1_size", "stage2_size", "stages", "warmup_epochs", "metric", "task", "folds", "fold"}
NOT_OPTIONS = COLUMNS | names_where(TrainConfig, lambda role: not role.an_option)
UNREADABLE = (KitError, OSError, ValueError, KeyError, TypeError, IndexError)


def run_row(run: RunFolder, name: str) -> dict:
    """Return the ledger row of a run or K-fold run; a damaged one is a row whose status says why."""
    try:
        if is_auto_folder(run.path):
            return auto_row(run, name)
        values = run.config_values()
        if run.folds():
            return kfold_row(run, name, values)
        return single_row(run, name, values)
    except UNREADABLE as err:
        return {"kind": "run", "name": name, "status": f"damaged: {describe(err)}", "folder": str(run.path)}


def auto_row(run: RunFolder, name: str) -> dict:
    """Return the row of an auto run (kind auto): its kept submission's holdout score, and its steps with planned
    and actual minutes and each step's score in the options column."""
    state = AutoState.read(run.path)
    shown = [f"{step} {s.get('status', '')} {s.get('planned_minutes', float('nan')):.1f}/"
             f"{s.get('minutes', float('nan')):.1f} min" + (f" {s['score']:.4f}" if s.get("score") is not None else "")
             for step, s in state.steps.items()]
    best = state.best
    trained = state.steps.get("train", {}).get("run", "")
    return {"kind": "auto", "name": name, "status": "written" if best else "no submission yet",
            "metric": state.metric, "score": best.get("score"), "scored_on": "holdout" if best else "",
            "backbone": Path(trained).name.removeprefix("train-") if trained else "",
            "seconds": state.seconds, "seconds_estimated": False,
            "options": "steps (planned/actual): " + "; ".join(shown), "runs": trained, "folder": str(run.path)}


def describe(err: Exception) -> str:
    """Return an error as one line: a KitError's sentence, or the exception's type and message."""
    text = str(err).splitlines()[0] if str(err) else ""
    return text if isinstance(err, KitError) else f"{type(err).__name__}: {text}"


def single_row(run: RunFolder, name: str, values: dict) -> dict:
    """Return the row of a one-split run: stages, epochs, best holdout score of the kept stage, time, commit."""
    planned = run.planned_stages(values)
    state = run.state()
    kept = run.kept_stage(planned)
    epochs = epochs_trained(run, planned)
    row = base_row(run, name, values, planned, epochs)
    metric = check_metric(values.get("metric") or "accuracy")
    status = progress(run, planned, state, epochs)
    score, scored_on = np.nan, "holdout"
    if status == "finished" and values.get("full_fit"):  # no holdout: its reference run's score, named so
        reference = reference_score(RunFolder(values["full_fit"]))
        score, scored_on = reference["value"], reference["scored_on"]
    elif status == "finished":
        score = best_score(run, kept, metric)
    seconds, estimated = training_seconds(run, state)
    return {**row, "status": status, "metric": metric, "score": score, "std": np.nan, "scored_on": scored_on,
            "final_stage": kept, "seconds": seconds, "seconds_estimated": estimated,
            "commit": state.git_commit[:7]}


def kfold_row(run: RunFolder, name: str, values: dict) -> dict:
    """Return the row of a K-fold run: cv.csv's mean and std, epochs per stage averaged over the folds."""
    folds = run.folds()
    planned = run.planned_stages(values)
    per_fold = [epochs_trained(fold, planned) for fold in folds]
    epochs = {s.name: float(np.mean([e.get(s.name, 0) for e in per_fold])) for s in planned}
    row = base_row(run, name, values, planned, epochs)
    unfinished = [f.path.name for f, e in zip(folds, per_fold) if progress(f, planned, f.state(), e) != "finished"]
    expected = values.get("folds") or len(folds)
    status = "finished"
    if unfinished or len(folds) < expected:
        status = f"unfinished: {len(folds) - len(unfinished)} of {expected} folds finished"
    elif not run.cv_file.is_file():
        status = f"unfinished: every fold trained, no {run.cv_file.name} yet"
    metric, mean, std = cv_score(run, values, folds) if status == "finished" else (values.get("metric", ""), np.nan,
                                                                                  np.nan)
    times = [training_seconds(f, f.state()) for f in folds]
    states = [f.state() for f in folds]
    kept = "+".join(dict.fromkeys(f.kept_stage(planned) for f in folds))
    return {**row, "status": status, "metric": metric, "score": mean, "std": std,
            "scored_on": f"{len(folds)}-fold CV", "final_stage": kept, "seconds": sum(t[0] for t in times),
            "seconds_estimated": any(t[1] for t in times),
            "commit": states[-1].git_commit[:7]}


def base_row(run: RunFolder, name: str, values: dict, planned: list, epochs: dict) -> dict:
    """Return what every run row holds: backbone, stage sizes, epochs trained per stage, options."""
    sizes = dict.fromkeys(f"{s.size[0]}x{s.size[1]}" for s in planned)
    trained = "+".join(number(epochs.get(s.name, 0)) for s in planned)
    return {"kind": "run", "name": name, "backbone": values.get("backbone", ""), "sizes": " > ".join(sizes),
            "epochs": trained, "options": options(values), "folder": str(run.path)}


def number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def options(values: dict) -> str:
    """Return the recipe's settings that differ from TrainConfig's defaults (and keys it does not know)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    shown = []
    for key, value in values.items():
        if key in NOT_OPTIONS or (key in defaults and same(value, defaults[key])):
            continue
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            shown.append(flag if value else f"no-{flag}")
        else:
            shown.append(f"{flag}={'x'.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(shown)


def same(value, default) -> bool:
    return list(value) == list(default) if isinstance(default, tuple) and isinstance(value, list) else value == default


def epochs_trained(run: RunFolder, planned: list) -> dict:
    """Return {stage: epochs trained}: history.csv's rows, or each stage's log while the run is unfinished."""
    history = run.history()
    if history is not None and "stage" in history:
        counts = history["stage"].value_counts()
        return {s.name: int(counts.get(s.name, 0)) for s in planned}
    found = {}
    for stage in planned:
        rows = run.stage_rows(stage.name)
        found[stage.name] = 0 if rows is None else len(rows)
    return found


def progress(run: RunFolder, planned: list, state: RunState, epochs: dict) -> str:
    """Return 'finished', or where an unfinished run stands (running, cut, not started)."""
    holder, gone = lock_holder(run.path / LOCK) if (run.path / LOCK).is_file() else (None, "no lock")
    missing = [s for s in planned if s.name not in state.finished]
    if not missing and run.history_file.is_file():
        return "finished"
    running = not gone
    where = missing[0] if missing else planned[-1]
    done = epochs.get(where.name, 0)
    if running:
        return f"running (process {holder}): {where.name} epoch {done}/{where.epochs}"
    if not missing:
        return f"unfinished: every stage trained, no {run.history_file.name} (stopped while writing reports)"
    return f"unfinished: {where.name} stopped after epoch {done}/{where.epochs} (--resume continues it)"


def best_score(run: RunFolder, stage: str, metric: str) -> float:
    """Return the best value of the metric's history column over the kept stage's epochs, in its direction."""
    history = run.history()
    column = monitor(metric)
    if column not in history:
        raise KitError(f"{run.history_file}: no {column} column (config.json's metric is {metric})")
    values = history.loc[history["stage"] == stage, column].astype(float)
    if values.empty:
        raise KitError(f"{run.history_file}: no epochs of {stage}, the stage the run keeps")
    return float(values.max() if higher_is_better(metric) else values.min())


def cv_score(run: RunFolder, values: dict, folds: list) -> tuple:
    """Return (metric, mean, std) from cv.csv; the metric from config.json, cv.csv, or the format's."""
    import pandas as pd

    table = pd.read_csv(run.cv_file, dtype={"fold": str})
    metric = values.get("metric") or (str(table["metric"].iloc[0]) if "metric" in table else "")
    if not metric:
        data = Path(values.get("data", ""))
        if not data.is_dir():
            raise KitError(f"{run.cv_file}: its metric is not written and the data folder {str(data)!r} is gone, "
                           "so the submission format that implies it is unknown")
        target, maps = folds[0].class_maps()
        metric = implied_metric(read_sample_submission(data, need_rows=False), maps[target])
    by_fold = dict(zip(table["fold"], table["score"].astype(float)))
    return check_metric(metric), by_fold["mean"], by_fold["std"]


def training_seconds(run: RunFolder, state: RunState) -> tuple:
    """Return (seconds trained, estimated?): state.json's sum per stage, else the files' times (estimated).

    Runs trained before state.json kept seconds: from config.json (written at the start) to
    history.csv (written at the end), which counts any pause of a resumed run too.
    """
    seconds = [stage.seconds for stage in state.stages.values() if stage.seconds is not None]
    if seconds:
        return float(sum(seconds)), False
    if run.config_file.is_file() and run.history_file.is_file():
        return run.history_file.stat().st_mtime - run.config_file.stat().st_mtime, True
    return np.nan, False
