"""The pieces of src.train: run-folder setup, one stage's fit (resume, out-of-memory retry), reports."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from src.errors import KitError

HISTORY_COLUMNS = ["stage", "epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy"]


@dataclasses.dataclass
class RunData:
    """The split and labels every stage trains and validates on."""

    train: pd.DataFrame
    val: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    class_map: object
    heads: dict = dataclasses.field(default_factory=dict)  # multi-task: {label column: ClassMap}, target included
    target: str = ""

    def labels(self, role: str):
        """Return a role's class indices: one array, or {column: array} for a multi-task run."""
        frame = self.train if role == "train" else self.val
        if not self.heads:
            return self.y_train if role == "train" else self.y_val
        return {column: class_map.encode(frame[column]) for column, class_map in self.heads.items()}


def prepare_run(cfg, out: Path) -> RunData:
    """Check the run folder, then save config.json, class_map.json and split.csv into it."""
    from src.competition import load_competition
    from src.splits import load_or_make_split
    from src.train import check_run_folder

    check_run_folder(cfg, out)
    comp = load_competition(cfg, with_test=False)
    split = load_or_make_split(comp, cfg)
    if cfg.extra_data:
        from src.extra_data import add_extra_data

        split = add_extra_data(split, comp, cfg)
    out.mkdir(parents=True, exist_ok=True)
    keep_first_config(cfg, out)
    comp.save_class_maps(out)
    split.drop(columns=["width", "height", "orientation"]).to_csv(out / "split.csv", index=False)
    class_map = comp.class_maps[comp.target]
    train, val = split[split["split"] == "train"], split[split["split"] == "val"]
    from src.multitask import task_columns

    heads = {column: comp.class_maps[column] for column in task_columns(cfg, comp)}
    return RunData(train, val, class_map.encode(train[comp.target]), class_map.encode(val[comp.target]),
                   class_map, heads, comp.target)


def keep_first_config(cfg, out: Path) -> None:
    """Write config.json, keeping the first one on --resume (the run's settings are the original ones)."""
    from src.config import save_config as write

    if not (cfg.resume and (out / "config.json").is_file()):
        write(cfg, out)


def run_stage(stage, cfg, spec, data: RunData, out: Path, init_weights, strategy, callbacks=()) -> float:
    """Fit one stage, halving the batch on out-of-memory errors; return its best val_accuracy."""
    import tensorflow as tf

    from src.train import clear_stage

    batch = cfg.batch_size
    while True:
        try:
            return fit_stage(stage, cfg, spec, data, out, init_weights, strategy, batch, callbacks)
        except tf.errors.ResourceExhaustedError as err:
            smaller = batch // 2
            if smaller < cfg.min_batch_size:
                raise KitError(f"{stage.name}: out of memory at batch size {batch}, and halving it would go "
                               f"below --min-batch-size {cfg.min_batch_size}: use a smaller stage size") from err
            print(f"{stage.name}: out of memory at batch size {batch}; retrying the stage with batch size {smaller}")
            clear_stage(out, stage.name)
            batch = smaller


def fit_stage(stage, cfg, spec, data: RunData, out: Path, init_weights, strategy, batch: int, extra=()) -> float:
    """Build the model at the stage's size, load init_weights, fit; return the best val_accuracy."""
    import keras

    model = build_stage_model(stage, cfg, spec, data, init_weights, strategy)
    train_ds, val_ds = stage_datasets(stage, cfg, data, batch * strategy.num_replicas_in_sync)
    history_file = out / f"history-{stage.name}.csv"
    backup = out / "backup" / stage.name
    rows = finished_rows(history_file, backup)
    from src.callbacks import (
        LearningRateLogger,
        ResumableCheckpoint,
        ResumableEarlyStopping,
        TargetMetrics,
        resume_state,
    )

    best, wait = resume_state(rows)
    checkpoint = out / f"{stage.name}.weights.h5"
    aliases = [TargetMetrics(data.target)] if data.heads else []  # before the callbacks that read val_accuracy
    callbacks = [*aliases, keras.callbacks.BackupAndRestore(str(backup)),  # later callbacks see restored weights
                 ResumableEarlyStopping(stage.patience, best, wait, checkpoint if best is not None else None),
                 ResumableCheckpoint(checkpoint, best), LearningRateLogger(),
                 keras.callbacks.CSVLogger(str(history_file), append=True), *extra]
    print(f"{stage.name}: {stage.size[0]}x{stage.size[1]}, up to {stage.epochs} epoch(s), lr {stage.lr:g}, "
          f"batch {batch}, backbone {'trained' if stage.train_backbone else 'frozen'}", flush=True)
    if is_multi_worker():
        from src.distributed import fit_multi_worker

        if data.heads:
            raise KitError("--targets: multi-task training on several machines is not supported")

        loss = make_loss(cfg, reduction="none")
        fit_multi_worker(model, train_ds, val_ds, stage.epochs, callbacks, strategy, loss, class_weights(data, cfg))
    else:
        model.fit(train_ds, validation_data=val_ds, epochs=stage.epochs, callbacks=callbacks, verbose=2,
                  shuffle=False, class_weight=class_weights(data, cfg))
    return float(pd.read_csv(history_file)["val_accuracy"].max())


def is_multi_worker() -> bool:
    """Return True when training spans several machines (src.distributed's loop instead of fit)."""
    from src.accelerator import found

    return found() is not None and found().kind == "multi-worker"


def build_stage_model(stage, cfg, spec, data: RunData, init_weights, strategy):
    """Return the compiled classifier for a stage: weights from the previous stage, BatchNorm per the flags."""
    import keras

    from src.model import HeadSpec, build_classifier

    num_classes = {c: len(m.values) for c, m in data.heads.items()} or len(data.class_map.values)
    with strategy.scope():
        weights = "none" if init_weights is not None else cfg.weights
        model = build_classifier(spec, stage.size, num_classes, weights, HeadSpec.from_config(cfg),
                                 stage.train_backbone, cfg.head_scheme)
        if init_weights is not None:
            model.load_weights(str(init_weights))
        if stage.train_backbone and not (cfg.train_batchnorm or cfg.weights == "none"):
            for layer in model.get_layer(spec.name).layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False  # pretrained statistics stay put (Keras fine-tuning guide)
        schedule = keras.optimizers.schedules.ExponentialDecay(stage.lr, cfg.decay_steps, cfg.decay_rate)
        if data.heads:  # one loss and one accuracy per head, weighted by --loss-weights
            from src.multitask import loss_weights

            columns = list(data.heads)
            model.compile(optimizer=make_optimizer(cfg.optimizer, schedule),
                          loss={c: make_loss(cfg) for c in columns},
                          loss_weights=dict(zip(columns, loss_weights(cfg, columns))),
                          metrics={c: ["accuracy"] for c in columns})
        else:
            model.compile(optimizer=make_optimizer(cfg.optimizer, schedule), loss=make_loss(cfg),
                          metrics=["accuracy"])
    return model




def make_loss(cfg, reduction: str = "sum_over_batch_size"):
    """Return the training loss: cross-entropy, or focal loss (--loss focal), both with label smoothing.

    Focal loss (Lin et al. 2017) scales each example by alpha * (1 - p)^gamma: with gamma 0 and
    alpha 1 it is the cross-entropy; gamma > 0 shrinks the loss of images already classified well.
    """
    import keras

    if cfg.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(alpha=cfg.focal_alpha, gamma=cfg.focal_gamma,
                                                         label_smoothing=cfg.label_smoothing, reduction=reduction)
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing, reduction=reduction)


def make_optimizer(name: str, schedule):
    """Return the optimizer named by --optimizer with the stage's learning-rate schedule."""
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    return keras.optimizers.Adam(schedule)


def stage_datasets(stage, cfg, data: RunData, global_batch: int):
    """Return (training, validation) datasets at the stage's size with one-hot labels (label smoothing)."""
    import tensorflow as tf

    from src.accelerator import found
    from src.images import make_eval_dataset, make_train_dataset

    opts = dataclasses.replace(cfg, image_size=tuple(stage.size), batch_size=global_batch)
    k = len(data.class_map.values)
    tpu = found() is not None and found().kind == "tpu"  # TPUs need fixed batch shapes
    if data.heads:  # {column: indices} -> {column: one-hot}
        ks = {c: len(m.values) for c, m in data.heads.items()}

        def one_hot(x, y):
            return x, {c: tf.one_hot(y[c], ks[c]) for c in ks}

        train = make_train_dataset(data.train, data.labels("train"), opts, seed=cfg.seed, drop_remainder=tpu)
        return train.map(one_hot), make_eval_dataset(data.val, data.labels("val"), opts).map(one_hot)
    train = make_train_dataset(data.train, data.y_train, opts, seed=cfg.seed, num_classes=k, drop_remainder=tpu)
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        train = train.map(lambda x, y: (x, tf.one_hot(y, k)))
    val = make_eval_dataset(data.val, data.y_val, opts).map(lambda x, y: (x, tf.one_hot(y, k)))
    return train, val


def class_weights(data: RunData, cfg):
    """Return {class index: weight} by inverse training frequency when --class-weights, else None."""
    if not cfg.class_weights:
        return None
    counts = np.bincount(data.y_train, minlength=len(data.class_map.values)).astype(float)
    return {i: float(len(data.y_train) / (len(counts) * c)) if c else 0.0 for i, c in enumerate(counts)}


def finished_rows(history_file: Path, backup: Path) -> pd.DataFrame | None:
    """Return the stage's history rows of finished epochs (trimmed to the backup's epoch), or None."""
    if not history_file.is_file():
        return None
    rows = pd.read_csv(history_file)
    metadata = backup / "training_metadata.json"
    done = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else len(rows)
    rows = rows[rows["epoch"] < done]
    rows.to_csv(history_file, index=False)  # an epoch logged but not backed up is run again
    return rows


def write_reports(cfg, spec, data: RunData, out: Path, stages, strategy) -> dict:
    """Write history.csv, curves.png and holdout_predictions.csv; return the holdout accuracy."""
    from src.plots import plot_curves

    history = collect_history(out, stages)
    history.to_csv(out / "history.csv", index=False)
    plot_curves(history, out / "curves.png", f"{spec.name}: {', '.join(s.name for s in stages)}")
    last = [s for s in stages if (out / f"{s.name}.weights.h5").is_file()][-1]
    accuracy = write_holdout(cfg, spec, data, out, last, strategy)
    shutil.rmtree(out / "backup", ignore_errors=True)
    return {"holdout_accuracy": accuracy, "final_stage": last.name}


def collect_history(out: Path, stages) -> pd.DataFrame:
    """Return one row per epoch of every stage: stage, epoch (1-based), lr, loss, accuracy, val_*."""
    parts = []
    for stage in stages:
        path = out / f"history-{stage.name}.csv"
        if path.is_file():
            rows = pd.read_csv(path).assign(stage=stage.name)
            rows["epoch"] = rows["epoch"] + 1
            heads = [c for c in rows.columns if c.endswith("_accuracy") and c not in HISTORY_COLUMNS]
            parts.append(rows.reindex(columns=HISTORY_COLUMNS + heads))  # multi-task: accuracy per head too
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HISTORY_COLUMNS)


def write_holdout(cfg, spec, data: RunData, out: Path, stage, strategy) -> float:
    """Predict the validation images with the final weights; write ids, labels, probabilities; return accuracy."""
    from src.images import make_eval_dataset

    model = build_stage_model(stage, cfg, spec, data, out / f"{stage.name}.weights.h5", strategy)
    opts = dataclasses.replace(cfg, image_size=tuple(stage.size), cache="none")  # one pass: nothing to reuse
    images = make_eval_dataset(data.val, data.y_val, opts).map(lambda x, y: x)
    if is_multi_worker():
        from src.distributed import predict_locally

        probs = predict_locally(model, images)
    else:
        probs = model.predict(images, verbose=0)
    heads = probs if isinstance(probs, dict) else {}
    probs = heads.get(data.target, probs)
    values = data.class_map.values
    frame = pd.DataFrame({"id": data.val["id"].to_numpy(), "label": data.class_map.decode(data.y_val),
                          "predicted": data.class_map.decode(probs.argmax(axis=1))})
    for column, head_probs in heads.items():  # every head's answer, so its accuracy can be checked
        truth, guess = data.heads[column].encode(data.val[column]), head_probs.argmax(axis=1)
        if column != data.target:
            frame[f"{column}_label"] = data.val[column].to_numpy()
            frame[f"{column}_predicted"] = data.heads[column].decode(guess)
        print(f"holdout accuracy of head {column}: {(truth == guess).mean():.4f}")
    for i, value in enumerate(values):
        frame[f"prob_{value}"] = probs[:, i]
    frame.to_csv(out / "holdout_predictions.csv", index=False)
    return float((probs.argmax(axis=1) == data.y_val).mean())
