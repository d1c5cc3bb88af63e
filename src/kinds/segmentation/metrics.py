"""Dice and IoU: numpy scores of masks as the competitions compute them, and the Keras metric and loss for training.

    mean_score(truths, answers, per_class=True)          # mean Dice over (image, class) pairs (Severstal)
    mean_score(truths, answers, per_class=False, score="iou")   # mean IoU over images
    model.compile(loss=BceDice(), metrics=[DiceMetric()])         # logs dice and val_dice every epoch

A score is one per image, or one per (image, class) pair when the sample has a row per image and class:
the competitions average those, so one image with a tiny mask counts as much as one with a large mask. An
empty truth answered empty scores 1, answered with any pixel 0: that is how Severstal and UW-Madison score
the many empty pairs, and why the empty-mask gate of src.kinds.segmentation.postprocess matters.
"""
from __future__ import annotations

import keras
import numpy as np

from src.core.errors import KitError


def dice(truth, answer) -> float:
    """Return the Dice of two binary masks of one shape: 2|A and B| / (|A| + |B|); 1 when both are empty."""
    truth, answer = np.asarray(truth) > 0, np.asarray(answer) > 0
    total = int(truth.sum()) + int(answer.sum())
    return 1.0 if total == 0 else 2.0 * int((truth & answer).sum()) / total


def iou(truth, answer) -> float:
    """Return the IoU (Jaccard) of two binary masks of one shape: |A and B| / |A or B|; 1 when both are empty."""
    truth, answer = np.asarray(truth) > 0, np.asarray(answer) > 0
    union = int((truth | answer).sum())
    return 1.0 if union == 0 else int((truth & answer).sum()) / union


SCORES = {"dice": dice, "iou": iou}


def pair_scores(truths, answers, per_class: bool = True, score: str = "dice") -> np.ndarray:
    """Return the score of every image (shape (N,)) or every (image, class) pair (shape (N, C)).

    truths and answers: sequences of (H, W, C) masks, one per image (images may differ in size), or
    (N, H, W, C) arrays. Per image, all its channels are scored together, as one mask.
    """
    if score not in SCORES:
        raise KitError(f"segmentation score {score!r}: expected one of {', '.join(SCORES)}")
    if len(truths) != len(answers):
        raise KitError(f"segmentation score: {len(truths)} true masks but {len(answers)} answers")
    rows = []
    for index, (truth, answer) in enumerate(zip(truths, answers)):
        truth, answer = np.asarray(truth), np.asarray(answer)
        if truth.shape != answer.shape:
            raise KitError(f"segmentation score: image {index}'s true mask is {truth.shape} but its answer is "
                           f"{answer.shape}: expected the same (height, width, classes)")
        if per_class:
            rows.append([SCORES[score](truth[..., c], answer[..., c]) for c in range(truth.shape[-1])])
        else:
            rows.append(SCORES[score](truth, answer))
    return np.asarray(rows, dtype=np.float64)


def mean_score(truths, answers, per_class: bool = True, score: str = "dice") -> float:
    """Return the mean Dice (or IoU) over images, or over (image, class) pairs when per_class."""
    scores = pair_scores(truths, answers, per_class, score)
    return float(scores.mean()) if scores.size else 0.0


@keras.saving.register_keras_serializable(package="kit")
class DiceMetric(keras.metrics.Metric):
    """The mean Dice of thresholded probabilities per (image, class) pair (per image when not per_class).

    Named "dice", Keras logs it as dice and val_dice each epoch, scored as the competition scores: empty
    truth and empty answer 1. exclusive: softmax outputs, the answer is each pixel's most probable class.
    """

    def __init__(self, threshold: float = 0.5, exclusive: bool = False, per_class: bool = True, name: str = "dice",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold, self.exclusive, self.per_class = threshold, exclusive, per_class
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        y_pred = ops.cast(y_pred, "float32")
        if self.exclusive:
            answer = ops.one_hot(ops.argmax(y_pred, axis=-1), ops.shape(y_pred)[-1], dtype="float32")
        else:
            answer = ops.cast(y_pred > self.threshold, "float32")
        truth = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
        axes = (1, 2) if self.per_class else (1, 2, 3)
        both = ops.sum(truth * answer, axis=axes)
        total = ops.sum(truth, axis=axes) + ops.sum(answer, axis=axes)
        scores = ops.where(total > 0, 2.0 * both / ops.maximum(total, 1.0), 1.0)
        self.total.assign_add(ops.sum(scores))
        self.count.assign_add(ops.cast(ops.size(scores), "float32"))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "exclusive": self.exclusive,
                "per_class": self.per_class}


@keras.saving.register_keras_serializable(package="kit")
class BceDice(keras.losses.Loss):
    """Binary cross-entropy (categorical when exclusive) plus dice_weight times the soft Dice loss.

    The Dice part is Keras's own keras.losses.Dice over the batch and the pixels, per class (axis (0, 1, 2)),
    its per-class losses averaged: the cross-entropy alone is dominated by the background pixels and learns
    to answer empty; the Dice term scores the overlap itself. Over the batch, not per image, because an
    image with an empty truth has no Dice gradient (its loss is 1 whatever is answered) and would only add a
    constant; a class empty in the whole batch adds that constant 1 too.
    """

    def __init__(self, dice_weight: float = 1.0, exclusive: bool = False, name: str = "bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight, self.exclusive = dice_weight, exclusive
        self.cross = keras.losses.CategoricalCrossentropy() if exclusive else keras.losses.BinaryCrossentropy()
        self.dice = keras.losses.Dice(axis=(0, 1, 2))

    def call(self, y_true, y_pred):
        y_pred = keras.ops.cast(y_pred, "float32")
        y_true = keras.ops.cast(y_true, "float32")
        return self.cross(y_true, y_pred) + self.dice_weight * self.dice(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "exclusive": self.exclusive}
