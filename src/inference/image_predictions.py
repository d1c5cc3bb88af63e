"""`python -m src.predict`: the top classes of a few image files (a number target: the number), printed, with a
run's weights and TTA views.

    print_predictions(cfg)     # cfg: PredictConfig (image paths, --run, --tta, --top)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.metric_choice import resolve_metric
from src.core.submit_settings import DEFAULT_VIEWS
from src.core.task_kind import kind_of
from src.data.imagefiles import describe_bad, scan_images
from src.inference.prediction import load_run, predict_frame
from src.inference.views import with_scales


def top_classes(probs: np.ndarray, class_map, k: int = 5) -> list:
    """Return, per image, the k most probable (competition label, probability) pairs."""
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(class_map.values[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def rows_by_file(run, frame: pd.DataFrame) -> pd.DataFrame:
    """Return a --metadata run's table features for each file of the frame, indexed by the frame's ids.

    A file's id is its name, else its name without the extension, as the competition's tables name
    images (ISIC_0015670.jpg is row ISIC_0015670); a file with neither is an error naming it and the tables.
    """
    table, keys = run.table, []
    for path in frame["path"]:
        name, stem = Path(path).name, Path(path).stem
        key = name if name in table.index else stem
        if key not in table.index:
            tables = " or ".join(table.attrs.get("tables", [])) or f"{run.config.data}'s tables"
            raise KitError(f"{path}: no row for this image in {tables} (looked for the id {name!r}, then {stem!r}, "
                           f"in column {table.attrs.get('id_column', 'id')}): --run {run.folder} was trained with "
                           f"--metadata, so each image needs its table row; name the file by its id (as "
                           f"{table.index[0]}.jpg), or add its row to the test table")
        keys.append(key)
    return table.loc[keys].set_axis(frame["id"].to_numpy())


def print_predictions(cfg) -> list:
    """Print the top classes (multi-label: the tags too) of each image; return them as (path, [(label, probability)])."""
    run = load_run(cfg.run)
    kind_of(run.class_map).check_job("predict", f"--run {cfg.run}: its target {run.target}")  # masks: src.submit
    if run.config.metric:  # what the run was chosen by (its epochs, its stage): said, as every job says it
        print(resolve_metric("", run.config.data, run.config.metric, "", kind_of(run.class_map), run.config.metric,
                             f"{run.folder.config_file}; weights of {run.stage}").line)
    frame = scan_images(list(cfg.images))
    bad = frame[frame["error"] != ""]
    if not bad.empty:
        raise KitError(f"cannot predict {describe_bad(bad)}")
    frame["id"] = [f"{i}:{path}" for i, path in enumerate(frame["path"])]  # the same file twice is two rows
    if run.table is not None:  # --metadata: each file's own table row, under the frame's ids
        run = dataclasses.replace(run, table=rows_by_file(run, frame))
    views = tuple(v.strip() for v in cfg.tta_views.split(",") if v.strip()) or (DEFAULT_VIEWS if cfg.tta else ("identity",))
    views = with_scales(views, cfg.tta_scales)
    probs = predict_frame(run, frame, views, batch_size=cfg.batch_size)
    return kind_of(run.class_map).show_predictions(run, list(cfg.images), probs, cfg.top)  # in the kind's terms


def show_numbers(run, paths: list, probs) -> list:
    """Print a number per image (clipped to the training range); return [(path, [(column, number)])]."""
    numbers = run.class_map.scale.clip(probs.reshape(-1))
    for path, value in zip(paths, numbers):
        print(f"{path}\n  {run.class_map.column} {value:.4g}")
    return [(path, [(run.class_map.column, float(value))]) for path, value in zip(paths, numbers)]


def show_classes(run, paths: list, probs, top: int, tags: bool) -> list:
    """Print the likeliest classes per image (tags: first the tags at 0.5, as src.submit fits a threshold per
    tag); return [(path, [(label, probability) ...])]."""
    result = list(zip(paths, top_classes(probs, run.class_map, top)))
    chosen = run.class_map.decode_tags(probs >= 0.5) if tags else [None] * len(result)
    for (path, best), picked in zip(result, chosen):
        print(path)
        if picked is not None:
            print(f"  tags at 0.5: {picked or '(none)'}")
        for label, probability in best:
            print(f"  {probability:7.2%}  {label}")
    return result
