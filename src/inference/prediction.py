"""Prediction from a trained run, with test-time augmentation (the library behind `python -m src.predict`).

    run = load_run("runs/effb0")
    probs = predict_frame(run, frame, views=("identity", "hflip"))    # TTA, views averaged

Each image is decoded once; its views (flips, centre crops, zooms, random training
augmentations) are made from the decoded batch in the input pipeline and go through the model
together, on either Keras backend. A run predicts at its final stage's resolution with that stage's best weights, as
its RunFolder says; never another stage's weights instead.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from src.core.config import PipelineOptions, view_problem
from src.core.errors import KitError
from src.core.metric_choice import resolve_metric
from src.core.settings import DEFAULT_VIEWS
from src.data.imagefiles import describe_bad, scan_images
from src.hardware.accelerator import active_batch_multiple
from src.models.backbones import get_spec
from src.models.classifier import HeadSpec, build_classifier, load_checked, recorded_shape
from src.pipeline.augment import make_augmenter
from src.pipeline.images import make_predict_dataset
from src.runs.folder import RunFolder


@dataclasses.dataclass
class Run:
    """A finished training run: its folder, typed config, final stage (size, weights), class maps and split."""

    folder: RunFolder
    config: object              # the run's TrainConfig
    stage: str
    size: tuple
    weights: object
    target: str
    class_map: object
    split: pd.DataFrame
    heads: dict = dataclasses.field(default_factory=dict)  # every label column's ClassMap


def load_run(folder) -> Run:
    """Return the run in `folder`; a folder without its final stage's weights is an error naming what is missing."""
    run = RunFolder(folder)
    config = run.load_config()
    stage = run.final_stage()
    target, maps = run.class_maps()
    return Run(run, config, stage.name, tuple(stage.size), run.weights(stage.name), target, maps[target],
               run.split(), maps)


@dataclasses.dataclass
class RunGroup:
    """What one --run names: a training run, or a K-fold run whose folds predict together.

    A K-fold run's holdout is its out-of-fold predictions (every training image, each by the fold
    that held it out) and its test prediction the folds' average.
    """

    folder: Path
    members: list           # one Run, or one per fold in fold order

    @property
    def class_map(self):
        return self.members[0].class_map

    @property
    def target(self) -> str:
        return self.members[0].target

    @property
    def stage(self) -> str:
        return "+".join(dict.fromkeys(m.stage for m in self.members))

    @property
    def is_cv(self) -> bool:
        return len(self.members) > 1 or RunFolder(self.folder).fold(0).path.is_dir()

    def holdout_folds(self) -> dict:
        """Return {id: the fold that held it out} over every member's holdout."""
        found = {}
        for member in self.members:
            val = member.split[member.split["split"] == "val"]
            found.update(zip(val["id"].astype(str), val["fold"].astype(int)))
        return found

    def extra_images(self, source: str = "extra") -> int:
        """Return how many training images came from --extra-data (or source 'pseudo': --pseudo-labels)."""
        split = self.members[0].split
        return int((split["source"] == source).sum()) if "source" in split else 0


def load_group(folder) -> RunGroup:
    """Return the run or K-fold run in `folder` (a K-fold run holds fold-<i>/ run folders)."""
    folder = Path(folder)
    folds = [fold.path for fold in RunFolder(folder).folds()]
    if folds and not RunFolder(folder).state_file.is_file():
        missing = [p.name for p in folds if not RunFolder(p).state_file.is_file()]
        if missing:
            raise KitError(f"--run {folder}: {', '.join(missing)} not trained yet; {RunFolder(folder).how_to_resume()}")
        return RunGroup(folder, [load_run(p) for p in folds])
    return RunGroup(folder, [load_run(folder)])


def runs_metric(runs) -> tuple[str, str]:
    """Return (the metric the runs trained for, where it is written); runs that disagree are said, the first's kept.

    Runs from before --metric existed name none ('').
    """
    named = {str(member.folder.config_file): member.config.metric for run in runs for member in run.members
             if member.config.metric}
    if not named:
        return "", ""
    first = next(iter(named.items()))
    others = {where: m for where, m in named.items() if m != first[1]}
    if others:
        where, metric = next(iter(others.items()))
        print(f"the runs trained for different metrics: {first[1]} ({first[0]}) and {metric} ({where}); the holdout "
              f"is scored with {first[1]} unless --metric says otherwise")
    return first[1], first[0]


def build_run_model(run: Run):
    """Return the run's classifier at its final size with its best weights loaded."""
    spec = get_spec(run.config.backbone)
    columns = [c.strip() for c in run.config.targets.split(",") if c.strip()]
    classes = {c: len(run.heads[c].values) for c in columns} or len(run.class_map.values)
    model = build_classifier(spec, run.size, classes, "none", HeadSpec.from_config(run.config, run.class_map.multi_label),
                             scheme=run.config.head_scheme)
    check_trained_shape(run, model)
    load_checked(model, run.weights, f"{run.folder.config_file} and {run.folder.class_map_file}")
    return model


def check_trained_shape(run: Run, model) -> None:
    """Refuse a run whose config.json or class_map.json no longer matches the size and classes its weights learned.

    The weights file records both (src.models.classifier.record_shape); files without the record pass.
    """
    recorded = recorded_shape(run.weights)
    if recorded is None:
        return
    size, outputs = recorded
    if size != tuple(run.size):
        raise KitError(f"--run {run.folder}: {run.folder.config_file} says {run.stage} predicts at "
                       f"{run.size[0]}x{run.size[1]}, but {run.weights} was trained at {size[0]}x{size[1]}: the "
                       f"config was changed after training; set {run.stage}_size back to {list(size)}")
    built = [int(t.shape[-1]) for t in keras.tree.flatten(model.outputs)]
    if built != outputs:
        raise KitError(f"--run {run.folder}: {run.folder.class_map_file} lists {sum(built)} classes, but "
                       f"{run.weights} predicts {sum(outputs)}: class_map.json was changed or damaged after "
                       "training; restore it from a copy, or train the run again")


def make_view(images, name: str):
    """Return a batch view by name (float images in [0, 255], same size): flips, centre crops, zooms."""
    if name == "identity":
        return images
    if name == "hflip":
        return images[:, :, ::-1]
    if name == "vflip":
        return images[:, ::-1]
    problem = view_problem(name)
    if problem:
        raise KitError(f"--tta-views: expected {problem}")
    kind, _, percent = name.rpartition("_")
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
    for name in views:
        make_view(tf.zeros([1, 4, 4, 3]), name)  # unknown names fail before any work
    model = model or build_run_model(run)
    opts = PipelineOptions(image_size=run.size, resize=run.config.resize, sharpen=run.config.sharpen,
                           cache="none", batch_size=batch_size)
    augment = make_augmenter(run.config.augment, run.config.augment_backend, run.config.flip)

    multiple = active_batch_multiple()

    def all_views(images, batch_ids):
        # Views are made in the input pipeline (TensorFlow ops on any Keras backend); the padding
        # to a multiple of the devices (JAX data parallelism) is cut off after the model.
        rows = tf.shape(images)[0]
        images = tf.pad(images, [[0, (multiple - rows % multiple) % multiple], [0, 0], [0, 0], [0, 0]])
        batch = [make_view(images, name) for name in views]
        batch += [tf.map_fn(augment, images) for _ in range(random_passes)]
        return tf.concat(batch, axis=0), batch_ids, rows

    parts, ids = [], []
    for batch, batch_ids, rows in make_predict_dataset(frame, opts).map(all_views):
        probs = model.predict_on_batch(batch.numpy())  # an array any backend takes
        if isinstance(probs, dict):  # a multi-task run: the submission's column
            probs = probs[run.target]
        parts.append(np.asarray(probs).reshape(len(views) + random_passes, -1, probs.shape[-1])[:, :int(rows)])
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


def print_predictions(cfg) -> list:
    """Print the top classes (multi-label: the tags too) of each image; return them as (path, [(label, probability)])."""
    run = load_run(cfg.run)
    if run.config.metric:  # what the run was chosen by (its epochs, its stage): said, as every job says it
        print(resolve_metric("", run.config.data, run.config.metric, "", run.class_map.multi_label, run.config.metric,
                             f"{run.folder.config_file}; weights of {run.stage}").line)
    frame = scan_images(list(cfg.images))
    bad = frame[frame["error"] != ""]
    if not bad.empty:
        raise KitError(f"cannot predict {describe_bad(bad)}")
    frame["id"] = [f"{i}:{path}" for i, path in enumerate(frame["path"])]  # the same file twice is two rows
    views = tuple(v.strip() for v in cfg.tta_views.split(",") if v.strip()) or (DEFAULT_VIEWS if cfg.tta else ("identity",))
    probs = predict_frame(run, frame, views, batch_size=cfg.batch_size)
    result = list(zip(cfg.images, top_classes(probs, run.class_map, cfg.top)))
    # multi-label: the tags at 0.5 (src.submit fits a threshold per tag), then the likeliest tags' probabilities
    tags = run.class_map.decode_tags(probs >= 0.5) if run.class_map.multi_label else [None] * len(result)
    for (path, best), chosen in zip(result, tags):
        print(path)
        if chosen is not None:
            print(f"  tags at 0.5: {chosen or '(none)'}")
        for label, probability in best:
            print(f"  {probability:7.2%}  {label}")
    return result


def holdout_frame(run, comp) -> pd.DataFrame:
    """Return the run's validation images as rows of the competition's training table (paths, sizes)."""
    ids = sorted(run.split.loc[run.split["split"] == "val", "id"].astype(str))  # one order for every run
    rows = comp.train.set_index(comp.train["id"].astype(str))
    missing = sorted(set(ids) - set(rows.index))
    if missing:
        raise KitError(f"--run {run.folder}: holdout image {missing[0]!r} is not in {comp.root}'s training images")
    return rows.loc[ids].reset_index(drop=True)
