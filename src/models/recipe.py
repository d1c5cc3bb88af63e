"""How a classifier trains: which layers learn, the loss, the optimizer with its schedule.

    model = build_classifier(spec, size, classes, weights, head, train_backbone=True)
    freeze_batchnorm(model, spec)                     # pretrained statistics stay put
    compile_classifier(model, cfg, CompileOptions(lr, plan=StagePlan(steps, epochs, accumulate)))  # schedule, loss

Kept beside the model (not in the training loop) so screening, training, tuning and pruning
share one definition of each.
"""
from __future__ import annotations

import dataclasses
import math

import keras

from src.core.errors import KitError
from src.core.task_kind import TaskKind, kind_named


def freeze_batchnorm(model, spec) -> None:
    """Keep the backbone's BatchNormalization layers frozen (the Keras fine-tuning guide's advice)."""
    for layer in all_layers(model.get_layer(spec.layer_name)):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def all_layers(model) -> list:
    """Return every layer inside a model, nested models included (a keras-hub backbone is one layer of ours)."""
    found = []
    for layer in model.layers:
        found += [layer, *(all_layers(layer) if hasattr(layer, "layers") else [])]
    return found


def unfreeze_top(model, spec) -> int:
    """Train only the backbone's layers from spec.unfreeze_from on; return how many layers stay frozen.

    The cut is the registry's: the last block(s) of each family (conv5 of ResNet50, block6+ of
    EfficientNet), where fine-tuning helps most for the least memory.
    """
    if not spec.unfreeze_from:
        raise KitError(f"--unfreeze top: {spec.name} has no registry cut point to unfreeze from; use --unfreeze all")
    backbone = model.get_layer(spec.layer_name)
    names = [layer.name for layer in backbone.layers]
    if spec.unfreeze_from not in names:
        raise ValueError(f"{spec.name}: no layer {spec.unfreeze_from!r} to start unfreezing from")
    cut = names.index(spec.unfreeze_from)
    for layer in backbone.layers[:cut]:
        layer.trainable = False
    return cut


def make_loss(cfg, reduction: str = "sum_over_batch_size", kind: TaskKind | None = None, scale=None):
    """Return the training loss the task kind trains with (src.kinds; no kind: one label per image): a class
    loss (class_loss), an identity's ArcFace margin, a number's mse, huber or bce-scaled (scale: its TargetScale,
    src.models.number_head)."""
    return (kind or kind_named("label")).loss(cfg, reduction, scale)


def class_loss(cfg, reduction: str = "sum_over_batch_size", independent: bool = False):
    """Return a class loss: cross-entropy, or focal loss (--loss focal), both with label smoothing.

    Focal loss (Lin et al. 2017) scales each example by alpha * (1 - p)^gamma: with gamma 0 and
    alpha 1 it is the cross-entropy; gamma > 0 shrinks the loss of images already classified well.
    independent (tags: a sigmoid per output): the binary forms, one yes/no per output.
    """
    if independent:
        if cfg.loss == "focal":
            return keras.losses.BinaryFocalCrossentropy(alpha=min(cfg.focal_alpha, 1.0), gamma=cfg.focal_gamma,
                                                        apply_class_balancing=cfg.focal_alpha < 1,
                                                        label_smoothing=cfg.label_smoothing, reduction=reduction)
        return keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing, reduction=reduction)
    if cfg.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(alpha=cfg.focal_alpha, gamma=cfg.focal_gamma,
                                                         label_smoothing=cfg.label_smoothing, reduction=reduction)
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing, reduction=reduction)


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What a stage's optimizer is planned for: batches per epoch, epochs, batches per update (--accumulate)."""

    steps_per_epoch: int
    epochs: int
    accumulate: int = 1


def steps_per_epoch(images: int, global_batch: int, drop_remainder: bool) -> int:
    """Return the batches one epoch of `images` makes (a last partial batch dropped where batches must be full)."""
    return max(1, images // global_batch if drop_remainder else math.ceil(images / global_batch))


def make_schedule(cfg, lr: float, plan: StagePlan | None = None, warmup: bool = True):
    """Return the learning rate of a stage: --schedule exponential or cosine, from `lr`.

    cosine: a linear warm-up from 0 to lr over --lr-warmup-epochs (when `warmup`: stages that train the
    backbone), then cosine decay to 0 at the stage's last planned batch (Keras's CosineDecay). Schedules
    count batches (the optimizer's iteration counter, which BackupAndRestore restores on --resume), also
    under --accumulate. plan None: a model compiled only to predict, whose rate is never used.
    """
    if cfg.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(lr, cfg.decay_steps, cfg.decay_rate)
    if plan is None:
        return lr
    total = plan.steps_per_epoch * plan.epochs
    warm = min(round(cfg.lr_warmup_epochs * plan.steps_per_epoch), total - 1) if warmup else 0
    if warm <= 0:
        return keras.optimizers.schedules.CosineDecay(lr, total)
    return keras.optimizers.schedules.CosineDecay(0.0, total - warm, warmup_target=lr, warmup_steps=warm)


class BackboneRate:
    """Mixed into a Keras optimizer: the backbone's variables step at backbone_lr_scale times the rate.

    Keras optimizers have one rate; every one of them updates a variable in update_step(gradient,
    variable, learning_rate), on the TensorFlow and JAX backends alike, so scaling the rate there for
    the backbone's variables scales their step for SGD and Adam alike (scaling the gradients would not:
    Adam divides them by their own size). Gradient accumulation, the EMA and loss scaling happen around
    update_step and are unchanged; AdamW's weight decay (applied outside update_step) keeps the head's rate.
    """

    def __init__(self, *args, backbone_lr_scale: float = 1.0, backbone_variables=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.backbone_lr_scale = backbone_lr_scale
        self._backbone_keys = frozenset(self._var_key(v) for v in backbone_variables)  # keys, not tracked variables

    def build(self, variables):
        super().build(variables)
        self._scaled = frozenset(i for i, v in enumerate(variables) if self._var_key(v) in self._backbone_keys)

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._scaled:
            learning_rate = learning_rate * self.backbone_lr_scale
        return super().update_step(gradient, variable, learning_rate)


OPTIMIZERS = {"sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW, "adam": keras.optimizers.Adam}
SCALED = {name: type(f"BackboneRate{kind.__name__}", (BackboneRate, kind), {}) for name, kind in OPTIMIZERS.items()}


def make_optimizer(name: str, schedule, accumulate: int = 1, ema: float = 0.0, backbone_lr_scale: float = 1.0,
                   backbone_variables=()):
    """Return the optimizer named by --optimizer with a learning rate or schedule.

    accumulate > 1: gradients of that many batches averaged per update (Keras's gradient_accumulation_steps);
    ema > 0: the optimizer keeps an exponential moving average of the weights with that momentum;
    backbone_lr_scale < 1: backbone_variables step at that times the rate (BackboneRate).
    Under mixed_float16 it comes wrapped in ReplicaSafeLossScaleOptimizer (Keras would wrap it in
    its own LossScaleOptimizer at compile time, which can apply non-finite gradients on several GPUs).
    """
    extra = {"gradient_accumulation_steps": accumulate if accumulate > 1 else None,
             "use_ema": ema > 0, "ema_momentum": ema if ema > 0 else 0.99}
    if name == "sgd":
        extra.update(momentum=0.9, nesterov=True)
    elif name == "adamw":
        extra.update(weight_decay=1e-4)
    kind = OPTIMIZERS.get(name, keras.optimizers.Adam)
    if backbone_lr_scale != 1 and backbone_variables:
        kind = SCALED.get(name, SCALED["adam"])
        extra.update(backbone_lr_scale=backbone_lr_scale, backbone_variables=backbone_variables)
    optimizer = kind(schedule, **extra)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return ReplicaSafeLossScaleOptimizer(optimizer)
    return optimizer


@keras.saving.register_keras_serializable(package="kit")
class ReplicaSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras's dynamic loss scaling, with every replica agreeing whether a step's gradients are finite.

    Under tf.distribute.MirroredStrategy, Keras's LossScaleOptimizer (3.13.2 and 3.15.1 alike)
    asks only the first replica whether its gradients are finite (its comment assumes they were
    all-reduced already; they are not), then applies every replica's gradients, all-reduced: a
    float16 overflow on another replica only puts inf into the weights, and the loss is NaN from
    then on (tests/test_accelerator.py: two logical CPU devices as two GPUs). Here the replicas
    all-reduce a count of non-finite gradients first, and a step any replica overflowed is made
    non-finite on all of them, so Keras skips it everywhere and halves the loss scale.
    """

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if keras.backend.backend() == "tensorflow" and any(g is not None for g in grads):
            import tensorflow as tf

            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                overflowed = 1.0 - tf.cast(self.check_finite(grads), tf.float32)
                anywhere = context.all_reduce(tf.distribute.ReduceOp.SUM, overflowed)
                first = next(i for i, g in enumerate(grads) if g is not None)
                poison = tf.where(anywhere > 0, float("nan"), 0.0)
                grads[first] = grads[first] + tf.cast(poison, grads[first].dtype)
        return super().apply(grads, trainable_variables)


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """What compiling a stage's classifier needs beside the TrainConfig: its rate, heads, metric and plan."""

    lr: float                        # where the --schedule starts
    metric: str = "accuracy"         # the competition's metric, logged per epoch (multi-task: the target's head)
    positive: int = 1                # the class whose probability auc scores
    heads: dict | None = None        # multi-task: {label column: ClassMap}
    loss_weights: list | None = None  # one per head (--loss-weights); None: 1 each
    target: str | None = None        # the head the submission scores
    kind: TaskKind | None = None     # what one answer is: tags get binary losses and per-tag accuracy
    weighted: bool = False           # metrics honour sample weights (JAX's padded batches weigh 0)
    plan: StagePlan | None = None    # the stage's batches, epochs and --accumulate (make_schedule)
    warmup: bool = True              # --lr-warmup-epochs applies (not to the head-only warm-up)
    backbone_layer: str = ""         # its variables step at --backbone-lr-scale times the rate
    steps_per_execution: int = 1     # batches per compiled training call (the accelerator's choice)
    scale: object = None             # a number target's TargetScale (its loss's scale)


def compile_classifier(model, cfg, options: CompileOptions) -> None:
    """Compile with the --schedule from options.lr, the config's loss, accuracy (one per head when multi-task)
    and the competition's metric (src.models.epoch_metrics; multi-task: on the target's head only); --ema and
    the optimizer from the config. Unweighted metrics are Keras's plain ones, which ignore class weights.
    """
    o = options
    backbone = model.get_layer(o.backbone_layer).trainable_variables if o.backbone_layer else ()
    optimizer = make_optimizer(cfg.optimizer, make_schedule(cfg, o.lr, o.plan, o.warmup),
                               o.plan.accumulate if o.plan else 1, cfg.ema, cfg.backbone_lr_scale, backbone)
    key = "weighted_metrics" if o.weighted else "metrics"
    kind = o.kind or kind_named("label")  # its per-epoch metric: the kit's by name (epoch_metrics), Dice on masks
    if o.heads:
        columns = list(o.heads)
        scored = {c: [m for m in ["accuracy", c == o.target and kind.epoch_metric(o.metric, len(o.heads[c].values),
                                                                                    o.positive)] if m] for c in columns}
        # the target's loss is its kind's (an identity: the ArcFace margin); every other head's a class loss
        model.compile(optimizer=optimizer, loss={c: make_loss(cfg, kind=o.kind) if c == o.target else make_loss(cfg)
                                                 for c in columns},
                      loss_weights=dict(zip(columns, o.loss_weights or [1.0] * len(columns))),
                      steps_per_execution=o.steps_per_execution, **{key: scored})
    else:
        extra = kind.epoch_metric(o.metric, int(model.outputs[0].shape[-1]), o.positive)
        model.compile(optimizer=optimizer, loss=make_loss(cfg, kind=o.kind, scale=o.scale),
                      steps_per_execution=o.steps_per_execution,
                      **{key: [m for m in (accuracy_metric(o.kind), extra) if m is not None]})
    build_optimizer(model)


def build_optimizer(model) -> None:
    """Create the compiled optimizer's slots (moments, accumulators, EMA copies) now; return nothing.

    Why: on TensorFlow with no distribution strategy, Keras defers them to the first trace of the train step,
    where each is a variable initialised under a tf.cond; built here, eagerly, the first fit of a small model
    took ~1 s less (3.2 s against 4.3 s for a tiny_resnet epoch, measured here). Under a strategy Keras builds
    them before tracing itself, and on JAX always: both find them built. Call it inside the scope the model
    was compiled in, with the model's trainable variables final.
    """
    if keras.backend.backend() == "tensorflow" and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def accuracy_metric(kind: TaskKind | None = None):
    """Return the metric logged as accuracy, the task kind's (no kind: one label per image): Keras's own choice,
    or per-output binary accuracy at 0.5 (tags); None for a kind without one (a number: its --metric instead).

    Named accuracy either way, so early stopping, checkpoints and reports read val_accuracy.
    """
    return (kind or kind_named("label")).accuracy_metric()
