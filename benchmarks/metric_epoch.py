"""What the per-epoch competition metric costs, in one run: `python benchmarks/metric_epoch.py [--metric auc]`.

Why it exists: every epoch now logs val_<metric> beside val_accuracy (src.models.epoch_metrics: a
compiled Keras metric, updated on every training and validation batch). This script trains the
demo's recipe (small_resnet from random weights at 32x32, `--augment none`, `--cache memory`,
the demo's saved split) for a few epochs twice per round, compiled with accuracy alone and with
accuracy plus the metric, in interleaved rounds, and keeps each variant's median seconds per
epoch (the first epoch, which traces and fills the cache, is left out of both).
The last line is one JSON object: without_s, with_s (per epoch), metric_epoch_overhead (with over without).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import keras  # noqa: E402
import numpy as np  # noqa: E402


class EpochClock(keras.callbacks.Callback):
    """Keeps each epoch's wall time (validation included)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.started = [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def demo_data(folder: str, limit: int):
    """Return the demo competition's split (built into folder when missing), cut to `limit` training images."""
    from src.core.config import DataOptions
    from src.core.settings import DemoConfig
    from src.data.demo_data import build_demo
    from src.data.splits import prepare_split

    build_demo(DemoConfig(out=folder))
    data = prepare_split(DataOptions(data=folder, split_file=str(Path(folder) / "bench-split.csv")))
    if limit and len(data.train) > limit:
        data = dataclasses.replace(data, train=data.train.iloc[:limit].reset_index(drop=True))
    return data


def epoch_seconds(data, metric: str, epochs: int, size: int, batch: int) -> float:
    """Return the median seconds of epochs 2.. of fitting the demo's recipe compiled with `metric`."""
    from src.core.settings import TrainConfig
    from src.inference.formats import positive_index
    from src.models.backbones import get_spec
    from src.models.classifier import HeadSpec, build_classifier
    from src.models.recipe import CompileOptions, compile_classifier
    from src.pipeline.images import make_eval_dataset, make_train_dataset

    cfg = TrainConfig(data="", augment="none", image_size=(size, size), batch_size=batch, cache="memory",
                      weights="none", metric=metric)
    k = len(data.class_map.values)
    y_train = data.class_map.encode(data.train[data.target])
    train = make_train_dataset(data.train, y_train, cfg, seed=0).map(lambda x, y: (x, keras.ops.one_hot(y, k)))
    val = make_eval_dataset(data.val, data.y_val, cfg).map(lambda x, y: (x, keras.ops.one_hot(y, k)))
    model = build_classifier(get_spec("small_resnet"), (size, size), k, "none", HeadSpec(), train_backbone=True)
    compile_classifier(model, cfg, CompileOptions(3e-3, metric, positive_index(data.class_map)))
    clock = EpochClock()
    model.fit(train, validation_data=val, epochs=epochs, callbacks=[clock], verbose=0)
    return float(np.median(clock.seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", default="auc", help="the metric compiled beside accuracy (auc: 1,000 thresholds)")
    parser.add_argument("--folder", default="runs/bench/demo")
    parser.add_argument("--images", type=int, default=0, help="training images used (0: all of the demo's)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    data = demo_data(args.folder, args.images)
    variants = {"without_s": "accuracy", "with_s": args.metric}
    times = {name: [] for name in variants}
    for round_number in range(args.rounds):
        for name, metric in variants.items():
            times[name].append(epoch_seconds(data, metric, args.epochs, args.size, args.batch_size))
        print(f"round {round_number + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()),
              flush=True)
    median = {name: float(np.median(values)) for name, values in times.items()}
    result = dict(median, metric_epoch_overhead=median["with_s"] / median["without_s"])
    print(f"{len(data.train)} training and {len(data.val)} holdout images, {args.epochs} epochs, median of "
          f"{args.rounds} rounds: {median['without_s']:.2f} s per epoch without {args.metric}, "
          f"{median['with_s']:.2f} s with it")
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
