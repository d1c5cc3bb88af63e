"""K-fold training: `python -m src.train --folds K` without `--fold` trains every fold in turn.

    RUN/fold-0/ ... RUN/fold-<K-1>/     one training run per fold (same split, same recipe), resumable
    RUN/oof_predictions.csv             every training image predicted once, by the fold that held it out
    RUN/cv.csv, RUN/cv.png              the metric per fold, their mean and standard deviation
    RUN/config.json                     the K-fold config (fold -1)

Out-of-fold predictions are what Kaggle competitors weight ensembles and pick TTA views on:
every image is scored by a model that never trained on it. `python -m src.submit --run RUN`
averages the folds' test predictions. With --head ridge|svr each fold is a regressor on the backbone's features
(src.training.embedding_head), fitted on the fold's training images.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import write_csv
from src.core.plots import plot_cv
from src.core.refit_options import check_refit_files
from src.core.metric_choice import higher_is_better, settle_metric
from src.core.task_kind import kind_of
from src.data.competition import load_competition
from src.inference.formats import default_metric, positive_index
from src.inference.metrics import score
from src.runs.folder import RunFolder
from src.models.number_head import REGRESSORS
from src.training.embedding_head import fit_embedding_head
from src.training.two_stage import run_folder_for, train


def train_folds(cfg, callbacks=()) -> dict:
    """Train fold 0 .. K-1 into RUN/fold-<i>/, then write oof_predictions.csv, cv.csv and cv.png."""
    check_refit_files(cfg)
    folder = run_folder_for(cfg)
    root = folder.path
    if root.is_dir() and any(root.iterdir()) and not folder.is_run():
        raise KitError(f"{root} holds files but no K-fold run: choose another --out; nothing was changed")
    comp = load_competition(cfg, with_test=False)
    class_map = comp.class_maps[comp.target]
    class_map.kind.check_head(cfg, comp.target)  # before RUN/config.json: a refused head leaves nothing
    cfg, _ = settle_metric(cfg, default_metric(comp.schema, class_map), kind_of(class_map),
                           note="; every fold follows it", classes=len(class_map.values))
    if not folder.is_run():  # first: a run cut after some folds names its config to resume with
        folder.save_config(cfg)
    summaries = []
    # --time-limit is this process's, not each fold's: every fold gets what the earlier ones left
    deadline = time.monotonic() + cfg.time_limit * 3600 if cfg.time_limit > 0 else None
    for fold in range(cfg.folds):
        out = folder.fold(fold).path
        print(f"fold {fold + 1}/{cfg.folds}: {out}", flush=True)
        left = {} if deadline is None else {"time_limit": max(deadline - time.monotonic(), 1e-3) / 3600}
        fold_cfg = dataclasses.replace(cfg, fold=fold, out=str(out), resume=cfg.resume or not out.exists(), **left)
        # --head ridge|svr: a regressor fitted on each fold's training images, scored on its holdout
        summary = fit_embedding_head(fold_cfg) if cfg.head in REGRESSORS else train(fold_cfg, callbacks)
        if summary.get("stopped"):  # --time-limit: the next session resumes from this fold
            return {**summary, "folds_done": fold}
        summaries.append(summary)
    oof = collect_oof(root, cfg.folds)
    table, metric = cv_table(cfg, oof, comp)
    write_csv(folder.oof_file, oof)
    write_csv(folder.cv_file, table)
    plot_cv(table, folder.cv_plot_file, f"{cfg.backbone}: {cfg.folds}-fold {metric}")
    mean = table.loc[table["fold"] == "mean", "score"].iloc[0]
    std = table.loc[table["fold"] == "std", "score"].iloc[0]
    print(table.to_string(index=False))
    print(f"CV {metric}: {mean:.4f} +- {std:.4f} over {cfg.folds} folds ({folder.cv_file})")
    far = far_folds(table, metric)
    for fold, line in far.items():
        print(f"fold {fold}: {line}", flush=True)
    return {"out": str(root), "metric": metric, "cv_mean": float(mean), "cv_std": float(std), "folds": summaries,
            "far_folds": sorted(far)}


def far_folds(table: pd.DataFrame, metric: str) -> dict:
    """Return {fold index: the line saying it} for the folds that scored far below their siblings.

    Far: worse than the other folds' median by more than three times their spread and by over 5% of it. Why: one
    fold whose early stop ended on a noisy start (seen: QWK 0.64 beside four folds at 0.97-0.99) drags the CV
    mean and the averaged test prediction; the autopilot retrains such a fold when its budget holds it.
    """
    rows = table[~table["fold"].isin(["mean", "std"])]
    scores, sign = rows["score"].to_numpy(float), 1.0 if higher_is_better(metric) else -1.0
    found = {}
    for i, value in enumerate(scores):
        others = np.delete(scores, i)
        if len(others) < 2 or not np.isfinite(value) or not np.isfinite(others).all():
            continue
        median, spread = float(np.median(others)), float(np.std(others))
        gap = sign * (median - value)
        if gap > 3 * spread and gap > 0.05 * abs(median):
            found[int(rows["fold"].iloc[i])] = (f"{metric} {value:.4f}, far below its siblings (median {median:.4f}, "
                                                f"sd {spread:.4f}): its training may have ended on a noisy start")
    return found


def collect_oof(root: Path, folds: int) -> pd.DataFrame:
    """Return every fold's holdout predictions as one table with a fold column; each image exactly once."""
    parts = []
    for fold in range(folds):
        run = RunFolder(root).fold(fold)
        parts.append(pd.read_csv(run.holdout_file, dtype={"id": str}, keep_default_na=False).assign(fold=fold))
    oof = pd.concat(parts, ignore_index=True)
    repeated = oof["id"][oof["id"].duplicated()]
    if not repeated.empty:
        raise KitError(f"{root}: image {repeated.iloc[0]!r} was held out by two folds: the fold runs used other splits")
    return oof


def class_fold_score(part: pd.DataFrame, class_map, metric: str, positive: int) -> float:
    """Return --metric of one fold's out-of-fold probabilities (prob_<class> columns) against its labels."""
    y = class_map.encode(part["label"].map(typed(class_map)))
    return score(part[[f"prob_{v}" for v in class_map.values]].to_numpy(float), y, metric, positive)


def cv_table(cfg, oof: pd.DataFrame, comp) -> tuple[pd.DataFrame, str]:
    """Return (fold, score) rows plus mean and std in the run's metric (cfg.metric, resolved), and its name."""
    class_map = comp.class_maps[comp.target]
    metric, positive = cfg.metric, positive_index(class_map)
    rows = []
    for fold, part in oof.groupby("fold"):
        rows.append({"fold": str(fold), "images": len(part),
                     "score": class_map.kind.fold_score(part, class_map, metric, positive)})  # the kind's answers
    scores = np.array([r["score"] for r in rows])
    rows += [{"fold": "mean", "images": len(oof), "score": float(scores.mean())},
             {"fold": "std", "images": len(oof), "score": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0}]
    return pd.DataFrame(rows), metric


def typed(class_map):
    """Return a mapper from label text (as a CSV gives it back) to the class map's own values."""
    by_text = {str(v): v for v in class_map.values}
    return lambda text: by_text.get(str(text), text)
