"""Magnitude pruning of a trained run, fine-tuned briefly: `python -m src.prune --run R --sparsity 0.4`.

    python -m src.prune --run runs/mobilenet --sparsity 0.4 --sweep 0.2,0.4,0.6,0.8 --epochs 2

For each sparsity, every convolution and dense kernel with at least --min-params weights loses
its smallest-magnitude share of weights (zeroed layer by layer, as the Stanford Cars reference
did for MobileNetV2), the holdout is scored, the network is fine-tuned for --epochs with the
zeros held at zero after every step, and the holdout is scored again. Writes prune.csv and
prune.png (the run's metric, and accuracy, against sparsity) and pruned-<sparsity>.weights.h5 for --sparsity into
<run>/prune (or --out). tensorflow-model-optimization does not support Keras 3, hence the
masks kept here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from src.core.config import PipelineOptions, save_config
from src.core.errors import KitError
from src.core.plots import plot_pruning
from src.core.settings import PruneConfig
from src.data.competition import load_competition
from src.core.metric_choice import log_name, settle_metric
from src.core.task_kind import kind_of
from src.inference.formats import default_metric, positive_index
from src.inference.metrics import score
from src.inference.prediction import build_run_model, holdout_frame, load_run, predict_frame
from src.models.recipe import build_optimizer
from src.pipeline.images import make_train_dataset


def prune(cfg: PruneConfig) -> pd.DataFrame:
    """Run every sparsity level; return the table (sparsity, zeroed share, accuracy before/after fine-tuning)."""
    run = load_run(cfg.run)
    kind_of(run.class_map).check_job("prune", f"--run {cfg.run}: its target {run.target}")
    if run.config.targets:
        raise KitError(f"--run {cfg.run}: a multi-task run (--targets); pruning supports one-head runs")
    if run.config.full_fit:
        raise KitError(f"--run {cfg.run}: a full-fit (of {run.config.full_fit}), trained on every image, so no "
                       "holdout is left to score the pruning on; prune its reference run")
    levels = parse_levels(cfg)
    out = Path(cfg.out or Path(cfg.run) / "prune")
    comp = load_competition(run.config, with_test=False)  # the run's own data settings
    cfg, _ = settle_metric(cfg, default_metric(comp.schema, run.class_map), kind_of(run.class_map),
                           run.config.metric, str(run.folder.config_file), data_dir=run.config.data,
                           classes=len(run.class_map.values))
    train, val = run_frames(run, comp)
    model = build_run_model(run)
    dense = [w.copy() for w in model.get_weights()]
    names = tuple(dict.fromkeys(("accuracy", cfg.metric)))
    unpruned = holdout_scores(model, run, val, cfg, names)
    rows = [{"sparsity": 0.0, "zeroed": 0.0, **{f"{log_name(n)}_pruned": v for n, v in unpruned.items()},
             **{f"{log_name(n)}_finetuned": np.nan for n in names}}]
    print(f"unpruned: holdout {cfg.metric} {unpruned[cfg.metric]:.4f}")
    for level in levels:
        model.set_weights(dense)
        masks = magnitude_masks(model, level, cfg.min_params)
        apply_masks(masks)
        before = holdout_scores(model, run, val, cfg, names)
        if cfg.epochs > 0:
            fine_tune(model, masks, run, train, cfg)
        after = holdout_scores(model, run, val, cfg, names)
        zeroed = float(np.mean([1 - m.mean() for _, m in masks]))
        rows.append({"sparsity": level, "zeroed": zeroed, **{f"{log_name(n)}_pruned": v for n, v in before.items()},
                     **{f"{log_name(n)}_finetuned": v for n, v in after.items()}})
        print(f"sparsity {level:.2f}: {len(masks)} kernels pruned, holdout {cfg.metric} {before[cfg.metric]:.4f} "
              f"pruned, {after[cfg.metric]:.4f} fine-tuned", flush=True)
        if level == cfg.sparsity:
            out.mkdir(parents=True, exist_ok=True)
            model.save_weights(str(out / f"pruned-{level:.2f}.weights.h5"))
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "prune.csv", index=False)
    plot_pruning(table, out / "prune.png", f"{run.config.backbone}: magnitude pruning", log_name(cfg.metric))
    save_config(cfg, out)
    print(table.to_string(index=False))
    return table


def parse_levels(cfg: PruneConfig) -> list:
    """Return the sorted sparsities to try (always --sparsity), each checked to lie in (0, 1)."""
    try:
        levels = {float(v) for v in cfg.sweep.split(",") if v.strip()} | {cfg.sparsity}
    except ValueError:
        raise KitError(f"--sweep {cfg.sweep!r}: expected comma-separated numbers such as 0.2,0.4") from None
    bad = [v for v in levels if not 0 < v < 1]
    if bad:
        raise KitError(f"--sparsity/--sweep: {bad[0]} is not between 0 and 1")
    return sorted(levels)


def run_frames(run, comp=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the run's training and holdout images as rows of its competition (its own split)."""
    comp = comp or load_competition(run.config, with_test=False)  # the run's own data settings
    rows = comp.train.set_index(comp.train["id"].astype(str))
    ids = [i for i in run.split.loc[run.split["split"] == "train", "id"].astype(str) if i in rows.index]
    return rows.loc[ids].reset_index(drop=True), holdout_frame(run, comp)


def prunable(model, min_params: int):
    """Yield the kernel variables of every Conv/Dense layer (nested models included) with >= min_params weights."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from prunable(layer, min_params)
            continue
        for name in ("kernel", "depthwise_kernel"):
            variable = getattr(layer, name, None)
            if variable is not None and int(np.prod(variable.shape)) >= min_params:
                yield variable


def magnitude_masks(model, sparsity: float, min_params: int) -> list:
    """Return (variable, 0/1 mask) pairs zeroing each kernel's smallest-magnitude share of weights."""
    masks = []
    for variable in prunable(model, min_params):
        values = np.abs(np.asarray(variable.numpy())).ravel()
        mask = np.ones(values.size, np.float32)
        mask[np.argsort(values, kind="stable")[: int(sparsity * values.size)]] = 0.0
        masks.append((variable, mask.reshape(variable.shape)))
    if not masks:
        raise KitError(f"no kernel has {min_params} weights or more: lower --min-params")
    return masks


def apply_masks(masks) -> None:
    """Zero the pruned weights (again: an optimizer step moves them)."""
    for variable, mask in masks:
        variable.assign(variable.numpy() * mask)


def fine_tune(model, masks, run, train: pd.DataFrame, cfg: PruneConfig) -> None:
    """Train briefly at the run's size and augmentation, holding pruned weights at zero after every step."""
    class HoldZeros(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            apply_masks(masks)

    k = len(run.class_map.values)
    y = run.class_map.encode(train[run.target])
    data = make_train_dataset(train, y, pipeline(run, cfg), seed=run.config.seed)
    model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss="categorical_crossentropy", metrics=["accuracy"])
    build_optimizer(model)
    model.fit(data.map(lambda x, t: (x, tf.one_hot(t, k))), epochs=cfg.epochs, callbacks=[HoldZeros()], verbose=2,
              shuffle=False)  # the dataset shuffles itself
    apply_masks(masks)


def pipeline(run, cfg: PruneConfig) -> PipelineOptions:
    """Return the run's own image pipeline settings at its final size."""
    names = {f.name for f in dataclasses.fields(PipelineOptions)} - {"image_size", "batch_size", "cache"}
    kept = {k: getattr(run.config, k) for k in names}
    return PipelineOptions(**kept, image_size=run.size, batch_size=cfg.batch_size, cache="none")


def holdout_scores(model, run, frame: pd.DataFrame, cfg: PruneConfig, names) -> dict:
    """Return {metric: holdout score} of the model as it is now (accuracy and the run's metric)."""
    probs = predict_frame(run, frame, model=model, batch_size=cfg.batch_size)
    y, positive = run.class_map.encode(frame[run.target]), positive_index(run.class_map)
    return {name: score(probs, y, name, positive) for name in names}
