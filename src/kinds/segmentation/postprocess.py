"""Probabilities to masks, per class: a threshold, a minimum object size and an empty-mask gate, chosen out of fold.

    rules = choose_postprocess(oof_probs, truths, classes=("1", "2", "3", "4"))
    print(rules.describe())   # mean Dice 0.612 -> 0.689 out of fold: 1 threshold 0.45, min size 120 px, empty ...
    masks = [rules.apply(p) for p in test_probs]        # (H, W, C) uint8 each

Each class's values are chosen on out-of-fold probabilities by the mean Dice of its (image, class) pairs,
one after the other: the threshold (no size limit, no gate), then the minimum size of a connected object
(8-connected, scipy.ndimage) at that threshold, then the gate: an image whose largest probability for
the class is below it answers empty. Why all three: an empty truth answered with one stray pixel scores
0, so the size limit and the gate are where Severstal's and UW-Madison's empty pairs are won. Minimum
sizes are tried as fractions of the image (0.01 % to 1 %), as the images' sizes vary between competitions.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from src.core.errors import KitError
from src.kinds.segmentation.metrics import mean_score

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.91, 0.05))
SIZE_FRACTIONS = (0.0, 0.0001, 0.0003, 0.001, 0.002, 0.005, 0.01)  # of the image's pixels
GATES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # 0: no gate
EIGHT_NEIGHBOURS = np.ones((3, 3), bool)


@dataclasses.dataclass(frozen=True)
class ClassRule:
    """How one class's probabilities become its mask."""

    threshold: float = 0.5
    min_size: int = 0           # pixels: smaller connected objects are dropped
    gate: float = 0.0           # a largest probability below it answers empty (0: never)

    def apply(self, probability: np.ndarray) -> np.ndarray:
        """Return the (H, W) uint8 mask of one class's (H, W) probabilities under this rule."""
        if probability.size == 0 or probability.max() < self.gate:
            return np.zeros(probability.shape, np.uint8)
        mask = probability > self.threshold
        if self.min_size > 1 and mask.any():
            labels, _ = ndimage.label(mask, EIGHT_NEIGHBOURS)
            keep = np.bincount(labels.ravel()) >= self.min_size
            keep[0] = False
            mask = keep[labels]
        return mask.astype(np.uint8)

    def describe(self) -> str:
        """Return the rule as words: 'threshold 0.45, min size 120 px, empty below 0.70'."""
        gate = f", empty below {self.gate:.2f}" if self.gate > 0 else ""
        return f"threshold {self.threshold:.2f}, min size {self.min_size} px{gate}"


@dataclasses.dataclass(frozen=True)
class PostProcess:
    """A rule per class, with the mean Dice before (0.5, no size limit, no gate) and after, out of fold."""

    classes: tuple
    rules: tuple
    before: float = 0.0
    after: float = 0.0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Return the (H, W, C) uint8 mask of one image's (H, W, C) probabilities."""
        return np.stack([rule.apply(probabilities[..., c]) for c, rule in enumerate(self.rules)], axis=-1)

    def describe(self) -> str:
        """Return the chosen values in one line, with the Dice they gave out of fold."""
        rules = "; ".join(f"{name} {rule.describe()}" for name, rule in zip(self.classes, self.rules))
        return f"mean Dice {self.before:.4f} -> {self.after:.4f} out of fold: {rules}"


def pair_dice(truth_sum, answer_sum, both) -> np.ndarray:
    """Return Dice from per-image sums (arrays): 2 both / (truth + answer), 1 where both are empty."""
    total = truth_sum + answer_sum
    return np.where(total > 0, 2.0 * both / np.maximum(total, 1), 1.0)


def choose_threshold(probs: list, truths: list, thresholds) -> tuple[float, float]:
    """Return (threshold, mean Dice) of the best threshold for one class (ties: the first)."""
    truth_sums = np.array([t.sum() for t in truths])
    best = (0.5, -1.0)
    for threshold in thresholds:
        answers = [p > threshold for p in probs]
        score = pair_dice(truth_sums, np.array([a.sum() for a in answers]),
                          np.array([(a & t).sum() for a, t in zip(answers, truths)])).mean()
        if score > best[1] + 1e-12:
            best = (float(threshold), float(score))
    return best


def object_tables(probs: list, truths: list, threshold: float) -> list:
    """Return, per image, (object sizes, truth pixels in each object, truth pixels): the min-size search's data."""
    tables = []
    for probability, truth in zip(probs, truths):
        labels, _ = ndimage.label(probability > threshold, EIGHT_NEIGHBOURS)
        sizes = np.bincount(labels.ravel())[1:]
        inside = np.bincount(labels.ravel(), weights=truth.ravel().astype(np.float64), minlength=len(sizes) + 1)[1:]
        tables.append((sizes, inside, int(truth.sum())))
    return tables


def dice_with_min_size(tables: list, min_size: int) -> np.ndarray:
    """Return each image's Dice when objects smaller than min_size pixels are dropped."""
    kept = [sizes >= min_size for sizes, _, _ in tables]
    return pair_dice(np.array([t for _, _, t in tables]), np.array([s[k].sum() for (s, _, _), k in zip(tables, kept)]),
                     np.array([i[k].sum() for (_, i, _), k in zip(tables, kept)]))


def choose_min_size(probs: list, truths: list, threshold: float, min_sizes) -> tuple[int, np.ndarray]:
    """Return (min size, each image's Dice with it) of the best minimum object size at `threshold`."""
    tables = object_tables(probs, truths, threshold)
    best_size, best = 0, dice_with_min_size(tables, 0)
    for size in sorted(set(min_sizes)):
        scores = dice_with_min_size(tables, size)
        if scores.mean() > best.mean() + 1e-12:
            best_size, best = int(size), scores
    return best_size, best


def choose_gate(probs: list, truths: list, scores: np.ndarray, gates) -> float:
    """Return the best gate given each image's Dice without one: below it, an image answers empty."""
    peaks = np.array([p.max() if p.size else 0.0 for p in probs])
    empty_score = np.array([0.0 if t.any() else 1.0 for t in truths])
    best_gate, best = 0.0, scores.mean()
    for gate in sorted(set(gates)):
        score = np.where(peaks < gate, empty_score, scores).mean()
        if score > best + 1e-12:
            best_gate, best = float(gate), score
    return best_gate


def choose_rule(probs: list, truths: list, thresholds, size_fractions, gates) -> ClassRule:
    """Return one class's rule: threshold, then minimum size at it, then the gate, each by mean Dice."""
    threshold, _ = choose_threshold(probs, truths, thresholds)
    pixels = np.median([p.size for p in probs])
    min_size, scores = choose_min_size(probs, truths, threshold, [round(f * pixels) for f in size_fractions])
    return ClassRule(threshold, min_size, choose_gate(probs, truths, scores, gates))


def choose_postprocess(probs, truths, classes=None, per_class: bool = True, thresholds=THRESHOLDS,
                       size_fractions=SIZE_FRACTIONS, gates=GATES) -> PostProcess:
    """Return the PostProcess chosen on out-of-fold (H, W, C) probabilities and their (H, W, C) true masks.

    per_class: the competition averages (image, class) pairs (else images: the before/after Dice then scores
    each image's channels together; the rules are still chosen class by class).
    """
    if len(probs) != len(truths) or not len(probs):
        raise KitError(f"postprocessing: {len(probs)} probability maps and {len(truths)} true masks: expected the "
                       "same number, at least one")
    channels = np.asarray(probs[0]).shape[-1]
    classes = tuple(classes) if classes is not None else tuple(str(c) for c in range(channels))
    rules = []
    for channel in range(channels):
        class_probs = [np.asarray(p, np.float32)[..., channel] for p in probs]
        class_truths = [np.asarray(t)[..., channel] > 0 for t in truths]
        rules.append(choose_rule(class_probs, class_truths, thresholds, size_fractions, gates))
    chosen = PostProcess(classes, tuple(rules))
    default = PostProcess(classes, tuple(ClassRule() for _ in rules))
    return dataclasses.replace(chosen, before=mean_score(truths, [default.apply(p) for p in probs], per_class),
                               after=mean_score(truths, [chosen.apply(p) for p in probs], per_class))
