"""One stage of src.train: its model, its datasets, its fit (resumable, out-of-memory retry), the reports."""
from __future__ import annotations

import dataclasses
import shutil
import warnings

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from src.core.errors import KitError, disk_errors
from src.core.files import read_log, write_csv
from src.core.metric_choice import log_name, monitor
from src.core.plots import plot_curves
from src.core.task_kind import kind_of
from src.data.soft_labels import soft_targets
from src.data.splits import SplitData
from src.data.table_features import rows_for
from src.hardware.distributed import fit_multi_worker, predict_locally
from src.models.classifier import load_checked
from src.models.recipe import CompileOptions, compile_classifier, freeze_batchnorm, make_loss, unfreeze_top
from src.pipeline.images import make_eval_dataset, make_train_dataset
from src.runs.folder import RunFolder
from src.training.holdout import epoch_floor, judge_holdout, write_predictions
from src.training.history import collect_history, discard_broken_backup, finished_rows
from src.training.callbacks import (DiskSpaceGuard, LearningRateLogger, ResumableEarlyStopping, StopOnNonFiniteLoss,
                                    TargetMetrics, TimeLimit, keep_callbacks, resume_state,
                                    stop_state)
from src.training.multitask import loss_weights
from src.training.recipe_options import (back_off, check_plan, describe_recipe, ema_callbacks,
                                         refuse_on_several_machines, stage_plan)
from src.training.top_epochs import TopEpochs, average_top

@dataclasses.dataclass
class RunData(SplitData):
    """The split and labels every stage trains and validates on, with the heads of a multi-task run."""

    heads: dict = dataclasses.field(default_factory=dict)  # multi-task: {label column: ClassMap}, target included
    positive: int = 1         # the class whose probability auc scores (the metric itself: cfg.metric)
    table: object = None      # --metadata: the table features by id (src.data.table_features), else None

    @property
    def table_width(self) -> int:
        return 0 if self.table is None else self.table.shape[1]

    def table_rows(self, frame):
        """Return the frame's table feature rows (--metadata), or None without a metadata branch."""
        return None if self.table is None else rows_for(self.table, frame["id"])

    def labels(self, role: str):
        """Return a role's class indices: one array, or {column: array} for a multi-task run."""
        frame = self.train if role == "train" else self.val
        if not self.heads:
            return self.class_map.encode(frame[self.target])
        return {column: class_map.encode(frame[column]) for column, class_map in self.heads.items()}


class OutOfTime(Exception):
    """--time-limit ended a stage before its last epoch: the run is left for --resume."""

    def __init__(self, stage: str, epochs_done: int, epochs: int):
        super().__init__(stage)
        self.stage, self.epochs_done, self.epochs = stage, epochs_done, epochs


def run_stage(stage, cfg, spec, data: RunData, run: RunFolder, init_weights, accelerator, callbacks=(),
              deadline: float | None = None) -> dict:
    """Fit one stage, halving the batch on out-of-memory errors; return its best epoch (best_row).

    The halving ends at --min-batch-size, which is always tried once: out of memory there is a sentence
    naming the stage and its size. A write the disk refuses is one naming the run folder.

    Raises OutOfTime when the deadline (time.monotonic()) stopped it before its last epoch.
    """
    batch, accumulate = cfg.batch_size, cfg.accumulate
    while True:
        try:
            with disk_errors(run.path):  # Keras's BackupAndRestore and CSVLogger write in place
                return fit_stage(stage, cfg, spec, data, run, init_weights, accelerator, batch, callbacks, deadline,
                                 accumulate)
        except Exception as err:
            if not out_of_memory(err):
                raise
            if batch <= cfg.min_batch_size:  # the smallest batch was tried: another try cannot fit either
                flag = "--stage2-size" if stage.name == "stage2" else "--stage1-size"
                raise KitError(f"{stage.name}: out of memory at {stage.size[0]}x{stage.size[1]} even at batch size "
                               f"{batch} (--min-batch-size {cfg.min_batch_size}): pass a smaller {flag}, a smaller "
                               "--backbone, or train on an accelerator with more memory") from None
            batch, accumulate = back_off(stage.name, batch, accumulate, cfg.min_batch_size)
            run.clear_stage(stage.name)


def out_of_memory(err: Exception) -> bool:
    """Return True for an accelerator out-of-memory error: TensorFlow's type, or XLA's status under JAX."""
    return isinstance(err, tf.errors.ResourceExhaustedError) or (
        type(err).__name__ in ("XlaRuntimeError", "JaxRuntimeError") and "RESOURCE_EXHAUSTED" in str(err))


def fit_stage(stage, cfg, spec, data: RunData, run: RunFolder, init_weights, accelerator, batch: int,
              extra=(), deadline: float | None = None, accumulate: int = 1) -> dict:
    """Build the model at the stage's size, load init_weights, fit; return the best epoch (best_row)."""
    global_batch = accelerator.global_batch(batch, len(data.train))
    plan = stage_plan(stage, len(data.train), accelerator, global_batch, accumulate)
    if note := check_plan(cfg, stage, plan, len(data.train), global_batch):
        print(note)
    model = build_stage_model(stage, cfg, spec, data, init_weights, accelerator, plan)
    train_ds, val_ds = stage_datasets(stage, cfg, data, global_batch, accelerator)
    history_file = run.stage_history(stage.name)
    discard_broken_backup(run, stage.name)
    rows = finished_rows(history_file, run.backup(stage.name))
    resumed = stop_state(None if cfg.full_fit else rows, cfg.metric)  # full-fit: no val_* columns
    checkpoint = run.weights(stage.name)
    keeper = TopEpochs(run.top_epochs(stage.name), cfg.average_top, cfg.metric, rows) if cfg.average_top else None
    aliases = [TargetMetrics(data.target, cfg.metric)] if data.heads else []  # before the callbacks reading them
    # Kept when the fit ends (delete_checkpoint=False): a stage cut by --time-limit resumes from it;
    # write_reports removes the backups once every stage is done. Later callbacks see restored weights.
    backup = keras.callbacks.BackupAndRestore(str(run.backup(stage.name)), delete_checkpoint=False)
    guard = StopOnNonFiniteLoss(stage.name, stage.lr, accelerator.policy, accelerator.replicas)
    callbacks = [guard, DiskSpaceGuard(run.path, 3 + cfg.average_top), *aliases, backup, *ema_callbacks(cfg),
                 *keep_callbacks(cfg, stage, cfg.metric, checkpoint, resumed, epoch_floor(cfg, data)),
                 *([keeper] if keeper else []), LearningRateLogger(),
                 keras.callbacks.CSVLogger(str(history_file), append=True), *extra]
    if cfg.tensorboard:  # Keras's own logs: scalars per epoch and the graph, one folder per stage
        callbacks.append(keras.callbacks.TensorBoard(str(run.tensorboard(stage.name))))
    clock = TimeLimit(deadline) if deadline is not None else None
    callbacks += [clock] if clock else []  # last: the epoch's backup and log are written before it stops
    kept = "the last epoch kept (full-fit: no holdout)" if cfg.full_fit else f"best epoch by {monitor(cfg.metric)}"
    print(f"{stage.name}: {stage.size[0]}x{stage.size[1]}, up to {stage.epochs} epoch(s), lr {stage.lr:g}, "
          f"{describe_recipe(cfg, stage, batch, accumulate)}, "
          f"backbone {'trained' if stage.train_backbone else 'frozen'}, {kept}, "
          f"sampling {describe_sampling(cfg.sampling)}", flush=True)
    if accelerator.kind == "multi-worker":
        refuse_on_several_machines(cfg, bool(data.heads))
        fit_multi_worker(model, train_ds, val_ds, stage.epochs, callbacks, accelerator.strategy,
                         make_loss(cfg, "none", kind_of(data.class_map), data.class_map.scale), class_weights(data, cfg),
                         initial_epoch=0 if rows is None else len(rows))
    else:
        with warnings.catch_warnings():
            if int(train_ds.cardinality()) == tf.data.UNKNOWN_CARDINALITY:
                # A stream of unknown length (--sampling: each epoch's length is drawn; TFRecord shards declare
                # theirs): Keras learns it at the first epoch's end and warns "Your input ran out of data" then
                # and whenever a drawn epoch is shorter. By design here, not a pipeline fault.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(train_ds, validation_data=val_ds, epochs=stage.epochs, callbacks=callbacks, verbose=2,
                      shuffle=False, class_weight=class_weights(data, cfg))
    history = read_log(history_file)
    if clock is not None and clock.stopped and not early_stopped(callbacks) and len(history) < stage.epochs:
        raise OutOfTime(stage.name, len(history), stage.epochs)
    if cfg.full_fit:  # no holdout: the stage's weights are its last epoch's
        return {"score": None, "val_loss": None, "epoch": len(history)}
    if keeper is None:
        return best_row(history, cfg.metric)
    return average_top(model, keeper, val_ds, best_row(history, cfg.metric), cfg.metric, checkpoint, stage.name,
                       data.target if data.heads else "")


def best_row(history: pd.DataFrame, metric: str) -> dict:
    """Return the best epoch of a stage's log: {score, val_loss, epoch (1-based)}, chosen as the checkpoint chose it."""
    best, loss, wait = resume_state(history, metric)
    return {"score": best, "val_loss": loss, "epoch": len(history) - wait}


def describe_sampling(sampling: str) -> str:
    """Return the stage line's words for --sampling."""
    return {"natural": "natural (images as they come)", "balanced": "balanced (each class equally often)",
            "sqrt": "sqrt (each class in proportion to the square root of its count)"}[sampling]


def early_stopped(callbacks) -> bool:
    """Return True when early stopping ended the fit (then the stage is finished, whatever the clock said)."""
    return any(isinstance(c, ResumableEarlyStopping) and c.stopped_epoch > 0 for c in callbacks)


def build_stage_model(stage, cfg, spec, data: RunData, init_weights, accelerator, plan=None):
    """Return the compiled classifier for a stage: weights from the previous stage, layers frozen per the flags.

    plan: the StagePlan its optimizer trains by; None for a model that only predicts.
    """
    num_classes = {c: len(m.values) for c, m in data.heads.items()} or len(data.class_map.values)
    with accelerator.strategy.scope():
        weights = "none" if init_weights is not None else cfg.weights
        model = kind_of(data.class_map).build_network(cfg, spec, stage.size, data.class_map, num_classes, weights,
                                                      stage.train_backbone, data.table_width)  # the kind's network
        if init_weights is not None:
            load_checked(model, init_weights)
        if stage.train_backbone and cfg.unfreeze == "top":
            unfreeze_top(model, spec)
        if stage.train_backbone and not (cfg.train_batchnorm or cfg.weights == "none"):
            freeze_batchnorm(model, spec)
        heads = data.heads or None
        compile_classifier(model, cfg, CompileOptions(
            stage.lr, cfg.metric, data.positive, heads, loss_weights(cfg, list(data.heads)) if heads else None,
            data.target, kind_of(data.class_map), weighted=accelerator.batch_multiple > 1, plan=plan,
            warmup=stage.train_backbone, backbone_layer=spec.layer_name,
            steps_per_execution=accelerator.execution_steps(cfg.steps_per_execution), scale=data.class_map.scale))
    return model


def stage_datasets(stage, cfg, data: RunData, global_batch: int, accelerator):
    """Return (training, validation) datasets at the stage's size with one-hot labels (label smoothing).

    Every training batch is full where the accelerator needs it (TPUs compile one shape, JAX splits
    batches evenly over its devices); there the last validation batch is padded, with weight 0.
    """
    fixed_batches, multiple = accelerator.fixed_batches, accelerator.batch_multiple
    opts = dataclasses.replace(cfg, image_size=tuple(stage.size), batch_size=global_batch)
    if data.heads:  # {column: indices} -> {column: one-hot}
        ks = {c: len(m.values) for c, m in data.heads.items()}

        def one_hot(x, y, *weight):
            return x, {c: tf.one_hot(y[c], ks[c]) for c in ks}, *weight

        train = make_train_dataset(data.train, data.labels("train"), opts, seed=cfg.seed, drop_remainder=fixed_batches,
                                   sampling=cfg.sampling, classes=data.y_train, table=data.table_rows(data.train))
        val = make_eval_dataset(data.val, data.labels("val"), opts, multiple, weights=multiple > 1,
                                table=data.table_rows(data.val)) \
            if len(data.val) else None  # a full-fit has no holdout
        return train.map(one_hot), None if val is None else val.map(one_hot)
    return data.class_map.kind.datasets(cfg, data, opts, fixed_batches, multiple)  # the kind's targets (src.kinds)


def class_datasets(cfg, data: RunData, opts, fixed_batches: bool, multiple: int, rows: bool):
    """Return (training, validation) datasets of classes: one-hot rows (soft targets and MixUp's are rows
    already), or with rows (tags) the 0/1 row per image as it is."""
    k = len(data.class_map.values)
    targets = None if rows else soft_targets(data.train, data.class_map, data.target)
    train = make_train_dataset(data.train, data.y_train if targets is None else targets, opts, seed=cfg.seed,
                               num_classes=k, drop_remainder=fixed_batches, sampling=cfg.sampling,
                               classes=None if rows else data.y_train,
                               table=data.table_rows(data.train))
    val = make_eval_dataset(data.val, data.y_val, opts, multiple, weights=multiple > 1,
                            table=data.table_rows(data.val)) if len(data.val) else None
    if rows:  # the labels are already a 0/1 row per image
        return train, val
    if targets is None and cfg.mixup <= 0 and cfg.cutmix <= 0:  # soft targets and MixUp's are rows already
        train = train.map(lambda x, y: (x, tf.one_hot(y, k)))
    return train, None if val is None else val.map(lambda x, y, *weight: (x, tf.one_hot(y, k), *weight))


def number_datasets(cfg, data: RunData, opts, fixed_batches: bool, multiple: int):
    """Return (training, validation) datasets of a number target: (n, 1) float targets, no one-hot."""
    train = make_train_dataset(data.train, data.y_train, opts, seed=cfg.seed, num_classes=1,
                               drop_remainder=fixed_batches, sampling=cfg.sampling, classes=None)
    val = make_eval_dataset(data.val, data.y_val, opts, multiple, weights=multiple > 1) if len(data.val) else None
    return train, val


def class_weights(data: RunData, cfg):
    """Return {class index: weight} by inverse training frequency when --class-weights, else None."""
    if not cfg.class_weights:
        return None
    y = data.y_train
    counts = np.bincount(y, minlength=len(data.class_map.values)).astype(float)
    return {i: float(len(y) / (len(counts) * c)) if c else 0.0 for i, c in enumerate(counts)}


def write_reports(cfg, spec, data: RunData, run: RunFolder, stages, accelerator, kept) -> dict:
    """Write history.csv, curves.png and holdout_predictions.csv (with the kept stage's weights); return the
    holdout accuracy, the stage kept, and the holdout's --metric against the trivial answer's (judge_holdout)."""
    history = collect_history(run, stages, cfg.metric)
    write_csv(run.history_file, history)
    plot_curves(history, run.curves_file, f"{spec.name}: {', '.join(s.name for s in stages)}",
                log_name(cfg.metric))
    holdout = data.class_map.kind.write_holdout(cfg, spec, data, run, kept, accelerator)  # full-fit: None
    shutil.rmtree(run.backup(""), ignore_errors=True)  # every stage's
    verdict = judge_holdout(cfg, data, run) if len(data.val) else {}  # --metric beside the trivial answer's
    return {**verdict, **holdout, "final_stage": kept.name}


def write_holdout(cfg, spec, data: RunData, run: RunFolder, stage, accelerator) -> float:
    """Predict the validation images with the final weights; write ids, labels, probabilities; return accuracy."""
    model = build_stage_model(stage, cfg, spec, data, run.weights(stage.name), accelerator)
    opts = dataclasses.replace(cfg, image_size=tuple(stage.size), cache="none",  # one pass: nothing to reuse
                               batch_size=cfg.batch_size * accelerator.replicas)
    table = {} if data.table is None else {"table": data.table_rows(data.val)}  # --metadata's second input
    images = make_eval_dataset(data.val, data.y_val, opts, accelerator.batch_multiple, **table).map(lambda x, y: x)
    probs = predict_locally(model, images) if accelerator.kind == "multi-worker" else model.predict(images, verbose=0)
    heads = probs if isinstance(probs, dict) else {}
    heads = {column: values[:len(data.val)] for column, values in heads.items()}  # padding rows come last
    probs = heads.get(data.target, probs)[:len(data.val)]
    return write_predictions(cfg, data, run, probs, heads)
