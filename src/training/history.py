"""A run's per-epoch logs: each stage's Keras CSVLogger file, trimmed to what its backup holds, and history.csv.

    rows = finished_rows(run.stage_history("stage1"), run.backup("stage1"))   # None before the first epoch
    history = collect_history(run, stages, "auc")     # stage, epoch (1-based), lr, loss, ..., auc, val_auc

A stage resumes from its last backed-up epoch; an epoch logged but not backed up runs again, so its row goes.
"""
from __future__ import annotations

import json

import h5py
import pandas as pd

from src.core.files import read_log, write_csv
from src.core.metric_choice import log_name, monitor
from src.runs.folder import RunFolder

HISTORY_COLUMNS = ["stage", "epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy"]


def discard_broken_backup(run: RunFolder, stage: str) -> None:
    """Start the stage again when a kill left its backup unreadable (Keras writes it in place)."""
    weights = run.backup(stage) / "latest.weights.h5"
    if not weights.is_file():
        return
    try:
        with h5py.File(weights, "r"):
            pass
    except OSError as err:
        print(f"{stage}: its backup {weights} is damaged ({str(err).splitlines()[0]}), probably by a kill while it "
              "was written: the stage starts again from its beginning")
        run.clear_stage(stage)


def finished_rows(history_file, backup) -> pd.DataFrame | None:
    """Return the stage's history rows of finished epochs (trimmed to the backup's epoch), or None."""
    if not history_file.is_file() or history_file.stat().st_size == 0:  # a kill before the first epoch's row
        return None
    rows = read_log(history_file)
    metadata = backup / "training_metadata.json"
    done = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else len(rows)
    rows = rows[rows["epoch"] < done]
    write_csv(history_file, rows)  # an epoch logged but not backed up is run again
    return rows


def history_columns(metric: str = "accuracy") -> list:
    """Return history.csv's columns: stage, epoch, lr, loss, accuracy, val_loss, val_accuracy, then <metric>,
    val_<metric> when the metric is not accuracy (its Keras log name: map@5 -> map_at_5)."""
    logged = log_name(metric)
    return HISTORY_COLUMNS + ([logged, monitor(metric)] if logged != "accuracy" else [])


def collect_history(run: RunFolder, stages, metric: str = "accuracy") -> pd.DataFrame:
    """Return one row per epoch of every stage: stage, epoch (1-based), lr, loss, accuracy, val_*, the metric."""
    columns, parts = history_columns(metric), []
    for stage in stages:
        path = run.stage_history(stage.name)
        if path.is_file():
            rows = read_log(path).assign(stage=stage.name)
            rows["epoch"] = rows["epoch"] + 1
            heads = [c for c in rows.columns if c.endswith("_accuracy") and c not in columns]
            parts.append(rows.reindex(columns=columns + heads))  # multi-task: accuracy per head too
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
