"""Multi-task runs (`python -m src.train --targets make_id,model_id`): which columns, what weights.

One backbone, one softmax head per label column (CompCars: make and model; Stanford Cars:
model, make and type). The submission's column must be among them: early stopping, the best
checkpoint and the submission follow its head. The heads are built by src.models.classifier.multi_heads.
"""
from __future__ import annotations

from src.core.errors import KitError


def task_columns(cfg, comp) -> list:
    """Return the label columns of a multi-task run (--targets), checked; [] for one head."""
    if not cfg.targets:
        return []
    columns = [c.strip() for c in cfg.targets.split(",") if c.strip()]
    unknown = [c for c in columns if c not in comp.label_columns]
    if unknown:
        raise KitError(f"--targets: {unknown[0]!r} is not a label column of {comp.root} "
                       f"(label columns: {', '.join(map(str, comp.label_columns))})")
    if comp.target not in columns:
        raise KitError(f"--targets must include {comp.target!r}, the column the submission predicts")
    weights = loss_weights(cfg, columns)
    if len(weights) != len(columns):
        raise KitError(f"--loss-weights: {len(weights)} value(s) for {len(columns)} target(s) {', '.join(columns)}")
    if cfg.mixup > 0 or cfg.cutmix > 0 or cfg.class_weights:
        raise KitError("--targets: MixUp, CutMix and --class-weights work with one head only")
    return columns


def loss_weights(cfg, columns: list) -> list:
    """Return one loss weight per target column: --loss-weights, else 1 each."""
    if not cfg.loss_weights:
        return [1.0] * len(columns)
    try:
        return [float(v) for v in cfg.loss_weights.split(",")]
    except ValueError:
        raise KitError(f"--loss-weights {cfg.loss_weights!r}: expected numbers such as 0.3,1") from None
