"""Prediction from a trained run, with test-time augmentation (the library behind `python -m src.predict`).

    run = load_run("runs/effb0")
    probs = predict_frame(run, frame, views=("identity", "hflip"))    # TTA, views averaged

Each image is decoded once per scale; its views (flips, quarter turns, transposes, centre crops, zooms,
random training augmentations; src.inference.views) are made from the decoded batch in the input pipeline
and go through the model together, on either Keras backend; views at a larger scale (NAME@1.15) are
decoded at that size and go through the run's network built at it.
A run predicts at its final stage's resolution with that stage's best weights, as
its RunFolder says; never another stage's weights instead.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from src.core.config import MAX_SIDE, PipelineOptions
from src.core.console import quiet_retracing_warnings
from src.core.errors import KitError
from src.core.files import read_json
from src.core.task_kind import kind_of
from src.data.sample_submission import read_sample_submission
from src.data.table_features import TABLE_FILE, features_by_id, rows_for
from src.hardware.accelerator import active_batch_multiple
from src.inference.views import check_views, combine_views, make_view, scaled_size, split_scale, view_size
from src.models.backbones import get_spec
from src.models.classifier import HeadSpec, build_classifier, load_checked, recorded_shape
from src.models.number_head import REGRESSOR_FILE, REGRESSORS, read_regressor
from src.pipeline.augment import make_augmenter
from src.pipeline.images import make_predict_dataset
from src.runs.folder import RunFolder

quiet_retracing_warnings()  # notebooks call this module without run_cli: one trace per view size is expected


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
    table: object = None        # --metadata: table features by id (training and test rows), else None


def load_run(folder) -> Run:
    """Return the run in `folder`; a folder without its final stage's weights is an error naming what is missing."""
    run = RunFolder(folder)
    folds = run.folds()
    if folds and not run.state_file.is_file():  # a K-fold run's own folder trains nothing: its folds do
        names = ", ".join(f.path.name for f in folds)
        raise KitError(f"--run {run.path} is a K-fold run ({len(folds)} folds: {names}) and this command uses one "
                       f"model: pass one fold, e.g. --run {folds[0].path} (src.submit averages every fold)")
    config = run.load_config()
    stage = run.final_stage()
    target, maps = run.class_maps()
    return Run(run, config, stage.name, tuple(stage.size), run.weights(stage.name), target, maps[target],
               run.split(), maps, run_table(run, config))


def run_table(run: RunFolder, config):
    """Return a --metadata run's table features by id, from its data's tables and its saved spec; else None."""
    if not getattr(config, "metadata", False):
        return None
    path = run.path / TABLE_FILE
    if not path.is_file():
        raise KitError(f"--run {run.path}: trained with --metadata but {TABLE_FILE} is missing: restore it, or train "
                       "the run again")
    root = Path(config.data)
    return features_by_id(root, config, read_sample_submission(root), (), read_json(path, "the run's table"))[1]


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
    model = build_run_network(run, run.size)
    check_trained_shape(run, model)
    load_checked(model, run.weights, f"{run.folder.config_file} and {run.folder.class_map_file}")
    return model


def build_run_network(run: Run, size):
    """Return the run's classifier built at `size` (height, width), weights not loaded."""
    spec = get_spec(run.config.backbone)
    columns = [c.strip() for c in run.config.targets.split(",") if c.strip()]
    classes = {c: len(run.heads[c].values) for c in columns} or len(run.class_map.values)
    width = 0 if run.table is None else run.table.shape[1]
    if getattr(run.config, "head", "auto") not in REGRESSORS:  # the network its kind trained (a U-Net for masks)
        return kind_of(run.class_map).build_network(run.config, spec, tuple(size), run.class_map, classes, "none",
                                                    False, width)  # its dropout idle here
    head = dataclasses.replace(HeadSpec.for_target(run.config, run.class_map),  # --head ridge|svr: regressor.npz
                               regressor=read_regressor(run.folder.path / REGRESSOR_FILE))
    return build_classifier(spec, tuple(size), classes, "none", head, scheme=run.config.head_scheme,
                            drop_path=run.config.drop_path, table_width=width)


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


def predict_frame(run: Run, frame: pd.DataFrame, views=("identity",), random_passes: int = 0,
                  mean: str = "arithmetic", model=None, batch_size: int = 32) -> np.ndarray:
    """Return class probabilities (n, classes) for the frame's images, averaged over the TTA views."""
    per_view = predict_views(run, frame, views, random_passes, model, batch_size)
    return combine_views(per_view, mean)


def predict_views(run: Run, frame: pd.DataFrame, views=("identity",), random_passes: int = 0, model=None,
                  batch_size: int = 32) -> np.ndarray:
    """Return probabilities per view, shape (views + random passes, n, classes).

    Images are decoded once per scale (a view NAME@S at S times the run's size); random passes at the
    run's size. Views of another size than the run's go through its network built at their size.
    """
    check_views(views)  # unknown names fail before any work
    scales = sorted({split_scale(v)[1] for v in views} | ({1.0} if random_passes else set()))
    for scale in scales:
        if max(scaled_size(run.size, scale)) > MAX_SIDE:
            raise KitError(f"--tta-scales {scale:g}: {run.folder} predicts at {run.size[0]}x{run.size[1]}, so the "
                           f"views would be {scaled_size(run.size, scale)}, over {MAX_SIDE} pixels a side")
    sized = {tuple(run.size): model or build_run_model(run)}
    found = {}
    for scale in scales:
        names = [v for v in views if split_scale(v)[1] == scale]
        passes = random_passes if scale == 1.0 else 0
        probs = predict_scale(run, frame, names, passes, scaled_size(run.size, scale), sized, batch_size)
        found.update(zip(names + [f"random_{i}" for i in range(passes)], probs))
    order = list(views) + [f"random_{i}" for i in range(random_passes)]
    if not order:
        return np.zeros((0, len(frame), len(run.class_map.values)), np.float32)
    return np.stack([found[name] for name in order])


def predict_scale(run: Run, frame: pd.DataFrame, names: list, passes: int, size: tuple, sized: dict,
                  batch_size: int) -> list:
    """Return one (n, classes) array per name, then per random pass, from images decoded at `size`."""
    opts = PipelineOptions(image_size=size, resize=run.config.resize, sharpen=run.config.sharpen,
                           cache="none", batch_size=batch_size)
    augment = make_augmenter(run.config.augment, run.config.augment_backend, run.config.flip)
    groups = {}  # {view size: names}: views of one size go through the network together
    for name in names:
        groups.setdefault(view_size(name, size), []).append(name)
    if passes:
        groups.setdefault(tuple(size), [])
    randoms = {shape: [f"random_{i}" for i in range(passes)] if shape == tuple(size) else [] for shape in groups}
    multiple = active_batch_multiple()

    def all_views(images, batch_ids):
        # Views are made in the input pipeline (TensorFlow ops on any Keras backend); the padding
        # to a multiple of the devices (JAX data parallelism) is cut off after the model.
        rows = tf.shape(images)[0]
        images = tf.pad(images, [[0, (multiple - rows % multiple) % multiple], [0, 0], [0, 0], [0, 0]])
        return tuple(tf.concat([make_view(images, n) for n in members] +
                               [tf.map_fn(augment, images) for _ in randoms[shape]], axis=0)
                     for shape, members in groups.items()), batch_ids, rows

    parts, ids = {shape: [] for shape in groups}, []
    for batches, batch_ids, rows in make_predict_dataset(frame, opts).map(all_views):
        for shape, batch in zip(groups, batches):
            views = len(groups[shape]) + len(randoms[shape])
            inputs = batch.numpy() if run.table is None else {"image": batch.numpy(), "table": np.tile(
                table_batch(run, batch_ids, len(batch) // views), (views, 1))}
            probs = target_probs(run, sized_model(run, sized, shape).predict_on_batch(inputs))
            parts[shape].append(probs.reshape(views, -1, probs.shape[-1])[:, :int(rows)])
        ids += [i.decode() for i in batch_ids.numpy()]
    if not ids:
        return [np.zeros((0, len(run.class_map.values)), np.float32)] * (len(names) + passes)
    # Shards stream in their own order: put the rows back in the frame's order by id.
    order = pd.Index(ids).get_indexer(frame["id"].astype(str))
    found = {}
    for shape, chunks in parts.items():
        found.update(zip(groups[shape] + randoms[shape], np.concatenate(chunks, axis=1)[:, order]))
    return [found[name] for name in names + [f"random_{i}" for i in range(passes)]]


def table_batch(run: Run, batch_ids, rows: int) -> np.ndarray:
    """Return the table rows of a batch's ids, padded with zeros to `rows` (the devices' multiple)."""
    found = rows_for(run.table, [i.decode() for i in batch_ids.numpy()])
    return np.pad(found, [(0, rows - len(found)), (0, 0)])


def target_probs(run: Run, probs) -> np.ndarray:
    """Return the submission column's probabilities: a multi-task run's model answers per column."""
    return np.asarray(probs[run.target] if isinstance(probs, dict) else probs)


def sized_model(run: Run, sized: dict, size: tuple):
    """Return the run's network at `size` with the weights of the one at the run's size (built once per size)."""
    if size not in sized:
        sized[size] = build_run_network(run, size)
        sized[size].set_weights(sized[tuple(run.size)].get_weights())
    return sized[size]


def holdout_frame(run, comp) -> pd.DataFrame:
    """Return the run's validation images as rows of the competition's training table (paths, sizes)."""
    ids = sorted(run.split.loc[run.split["split"] == "val", "id"].astype(str))  # one order for every run
    rows = comp.train.set_index(comp.train["id"].astype(str))
    missing = sorted(set(ids) - set(rows.index))
    if missing:
        raise KitError(f"--run {run.folder}: holdout image {missing[0]!r} is not in {comp.root}'s training images")
    return rows.loc[ids].reset_index(drop=True)
