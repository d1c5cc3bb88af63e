"""Prediction from a trained run, with test-time augmentation: `python -m src.predict`.

    python -m src.predict --run runs/effb0 photo1.jpg photo2.jpg     # top-5 classes per image

    run = load_run("runs/effb0")
    probs = predict_frame(run, frame, views=("identity", "hflip"))    # TTA, views averaged

Each image is decoded once; its views (flips, centre crops, zooms, random training
augmentations) are made from the decoded batch inside the graph and go through the model
together. A run predicts at its last stage's resolution with that stage's best weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from src.errors import KitError, run_cli

VIEWS = ("identity", "hflip", "vflip", "center_crop_90", "center_crop_80", "scale_110", "scale_120")
DEFAULT_VIEWS = ("identity", "hflip", "center_crop_90")


@dataclasses.dataclass
class Run:
    """A finished training run: its backbone, final stage size and weights, class map and split."""

    folder: Path
    config: dict
    stage: str
    size: tuple
    weights: Path
    target: str
    class_map: object
    split: pd.DataFrame
    heads: dict = dataclasses.field(default_factory=dict)  # every label column's ClassMap


def load_run(folder: str | Path) -> Run:
    """Return the run in `folder`; a folder without a finished stage is an error naming what is missing."""
    from src.competition import load_class_maps

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise KitError(f"--run {folder}: not a training run (no config.json); python -m src.train makes one")
    config = json.loads((folder / "config.json").read_text())
    stages = [("stage2", "stage2_size"), ("stage1", "stage1_size"), ("warmup", "stage1_size")]
    found = [(name, key) for name, key in stages if (folder / f"{name}.weights.h5").is_file()]
    if not found:
        raise KitError(f"--run {folder}: no stage weights (stage1.weights.h5, stage2.weights.h5) yet")
    stage, size_key = found[0]
    target, maps = load_class_maps(folder / "class_map.json")
    split = pd.read_csv(folder / "split.csv", dtype={"id": str})
    return Run(folder, config, stage, tuple(config[size_key]), folder / f"{stage}.weights.h5", target,
               maps[target], split, maps)


def build_run_model(run: Run):
    """Return the run's classifier at its final size with its best weights loaded."""
    from src.backbones import get_spec
    from src.model import HeadSpec, build_classifier

    spec = get_spec(run.config["backbone"])
    columns = [c.strip() for c in run.config.get("targets", "").split(",") if c.strip()]
    classes = {c: len(run.heads[c].values) for c in columns} or len(run.class_map.values)
    model = build_classifier(spec, run.size, classes, "none", HeadSpec.from_config(run.config),
                             scheme=run.config.get("head_scheme", "parallel"))
    model.load_weights(str(run.weights))
    return model


def make_view(images, name: str):
    """Return a batch view by name (float images in [0, 255], same size): flips, centre crops, zooms."""
    import tensorflow as tf

    if name == "identity":
        return images
    if name == "hflip":
        return images[:, :, ::-1]
    if name == "vflip":
        return images[:, ::-1]
    kind, _, percent = name.rpartition("_")
    if kind not in ("center_crop", "scale") or not percent.isdigit():
        raise KitError(f"--tta-views: unknown view {name!r}; known: {', '.join(VIEWS)}, center_crop_P, scale_P")
    keep = int(percent) / 100 if kind == "center_crop" else 100 / int(percent)
    size = tf.shape(images)[1:3]
    if keep >= 1:  # a zoom out: shrink, then pad back to size
        shrunk = tf.image.resize(images, tf.cast(tf.cast(size, tf.float32) / keep, tf.int32))
        return tf.image.resize_with_crop_or_pad(shrunk, size[0], size[1])
    return tf.image.resize(tf.image.central_crop(images, keep), size)


def predict_frame(run: Run, frame: pd.DataFrame, views=("identity",), random_passes: int = 0,
                  mean: str = "arithmetic", model=None, batch_size: int = 32) -> np.ndarray:
    """Return class probabilities (n, classes) for the frame's images, averaged over the TTA views."""
    per_view = predict_views(run, frame, views, random_passes, model, batch_size)
    return combine_views(per_view, mean)


def predict_views(run: Run, frame: pd.DataFrame, views=("identity",), random_passes: int = 0, model=None,
                  batch_size: int = 32) -> np.ndarray:
    """Return probabilities per view, shape (views + random passes, n, classes); images decoded once."""
    import tensorflow as tf

    from src.augment import make_augmenter
    from src.config import PipelineOptions
    from src.images import make_predict_dataset

    for name in views:
        make_view(tf.zeros([1, 4, 4, 3]), name)  # unknown names fail before any work
    model = model or build_run_model(run)
    opts = PipelineOptions(image_size=run.size, resize=run.config.get("resize", "stretch"),
                           sharpen=run.config.get("sharpen", 0.0), cache="none", batch_size=batch_size)
    augment = make_augmenter(run.config.get("augment", "light"), run.config.get("augment_backend", "xla"),
                             run.config.get("flip", True))

    @tf.function
    def all_views(images):
        batch = [make_view(images, name) for name in views]
        batch += [tf.map_fn(augment, images) for _ in range(random_passes)]
        probs = model(tf.concat(batch, axis=0), training=False)
        if isinstance(probs, dict):  # a multi-task run: the submission's column
            probs = probs[run.target]
        return tf.reshape(probs, [len(batch), tf.shape(images)[0], -1])

    parts, ids = [], []
    for images, batch_ids in make_predict_dataset(frame, opts):
        parts.append(all_views(images).numpy())
        ids += [i.decode() for i in batch_ids.numpy()]
    if not parts:
        return np.zeros((len(views) + random_passes, 0, len(run.class_map.values)), np.float32)
    # Shards stream in their own order: put the rows back in the frame's order by id.
    order = pd.Index(ids).get_indexer(frame["id"].astype(str))
    return np.concatenate(parts, axis=1)[:, order]


def combine_views(per_view: np.ndarray, mean: str = "arithmetic") -> np.ndarray:
    """Return the views' arithmetic mean, or their geometric mean renormalised to sum to 1."""
    if mean == "arithmetic":
        return per_view.mean(axis=0)
    if mean != "geometric":
        raise KitError(f"--tta-mean {mean}: expected arithmetic or geometric")
    log_mean = np.log(np.clip(per_view, 1e-7, 1.0)).mean(axis=0)
    probs = np.exp(log_mean)
    return probs / probs.sum(axis=1, keepdims=True)


def top_classes(probs: np.ndarray, class_map, k: int = 5) -> list:
    """Return, per image, the k most probable (competition label, probability) pairs."""
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(class_map.values[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def main(argv=None) -> None:
    from src.imagefiles import describe_bad, scan_images

    parser = argparse.ArgumentParser(description="Print the top-5 classes of each image for a trained run.")
    parser.add_argument("--run", required=True, help="training run folder (python -m src.train)")
    parser.add_argument("--tta", action="store_true", help=f"average the default views {', '.join(DEFAULT_VIEWS)}")
    parser.add_argument("images", nargs="+", help="image files")
    args = parser.parse_args(argv)
    run = load_run(args.run)
    frame = scan_images(args.images)
    bad = frame[frame["error"] != ""]
    if not bad.empty:
        raise KitError(f"cannot predict {describe_bad(bad)}")
    frame["id"] = frame["path"]
    probs = predict_frame(run, frame, DEFAULT_VIEWS if args.tta else ("identity",))
    for path, best in zip(args.images, top_classes(probs, run.class_map)):
        print(path)
        for label, probability in best:
            print(f"  {probability:7.2%}  {label}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
