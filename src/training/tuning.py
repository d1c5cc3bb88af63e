"""Head search with keras-tuner's Hyperband on cached frozen features (the job behind `python -m src.tune`).

The search space is the CompCars reference's: head depth (hidden Dense layers), width,
dropout, L2, learning rate and optimizer; the objective is val_<metric> in the metric's direction
(--metric, else Kaggle's, else the submission format's). The backbone is frozen and runs once: its pooled
features for the saved split's training and holdout images are cached (runs/features, shared
with src.training.screening), so every trial trains a head on arrays in seconds. Writes
trials.csv, trials.png and best_config.json (fields of src.training.two_stage's config) into --out.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions, save_config
from src.core.errors import KitError
from src.core.files import write_csv, write_json
from src.core.metric_choice import higher_is_better, monitor, rank_key, settle_metric
from src.core.plots import plot_screening
from src.core.settings import TuneConfig
from src.core.task_kind import kind_of
from src.data.splits import prepare_split
from src.hardware.accelerator import pick_accelerator
from src.inference.formats import default_metric, positive_index
from src.models.backbones import get_spec
from src.models.classifier import HeadSpec, build_head
from src.models.epoch_metrics import epoch_metric
from src.models.features import extract_features
from src.models.recipe import build_optimizer, make_optimizer

SPACE = {"head_layers": [0, 1, 2], "head_units": [128, 256, 512, 1024], "head_l2": [0.0, 1e-5, 1e-4, 1e-3],
         "optimizer": ["adam", "sgd", "adamw"]}


def tune(cfg: TuneConfig) -> dict:
    """Run the search; return the best values (also written as best_config.json for src.training.two_stage)."""
    import keras_tuner as kt

    arrays, labels, k, cfg, positive = cached_features(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    objective = kt.Objective(monitor(cfg.metric), direction="max" if higher_is_better(cfg.metric) else "min")
    tuner = kt.Hyperband(lambda hp: build_hypermodel(hp, arrays["train"].shape[1], k, cfg.metric, positive),
                         objective=objective, max_epochs=cfg.max_epochs, factor=cfg.factor,
                         hyperband_iterations=cfg.iterations, seed=cfg.seed, directory=str(out),
                         project_name="hyperband", overwrite=cfg.overwrite)
    tuner.search(arrays["train"], labels["train"], validation_data=(arrays["val"], labels["val"]),
                 batch_size=cfg.batch_size, verbose=2)
    trials = trial_table(tuner, cfg.metric)
    write_csv(out / "trials.csv", trials)
    plot_trials(trials, out / "trials.png", cfg)
    best = trials.iloc[0]
    config = best_config(cfg, best)
    write_json(out / "best_config.json", config)
    save_config(cfg, out)
    print(trials.head(10).to_string(index=False))
    print(f"best head: {monitor(cfg.metric)} {best[monitor(cfg.metric)]:.4f}; python -m src.train --config {out / 'best_config.json'}")
    return config


def cached_features(cfg: TuneConfig):
    """Return ({train, val} pooled features, {train, val} one-hot labels, classes, the config with its metric
    resolved, the positive class's index) of the saved split."""
    data = prepare_split(cfg)
    if data.val.empty:
        raise KitError("the split holds no validation images: Hyperband needs a holdout to compare heads")
    kind_of(data.class_map).check_job("tune", f"python -m src.tune: column {data.target}")
    cfg, _ = settle_metric(cfg, default_metric(data.comp.schema, data.class_map), kind_of(data.class_map),
                           classes=len(data.class_map.values))
    frames = {"train": data.train, "val": data.val}
    accelerator = pick_accelerator()
    if accelerator.batch_multiple > 1:  # keras-tuner fits NumPy arrays: batches cannot be padded for the devices
        raise KitError(f"python -m src.tune runs on one device; this process has {accelerator.detail}: run it with "
                       "KERAS_BACKEND=tensorflow (Kaggle's TPU image has no keras-tuner anyway)")
    arrays, _, _, _ = extract_features(get_spec(cfg.backbone), frames, cfg.weights, cfg, cfg.features_cache,
                                       accelerator.strategy)
    eye = np.eye(data.num_classes, dtype=np.float32)
    return (arrays, {"train": eye[data.y_train], "val": eye[data.y_val]}, data.num_classes, cfg,
            positive_index(data.class_map))


def build_hypermodel(hp, features: int, num_classes: int, metric: str = "accuracy", positive: int = 1):
    """Return a compiled head for one trial's hyperparameters."""
    head = HeadSpec(dropout=hp.Float("dropout", 0.0, 0.5, step=0.1),
                    layers=hp.Choice("head_layers", SPACE["head_layers"]),
                    units=hp.Choice("head_units", SPACE["head_units"]),
                    l2=hp.Choice("head_l2", SPACE["head_l2"]))
    model = build_head(features, num_classes, head)
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    extra = epoch_metric(metric, num_classes, positive)
    model.compile(optimizer=make_optimizer(hp.Choice("optimizer", SPACE["optimizer"]), lr),
                  loss="categorical_crossentropy", metrics=["accuracy", *([extra] if extra is not None else [])])
    build_optimizer(model)
    return model


def trial_table(tuner, metric: str = "accuracy") -> pd.DataFrame:
    """Return one row per finished trial (its values, its objective val_<metric> and its lowest val_loss), best
    first in the metric's direction, ties to the lower val_loss."""
    column, rows = monitor(metric), []
    for trial in tuner.oracle.trials.values():
        if trial.score is not None:
            loss = trial.metrics.get_best_value("val_loss") if trial.metrics.exists("val_loss") else None
            rows.append({"trial": trial.trial_id, column: float(trial.score), "val_loss": loss,
                         **trial.hyperparameters.values})
    if not rows:
        raise KitError("no Hyperband trial finished: see the messages above")
    rows.sort(key=lambda r: rank_key(r[column], r["val_loss"], metric))
    return pd.DataFrame(rows)


def best_config(cfg: TuneConfig, best: pd.Series) -> dict:
    """Return src.training.two_stage config fields: the data and backbone searched, and the best head.

    The learning rate found trains a head on frozen features, so it becomes the rate of a short
    head-only warm-up; fine-tuning the whole network wants its own, lower stage rates.
    """
    names = {f.name for f in dataclasses.fields(DataOptions)}
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    config.update({"backbone": cfg.backbone, "weights": cfg.weights, "metric": cfg.metric,
                   "dropout": float(best["dropout"]),
                   "head_layers": int(best["head_layers"]), "head_units": int(best["head_units"]),
                   "head_l2": float(best["head_l2"]), "optimizer": str(best["optimizer"]),
                   "warmup_lr": float(best["learning_rate"]), "warmup_epochs": 2})
    return config


def plot_trials(trials: pd.DataFrame, path: Path, cfg: TuneConfig) -> None:
    """Draw trials.png: each trial's val_<metric>, labelled with its head."""
    column = monitor(cfg.metric)
    rows = pd.DataFrame({"backbone": [f"{r.head_layers}x{r.head_units} d{r.dropout:.1f} {r.optimizer} "
                                      f"lr{r.learning_rate:.0e}" for r in trials.head(20).itertuples()],
                         "best_score": trials[column].head(20), "error": ""})
    plot_screening(rows, path, f"Hyperband heads on {cfg.backbone} features", "best_score", column)
