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

from pathlib import Path

import keras
import numpy as np
from keras import ops

from src.core.errors import KitError
from src.core.files import atomic_path

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


REGRESSORS = ("ridge", "svr")   # --head: a regressor on the pooled features instead of the trained network
REGRESSOR_FILE = "regressor.npz"


class EmbeddingRegressor(keras.layers.Layer):
    """A ridge or RBF support-vector regressor fitted on pooled features, as a layer: the number in target units.

    params (numpy arrays, from fit_regressor or a run's regressor.npz): the features' mean and scale, the
    target's mean and sd, and either a ridge's coef and intercept or an SVR's support vectors, dual
    coefficients, gamma and intercept. No weights of its own (the run's weights file holds the backbone's);
    params None: a placeholder of zeros, for the model whose features are being extracted.
    """

    def __init__(self, params: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.params = params

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if not self.params:
            return ops.zeros_like(x[:, :1])
        p = {k: ops.convert_to_tensor(v, "float32") for k, v in self.params.items() if k != "kind"}
        z = (x - p["mean"]) / p["scale"]
        if "support" in p:  # RBF kernel: exp(-gamma |z - s|^2) over the support vectors
            distance = ops.sum(z * z, axis=1, keepdims=True) - 2 * ops.matmul(z, ops.transpose(p["support"])) + \
                ops.sum(p["support"] * p["support"], axis=1)[None, :]
            out = ops.matmul(ops.exp(-p["gamma"] * ops.maximum(distance, 0.0)), p["dual"][:, None])
        else:
            out = ops.matmul(z, p["coef"][:, None])
        return (out + p["intercept"]) * p["y_sd"] + p["y_mean"]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def fit_regressor(kind: str, features, y, scale) -> dict:
    """Return the params of a ridge (RidgeCV over alphas 0.1-1000) or RBF SVR (C 20, Pawpularity's) fitted on
    standardised features against the target standardised by the TargetScale."""
    from sklearn.linear_model import RidgeCV
    from sklearn.svm import SVR

    features = np.asarray(features, dtype=np.float64)
    mean, spread = features.mean(axis=0), features.std(axis=0)
    spread = np.where(spread > 1e-8, spread, 1.0)
    z, target = (features - mean) / spread, (np.asarray(y, dtype=np.float64).reshape(-1) - scale.mean) / scale.sd
    params = {"mean": mean, "scale": spread, "y_mean": np.float64(scale.mean), "y_sd": np.float64(scale.sd)}
    if kind == "ridge":
        model = RidgeCV(alphas=np.logspace(-1, 3, 9)).fit(z, target)
        return {**params, "coef": model.coef_, "intercept": np.float64(model.intercept_)}
    gamma = 1.0 / (z.shape[1] * max(float(z.var()), 1e-8))  # scikit-learn's gamma="scale"
    model = SVR(C=20.0, gamma=gamma).fit(z, target)
    return {**params, "support": model.support_vectors_, "dual": model.dual_coef_.reshape(-1),
            "gamma": np.float64(gamma), "intercept": np.float64(model.intercept_[0])}


def save_regressor(path, params: dict) -> None:
    """Write the regressor's params beside the run's weights (regressor.npz), atomically."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            np.savez(handle, **params)


def read_regressor(path) -> dict:
    """Return the params a run's regressor.npz holds; a missing file is an error naming it."""
    if not Path(path).is_file():
        raise KitError(f"{path} is missing: an embedding-regressor run (--head ridge|svr) needs it beside its weights")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
