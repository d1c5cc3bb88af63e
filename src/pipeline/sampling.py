"""--sampling: training images drawn by per-class weights in the tf.data stream (src.pipeline.images uses it).

    repeats = row_repeats(classes, "balanced")     # mean copies per row an epoch draws
    ds = draw_by_class(ds_of_x_y_repeats, seed)    # (x, y) elements, each row floor(repeats + u) times

natural: images as they come; balanced: each class equally often; sqrt: each class in proportion
to the square root of its count (a middle way for long tails). Rare positives (an ISIC-2020-like case: about 4%)
otherwise come a few times per epoch, and a small network trained on the natural stream can
sit near chance on them.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from src.core.metric_choice import is_ranking
from src.core.task_kind import kind_of


RANKING_METRICS = ("auc", "log_loss")  # scored on the probabilities: a rare class's are all that count
RARE_SHARE = 0.05


def sampling_hint(cfg, labels, class_map, metric: str) -> str:
    """Return one line suggesting --sampling balanced when a class is rare and the metric ranks; '' otherwise.

    Said when --sampling is left natural, the rarest class is under 5% of the labelled images and the metric
    is a ranking one (auc, log_loss): ISIC 2020's 2% melanomas go unseen for most of a natural epoch.
    """
    ranking = metric in RANKING_METRICS or (bool(metric) and is_ranking(metric))  # pauc@R ranks too
    if cfg.sampling != "natural" or not ranking or not kind_of(class_map).exclusive_classes(class_map) or not len(labels):
        return ""
    counts = np.bincount(class_map.encode(labels), minlength=len(class_map.values))
    rarest = int(counts.argmin())
    share = counts[rarest] / counts.sum()
    if share >= RARE_SHARE:
        return ""
    return (f"note: class {class_map.values[rarest]!r} is {share:.1%} of the training images and --metric {metric} "
            "ranks its probabilities: --sampling balanced (or sqrt) shows it more often and may learn it better")


def row_repeats(classes, sampling: str) -> np.ndarray:
    """Return, per training row, the mean number of copies an epoch draws so classes come out as --sampling says.

    balanced: each class 1/K of the draws; sqrt: in proportion to the square root of its count. The
    copies add up to about the number of rows, so an epoch stays about as long as a natural one.
    """
    if classes is None:
        raise ValueError(f"--sampling {sampling}: needs each training row's class index")
    classes = np.asarray(classes, np.int64)
    counts = np.bincount(classes).astype(float)
    present = counts > 0
    share = np.where(present, 1.0 if sampling == "balanced" else np.sqrt(counts), 0.0)
    share = share / share.sum()
    ratio = np.divide(share * len(classes), counts, out=np.zeros_like(counts), where=present)
    return ratio[classes].astype(np.float32)


def draw_by_class(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Return (x, y) elements drawn by each row's repeat count (x, y, repeats): floor(repeats + u), u uniform.

    Stochastic rounding keeps each class's expected share exact (a rare class's image comes several
    times an epoch, a common one's sometimes not), drawn afresh every epoch. Done per row after the
    cache rather than with sample_from_datasets over per-class streams: those stop reading an
    under-drawn class before its end, so its cache would never complete. Natural sampling: ds as it is.
    """
    if len(ds.element_spec) == 2:
        return ds
    uniform = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(
        lambda r: tf.cast(r % (1 << 24), tf.float32) / float(1 << 24))

    def copies(row, u):
        x, y, repeats = row
        return tf.data.Dataset.from_tensors((x, y)).repeat(tf.cast(tf.floor(repeats + u), tf.int64))

    return tf.data.Dataset.zip((ds, uniform)).flat_map(copies)
