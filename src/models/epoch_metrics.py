"""The competition's metric as a compiled Keras metric, so every epoch logs val_<metric> beside val_accuracy.

    metric = epoch_metric("auc", num_classes=2, positive_index=1)   # None for accuracy (already logged)
    model.compile(..., metrics=["accuracy", metric])                  # logs auc / val_auc

Compiled metrics run inside Keras's evaluation on the TensorFlow and JAX backends and under
distribution (tf.distribute, keras.distribution.DataParallel) with no extra pass over the holdout,
and they honour sample weights, so the weight-0 padding rows of JAX batches count nowhere.
Each matches src.inference.metrics.score on the same probabilities: auc is Keras's AUC on the
positive class's probability, on more than two classes the mean of each class's one-vs-rest AUC
(1,000 thresholds: within about 1e-3 of the exact value); pauc@R the same confusion counts' ROC cut
above TPR R, interpolated as ISIC 2024's code does (the same 1,000-threshold approximation); log_loss the
cross-entropy clipped at 1e-7; f1_macro and qwk are read off a confusion matrix summed over the
epoch (f1_macro over the classes present, as scikit-learn's); map@K and f2_samples (tags at 0.5)
are means of per-image scores; rmse, mae and r2 are Keras's own on the predicted numbers (the model
outputs the number in the target's units). Labels may come as class indices or one-hot / 0-1 rows.
"""
from __future__ import annotations

import keras
from keras import ops

from src.core.errors import KitError
from src.core.metric_choice import check_metric, log_name, pauc_rate

AUC_THRESHOLDS = 1000


def epoch_metric(name: str, num_classes: int, positive_index: int = 1):
    """Return a Keras metric logging `name` under its log name, or None for accuracy (Keras logs it already)."""
    name = check_metric(name)
    logged = log_name(name)
    if name == "accuracy":
        return None
    if name == "dice":  # masks: their kind's metric (src.kinds.segmentation.metrics.DiceMetric), asked of it
        raise KitError("metric dice scores masks: a segmentation run logs val_dice through its kind")
    if name == "auc" and num_classes > 2:  # each class against the rest, averaged (macro), as metrics.score
        return MacroAUC(num_classes, name=logged)
    if name == "rmse":  # numbers (regression): the model outputs the number itself (src.models.classifier)
        return keras.metrics.RootMeanSquaredError(name=logged)
    if name == "mae":
        return keras.metrics.MeanAbsoluteError(name=logged)
    if name == "r2":
        return keras.metrics.R2Score(name=logged)
    if name == "auc":
        return PositiveClassAUC(positive_index, name=logged)
    if name.startswith("pauc@"):
        return PartialAUC(pauc_rate(name), positive_index, name=logged)
    if name in ("qwk", "f1_macro"):
        return ConfusionScore(num_classes, name, name=logged)
    if name == "log_loss":
        return keras.metrics.MeanMetricWrapper(log_loss_per_image, name=logged)
    if name == "f2_samples":
        return keras.metrics.MeanMetricWrapper(f2_per_image, name=logged)
    k = int(name.split("@")[1])
    return keras.metrics.MeanMetricWrapper(average_precision_per_image, name=logged, k=k)


def dense_truth(y_true, y_pred):
    """Return y_true as float rows shaped like y_pred: class indices become one-hot rows."""
    classes = y_pred.shape[-1]
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == classes:
        return ops.cast(y_true, y_pred.dtype)
    return ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes, dtype=y_pred.dtype)


class PositiveClassAUC(keras.metrics.AUC):
    """ROC AUC of one class's probability against 'is that class' (the kit's binary auc)."""

    def __init__(self, positive_index: int = 1, name: str = "auc", **kwargs):
        kwargs.setdefault("num_thresholds", AUC_THRESHOLDS)
        super().__init__(name=name, **kwargs)
        self.positive_index = positive_index

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = dense_truth(y_true, y_pred)[:, self.positive_index]
        return super().update_state(truth, y_pred[:, self.positive_index], sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "positive_index": self.positive_index}


class MacroAUC(keras.metrics.AUC):
    """The mean of each class's one-vs-rest ROC AUC (Keras's multi_label AUC over one-hot truth averages per class)."""

    def __init__(self, num_classes: int, name: str = "auc", **kwargs):
        kwargs.setdefault("num_thresholds", AUC_THRESHOLDS)
        kwargs.update(multi_label=True, num_labels=num_classes)
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(dense_truth(y_true, y_pred), y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        return {**{k: v for k, v in config.items() if k not in ("multi_label", "num_labels")},
                "num_classes": self.num_labels}


class PartialAUC(PositiveClassAUC):
    """ROC area above true-positive rate min_tpr (0 to 1 - min_tpr), from keras.metrics.AUC's confusion counts.

    Between two thresholds the curve is a straight line (as in src.inference.metrics.partial_auc), so
    the area of each piece above min_tpr is a trapezoid, cut where the line crosses min_tpr.
    """

    def __init__(self, min_tpr: float = 0.8, positive_index: int = 1, name: str = "pauc", **kwargs):
        super().__init__(positive_index, name=name, **kwargs)
        self.min_tpr = min_tpr

    def result(self):
        tp, fp = ops.convert_to_tensor(self.true_positives), ops.convert_to_tensor(self.false_positives)
        tpr = ops.divide_no_nan(tp, tp + ops.convert_to_tensor(self.false_negatives))  # falls as thresholds rise
        fpr = ops.divide_no_nan(fp, fp + ops.convert_to_tensor(self.true_negatives))
        high_t, low_t, high_f, low_f = tpr[:-1], tpr[1:], fpr[:-1], fpr[1:]
        top, bottom = ops.maximum(high_t, self.min_tpr), ops.maximum(low_t, self.min_tpr)
        slope = ops.divide_no_nan(high_f - low_f, high_t - low_t)
        at_top, at_bottom = low_f + slope * (top - low_t), low_f + slope * (bottom - low_t)
        return ops.sum((top - bottom) * (1.0 - (at_top + at_bottom) / 2.0))

    def get_config(self):
        return {**super().get_config(), "min_tpr": self.min_tpr}


class ConfusionScore(keras.metrics.Metric):
    """Quadratic weighted kappa or macro F1 from a confusion matrix (rows: true class, columns: predicted)."""

    def __init__(self, num_classes: int, kind: str, name: str | None = None, **kwargs):
        super().__init__(name=name or kind, **kwargs)
        self.num_classes, self.kind = num_classes, kind
        self.matrix = self.add_variable(shape=(num_classes, num_classes), initializer="zeros", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = dense_truth(y_true, y_pred)
        guess = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype=truth.dtype)
        if sample_weight is not None:
            truth = truth * ops.reshape(ops.cast(sample_weight, truth.dtype), (-1, 1))
        self.matrix.assign_add(ops.cast(ops.matmul(ops.transpose(truth), guess), self.matrix.dtype))

    def result(self):
        matrix = ops.convert_to_tensor(self.matrix)
        rows, columns = ops.sum(matrix, axis=1), ops.sum(matrix, axis=0)
        if self.kind == "f1_macro":
            hits = ops.diagonal(matrix)
            present = ops.cast((rows + columns) > 0, matrix.dtype)
            f1 = ops.divide_no_nan(2 * hits, rows + columns)
            return ops.divide_no_nan(ops.sum(f1 * present), ops.sum(present))
        index = ops.cast(ops.arange(self.num_classes), matrix.dtype)
        weights = ops.square(index[:, None] - index[None, :])
        expected = ops.divide_no_nan(rows[:, None] * columns[None, :], ops.sum(matrix))
        return 1.0 - ops.divide_no_nan(ops.sum(weights * matrix), ops.sum(weights * expected))

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "kind": self.kind}


def log_loss_per_image(y_true, y_pred):
    """Return each image's cross-entropy with probabilities clipped at 1e-7 (scikit-learn's log_loss per row)."""
    truth = dense_truth(y_true, y_pred)
    return -ops.sum(truth * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)


def average_precision_per_image(y_true, y_pred, k: int = 5):
    """Return 1/rank of the true class when it is in the top k, else 0; ties ranked by class index (stable)."""
    truth = dense_truth(y_true, y_pred)
    true_index = ops.argmax(truth, axis=-1)
    true_prob = ops.sum(truth * y_pred, axis=-1, keepdims=True)
    before = ops.arange(y_pred.shape[-1])[None, :] < true_index[:, None]
    ahead = ops.cast(y_pred > true_prob, "float32") + ops.cast((y_pred == true_prob) & before, "float32")
    rank = 1.0 + ops.sum(ahead, axis=-1)
    return ops.where(rank <= k, 1.0 / rank, 0.0)


def f2_per_image(y_true, y_pred):
    """Return each image's F2 between its tags at 0.5 and its true tags; an image with neither scores 1."""
    chosen = ops.cast(y_pred >= 0.5, "float32")
    truth = ops.cast(ops.convert_to_tensor(y_true) > 0.5, "float32")
    hits, picked, actual = (ops.sum(v, axis=-1) for v in (chosen * truth, chosen, truth))
    precision, recall = ops.divide_no_nan(hits, picked), ops.divide_no_nan(hits, actual)
    f2 = ops.divide_no_nan(5 * precision * recall, 4 * precision + recall)
    return ops.where((picked == 0) & (actual == 0), 1.0, f2)
