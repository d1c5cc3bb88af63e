"""Frozen-backbone screening (the job behind `python -m src.screen_backbones`).

Each backbone is frozen under a fresh head (Dropout, Dense) and trained for a few epochs on
the saved split; its best epoch by the competition's metric (--metric, else Kaggle's, else the
submission format's; ties to the lower val_loss) ranks them, in the metric's direction. `full` is the reference method
(the frozen backbone inside the model, augmented images every epoch); `features` runs each
backbone once over un-augmented images, caches the pooled features and trains the head on
them (the default when --augment none). Writes screening.csv (best first), screening.png,
config.json and class_map.json into --out; a backbone that fails gets its error in the table
and the screen goes on; rows already in screening.csv are kept, and --resume skips them.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from src.core.config import save_config
from src.core.errors import KitError
from src.core.files import write_csv
from src.core.metric_choice import monitor, rank_key, settle_metric
from src.data.class_maps import save_class_maps
from src.core.plots import plot_screening
from src.core.settings import ScreenConfig
from src.core.task_kind import kind_of
from src.data.splits import SplitData, prepare_split
from src.hardware.accelerator import pick_accelerator
from src.inference.formats import default_metric, positive_index
from src.models.backbones import parse_backbones
from src.models.classifier import HeadSpec, build_classifier, build_head
from src.models.epoch_metrics import epoch_metric
from src.models.recipe import accuracy_metric, build_optimizer, make_optimizer
from src.models.features import extract_features
from src.pipeline.images import batch_for_devices, fixed_tuning, make_eval_dataset, make_train_dataset
from src.training.callbacks import resume_state

# best_score: the metric at best_epoch (the ranking); best_val_accuracy: the highest val_accuracy, for comparison
COLUMNS = ["backbone", "metric", "best_score", "best_epoch", "best_val_accuracy", "val_loss", "params", "seconds",
           "images_per_second", "mode", "weights", "error"]


def screen(cfg: ScreenConfig) -> pd.DataFrame:
    """Screen every backbone in cfg.backbones; return the table (best first), also written to cfg.out."""
    specs = parse_backbones(cfg.backbones)  # unknown names fail before anything runs
    mode = resolve_mode(cfg)
    out = Path(cfg.out)
    data = prepare_data(cfg, out)
    screen_head(cfg, data)  # a kind with no head to screen (masks) refuses here, not once per backbone
    cfg, _ = settle_metric(cfg, default_metric(data.comp.schema, data.class_map), kind_of(data.class_map),
                           classes=len(data.class_map.values))
    save_config(cfg, out)
    accelerator = pick_accelerator(request=cfg.accelerator)
    rows = read_rows(out / "screening.csv", cfg.metric)
    for number, spec in enumerate(specs, start=1):
        tag = f"[{number}/{len(specs)}] {spec.name}"
        if cfg.resume and finished(rows, spec.name):
            print(f"{tag}: already in screening.csv, skipped (--resume)")
            continue
        print(f"{tag}: {mode}, {cfg.epochs} epoch(s), {cfg.image_size[0]}x{cfg.image_size[1]}, "
              f"weights {cfg.weights}", flush=True)
        row = screen_one(spec, cfg, mode, data, accelerator)
        print(f"{tag}: {describe(row)}", flush=True)
        rows = merge_row(rows, row, cfg.metric)
        write_rows(rows, out / "screening.csv")
    plot_rows(rows, out / "screening.png", cfg, mode)
    print_table(rows)
    if (rows["error"] != "").all():
        raise KitError(f"every backbone failed (errors in {out / 'screening.csv'}): see the FAILED lines above")
    return rows


def resolve_mode(cfg: ScreenConfig) -> str:
    """Return full or features; auto means features exactly when there is no augmentation."""
    if cfg.mode != "auto":
        return cfg.mode
    return "features" if cfg.augment == "none" and cfg.mixup == 0 and cfg.cutmix == 0 else "full"


def prepare_data(cfg, out: Path) -> SplitData:
    """Return the saved split; its class map is saved into out (screening.csv's classes)."""
    data = prepare_split(cfg)
    save_class_maps(out / "class_map.json", data.target, data.comp.class_maps)
    return data


def screen_one(spec, cfg: ScreenConfig, mode: str, data: SplitData, accelerator) -> dict:
    """Return one table row for a backbone; an exception becomes the row's error, not a crash."""
    start = time.perf_counter()
    row = {"backbone": spec.name, "metric": cfg.metric, "mode": mode, "weights": cfg.weights, "error": ""}
    try:
        keras.utils.set_random_seed(cfg.seed)
        runner = train_on_features if mode == "features" else train_full
        history, params, rate = runner(spec, cfg, data, accelerator)
        score, loss, wait = resume_state(pd.DataFrame(history), cfg.metric)  # ties to the lower val_loss
        row.update(best_score=score, best_epoch=len(history["val_loss"]) - wait, val_loss=loss,
                   best_val_accuracy=float(np.max(history.get("val_accuracy", [np.nan]))),  # numbers: none
                   params=int(params),
                   images_per_second=rate)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # out of memory, missing weights, a broken build: record it and go on
        row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    finally:
        keras.backend.clear_session()
        gc.collect()
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def train_on_features(spec, cfg: ScreenConfig, data: SplitData, accelerator):
    """Return (history, backbone params, images/s of extraction) from a head trained on cached features."""
    arrays, seconds, count, params = extract_features(spec, {"train": data.train, "val": data.val},
                                                      cfg.weights, cfg, cfg.features_cache, accelerator.strategy,
                                                      accelerator.batch_multiple)
    rate = round(count / seconds, 1) if count else math.nan  # nan: read from the cache
    with accelerator.strategy.scope():
        head = build_head(arrays["train"].shape[1], data.num_classes, screen_head(cfg, data))
        compile_screen(head, cfg, accelerator, data)
    train, val = batched(arrays["train"], data.y_train, cfg, accelerator, shuffle=True), \
        batched(arrays["val"], data.y_val, cfg, accelerator)
    history = head.fit(train, validation_data=val, epochs=cfg.epochs, verbose=2, shuffle=False)  # shuffled above
    return history.history, params, rate


def screen_head(cfg: ScreenConfig, data: SplitData) -> HeadSpec:
    """Return the fresh head every backbone gets: --dropout, softmax (sigmoid for multi-label tags; a number:
    linear in the target's units, as src.train's default --loss mse)."""
    return data.class_map.kind.screen_head(cfg, data.class_map)


def compile_screen(model, cfg: ScreenConfig, accelerator, data: SplitData) -> None:
    """Compile for sparse labels (multi-label: 0/1 rows, binary cross-entropy) with Adam, accuracy and --metric.

    Metrics are weighted where validation batches carry padding (JAX data parallelism).
    """
    kind = kind_of(data.class_map)
    extra = epoch_metric(cfg.metric, data.num_classes, positive_index(data.class_map))
    metrics = {"weighted_metrics" if accelerator.batch_multiple > 1 else "metrics":
               [m for m in (accuracy_metric(kind), extra) if m is not None]}
    loss = kind.screen_loss(data.class_map)  # on sparse targets (tags: 0/1 rows; a number: mse, standardised)
    model.compile(optimizer=make_optimizer("adam", cfg.learning_rate), loss=loss, **metrics)
    build_optimizer(model)


def batched(features, labels, cfg: ScreenConfig, accelerator, shuffle: bool = False):
    """Return a dataset of (features, labels) batches of --batch-size per replica.

    Training (shuffle) keeps only full batches where the accelerator needs them; evaluation pads
    its last batch with weight-0 rows instead (src.pipeline.images.batch_for_devices).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        size = accelerator.global_batch(cfg.batch_size, len(features))
        ds = ds.shuffle(len(features), seed=cfg.seed, reshuffle_each_iteration=True)
        return fixed_tuning(ds.batch(size, drop_remainder=accelerator.fixed_batches))
    size = cfg.batch_size * accelerator.replicas
    return fixed_tuning(batch_for_devices(ds, size, accelerator.batch_multiple,
                                          weights=accelerator.batch_multiple > 1))


def train_full(spec, cfg: ScreenConfig, data: SplitData, accelerator):
    """Return (history, backbone params, images/s) of the frozen backbone inside the model, augmented."""
    if cfg.mixup > 0 or cfg.cutmix > 0:
        raise KitError("screening trains with sparse labels: leave --mixup and --cutmix at 0")
    with accelerator.strategy.scope():
        model = build_classifier(spec, cfg.image_size, data.num_classes, cfg.weights, screen_head(cfg, data))
        compile_screen(model, cfg, accelerator, data)
    opts = dataclasses.replace(cfg, batch_size=accelerator.global_batch(cfg.batch_size, len(data.train)))
    train = make_train_dataset(data.train, data.y_train, opts, seed=cfg.seed, drop_remainder=accelerator.fixed_batches)
    val = make_eval_dataset(data.val, data.y_val, opts, accelerator.batch_multiple,
                            weights=accelerator.batch_multiple > 1)
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=cfg.epochs, verbose=2, shuffle=False)
    seconds = time.perf_counter() - start
    rate = round(cfg.epochs * (len(data.train) + len(data.val)) / seconds, 1)
    params = model.get_layer(spec.layer_name).count_params()
    return history.history, params, rate


def describe(row: dict) -> str:
    """Return the progress line's result part for one row."""
    if row["error"]:
        return f"FAILED after {row['seconds']:.1f} s: {row['error']}"
    rate = row["images_per_second"]
    speed = "features from cache" if isinstance(rate, float) and math.isnan(rate) else f"{rate:.0f} images/s"
    return (f"best {monitor(row['metric'])} {row['best_score']:.4f} at epoch {row['best_epoch']}, "
            f"val_loss {row['val_loss']:.4f}, best val_accuracy {row['best_val_accuracy']:.4f}, "
            f"{row['seconds']:.1f} s, {speed}")


def read_rows(path: Path, metric: str) -> pd.DataFrame:
    """Return the rows already in screening.csv (kept across runs), or an empty table.

    A table ranked by another metric is refused: its rows and the new ones could not be compared.
    """
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    rows = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise KitError(f"{path}: not a screening table of this kit version (missing {', '.join(missing)}); move it "
                       "away or pick --out")
    other = sorted(set(rows["metric"].dropna().astype(str)) - {metric})
    if other:
        raise KitError(f"{path} ranks backbones by {other[0]}, not --metric {metric}: pick another --out")
    rows["error"] = rows["error"].fillna("")
    return rows[COLUMNS]


def finished(rows: pd.DataFrame, name: str) -> bool:
    """Return True when the table has a row for this backbone that did not fail."""
    done = rows[(rows["backbone"] == name) & (rows["error"] == "")]
    return not done.empty


def merge_row(rows: pd.DataFrame, row: dict, metric: str = "accuracy") -> pd.DataFrame:
    """Return the table with this backbone's row replaced (or added), sorted best first by the metric in its
    direction, ties to the lower val_loss; failed rows last."""
    kept = rows[rows["backbone"] != row["backbone"]]
    new = pd.DataFrame([{c: row.get(c, np.nan) for c in COLUMNS}])
    merged = new if kept.empty else pd.concat([kept, new], ignore_index=True)
    order = sorted(range(len(merged)), key=lambda i: rank_key(merged["best_score"].iloc[i],
                                                               merged["val_loss"].iloc[i], metric))
    return merged.iloc[order].reset_index(drop=True)


def write_rows(rows: pd.DataFrame, path: Path) -> None:
    """Write the table so that an interrupted write never leaves a half file."""
    write_csv(path, rows)


def plot_rows(rows: pd.DataFrame, path: Path, cfg: ScreenConfig, mode: str) -> None:
    """Draw screening.png: each backbone's best score in the metric."""
    title = f"frozen-backbone screening: {mode}, {cfg.epochs} epoch(s), {cfg.image_size[0]}x{cfg.image_size[1]}"
    plot_screening(rows, path, title, "best_score", f"best validation {cfg.metric}")


def print_table(rows: pd.DataFrame) -> None:
    """Print the table and the winner."""
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(rows.to_string(index=False))
    good = rows[rows["error"] == ""]
    if good.empty:
        print("winner: none (every backbone failed)")
    else:
        best = good.iloc[0]
        print(f"winner: {best['backbone']} (best {monitor(best['metric'])} {best['best_score']:.4f} "
              f"at epoch {int(best['best_epoch'])}, by {best['metric']})")
