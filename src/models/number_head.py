"""A number target's output and loss (regression): the network outputs the number itself, in its own units.

    activation, offset, span = number_output("mse", scale)    # linear: mean + sd * z
    loss = NumberLoss("mse", offset, span)                    # MSE on the standardised target

Losses (--loss): mse and huber on the target standardised by its training mean and sd (a linear
output); bce-scaled, a sigmoid output and binary cross-entropy on the target scaled to 0-1 by its
training range (the trick many PetFinder Pawpularity solutions used: the output can never leave the
range). Either way the model's last layer (Rescale) turns the output into the target's units, so
every later step (per-epoch val_rmse, holdout, TTA, ensembles, the submission) reads numbers; the
output and its scale are recorded by --loss in config.json and the TargetScale in class_map.json.
"""
from __future__ import annotations

import keras
from keras import ops

from src.core.errors import KitError

NUMBER_LOSSES = ("mse", "huber", "bce-scaled")
CLASS_LOSSES = ("cce", "focal")
EPSILON = 1e-7


def number_loss_name(loss: str) -> str:
    """Return the number loss --loss asks for: mse for the default (cce); a class loss is an error."""
    if loss == "cce":
        return "mse"
    if loss not in NUMBER_LOSSES:
        raise KitError(f"--loss {loss}: the target is a number per image (regression): expected "
                       f"{', '.join(NUMBER_LOSSES)}")
    return loss


def check_class_loss(loss: str, answer: str) -> None:
    """Raise naming --loss when a number's loss is asked of classes or tags."""
    if loss in NUMBER_LOSSES:
        raise KitError(f"--loss {loss}: the target is {answer}: expected {', '.join(CLASS_LOSSES)} "
                       f"({', '.join(NUMBER_LOSSES)} are for a number per image)")


def number_output(loss: str, scale) -> tuple:
    """Return (activation, offset, span) of the output layer: offset + span * activation(z), in target units.

    linear (mse, huber): offset the training mean, span its sd; sigmoid (bce-scaled): the training range.
    """
    if number_loss_name(loss) == "bce-scaled":
        return "sigmoid", scale.low, max(scale.high - scale.low, 1e-6)
    return "linear", scale.mean, scale.sd


def describe_output(loss: str, scale) -> str:
    """Return the words of the output line: the activation, the loss and the scale."""
    activation, offset, span = number_output(loss, scale)
    if activation == "sigmoid":
        return f"sigmoid output scaled to {offset:g}..{offset + span:g}, binary cross-entropy on the 0-1 target"
    return f"linear output, {number_loss_name(loss)} on the target standardised (mean {offset:.4g}, sd {span:.4g})"


@keras.saving.register_keras_serializable(package="kit")
class Rescale(keras.layers.Layer):
    """offset + span * x: the output in the target's units (no weights: the constants come from class_map.json)."""

    def __init__(self, offset: float = 0.0, span: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset, self.span = float(offset), float(span)

    def call(self, inputs):
        return inputs * self.span + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "span": self.span}


@keras.saving.register_keras_serializable(package="kit")
class NumberLoss(keras.losses.Loss):
    """mse or huber on (y - offset) / span, or binary cross-entropy on it (bce-scaled: the 0-1 target)."""

    def __init__(self, kind: str = "mse", offset: float = 0.0, span: float = 1.0, name: str | None = None,
                 reduction: str = "sum_over_batch_size"):
        super().__init__(name=name or kind, reduction=reduction)
        self.kind, self.offset, self.span = kind, float(offset), float(span)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.reshape(ops.cast(y_true, "float32"), ops.shape(y_pred))
        truth, guess = (y_true - self.offset) / self.span, (y_pred - self.offset) / self.span
        if self.kind == "mse":
            return ops.mean(ops.square(truth - guess), axis=-1)
        if self.kind == "huber":
            gap = ops.abs(truth - guess)
            return ops.mean(ops.where(gap <= 1.0, 0.5 * ops.square(gap), gap - 0.5), axis=-1)
        truth, guess = ops.clip(truth, 0.0, 1.0), ops.clip(guess, EPSILON, 1.0 - EPSILON)
        return ops.mean(-(truth * ops.log(guess) + (1.0 - truth) * ops.log(1.0 - guess)), axis=-1)

    def get_config(self):
        return {"kind": self.kind, "offset": self.offset, "span": self.span, "name": self.name,
                "reduction": self.reduction}


def number_loss(loss: str, scale, reduction: str = "sum_over_batch_size") -> NumberLoss:
    """Return the NumberLoss --loss asks for, on the scale the output layer uses."""
    _, offset, span = number_output(loss, scale)
    return NumberLoss(number_loss_name(loss), offset, span, reduction=reduction)
