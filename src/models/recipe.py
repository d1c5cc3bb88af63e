"""How a classifier trains: which layers learn, the loss, the optimizer with its schedule.

    model = build_classifier(spec, size, classes, weights, head, train_backbone=True)
    freeze_batchnorm(model, spec)                     # pretrained statistics stay put
    compile_classifier(model, cfg, lr, heads=None)    # ExponentialDecay, loss, accuracy

Kept beside the model (not in the training loop) so screening, training, tuning and pruning
share one definition of each.
"""
from __future__ import annotations

import keras


def freeze_batchnorm(model, spec) -> None:
    """Keep the backbone's BatchNormalization layers frozen (the Keras fine-tuning guide's advice)."""
    for layer in model.get_layer(spec.name).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def unfreeze_top(model, spec) -> int:
    """Train only the backbone's layers from spec.unfreeze_from on; return how many layers stay frozen.

    The cut is the registry's: the last block(s) of each family (conv5 of ResNet50, block6+ of
    EfficientNet), where fine-tuning helps most for the least memory.
    """
    backbone = model.get_layer(spec.name)
    names = [layer.name for layer in backbone.layers]
    if spec.unfreeze_from not in names:
        raise ValueError(f"{spec.name}: no layer {spec.unfreeze_from!r} to start unfreezing from")
    cut = names.index(spec.unfreeze_from)
    for layer in backbone.layers[:cut]:
        layer.trainable = False
    return cut


def make_loss(cfg, reduction: str = "sum_over_batch_size"):
    """Return the training loss: cross-entropy, or focal loss (--loss focal), both with label smoothing.

    Focal loss (Lin et al. 2017) scales each example by alpha * (1 - p)^gamma: with gamma 0 and
    alpha 1 it is the cross-entropy; gamma > 0 shrinks the loss of images already classified well.
    """
    if cfg.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(alpha=cfg.focal_alpha, gamma=cfg.focal_gamma,
                                                         label_smoothing=cfg.label_smoothing, reduction=reduction)
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing, reduction=reduction)


def make_optimizer(name: str, schedule):
    """Return the optimizer named by --optimizer with a learning rate or schedule."""
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    return keras.optimizers.Adam(schedule)


def compile_classifier(model, cfg, lr: float, heads: dict | None = None, loss_weights: list | None = None) -> None:
    """Compile with ExponentialDecay from `lr`, the config's loss and accuracy (one per head when multi-task)."""
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, cfg.decay_steps, cfg.decay_rate)
    optimizer = make_optimizer(cfg.optimizer, schedule)
    if heads:
        columns = list(heads)
        model.compile(optimizer=optimizer, loss={c: make_loss(cfg) for c in columns},
                      loss_weights=dict(zip(columns, loss_weights or [1.0] * len(columns))),
                      metrics={c: ["accuracy"] for c in columns})
    else:
        model.compile(optimizer=optimizer, loss=make_loss(cfg), metrics=["accuracy"])
