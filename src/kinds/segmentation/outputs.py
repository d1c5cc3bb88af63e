"""What a segmentation run keeps when it ends: the holdout's masks at each image's own size, the post-processing
chosen on them (RUN/segmentation.json) and its Dice beside the empty answer's.

    score = write_mask_holdout(cfg, spec, data, run, kept, accelerator)   # the kept stage's weights
    value, reference = mask_holdout_score(cfg, data, run)                  # Dice beside the empty mask's
    settings = read_settings(run_path)                                     # what src.submit applies

The holdout's probabilities are resized back to each image's size (linear) and scored against its true mask
there, as the competition scores; the threshold, minimum object size and empty-mask gate of each class are
chosen on them (src.kinds.segmentation.postprocess) and said in one line. holdout_predictions.csv holds, per
image, the classes its true and its answered mask hold and its Dice (the mean over its classes).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import read_json, write_csv, write_json
from src.inference.reference import Reference
from src.kinds.segmentation.metrics import mean_score, pair_scores
from src.kinds.segmentation.postprocess import ClassRule, PostProcess, choose_postprocess
from src.kinds.segmentation.reading import mask_table
from src.kinds.segmentation.tiles import predict_views, resize
from src.kinds.segmentation.training import stage_arrays, unet_size
from src.training.stages import build_stage_model

SETTINGS_FILE = "segmentation.json"
EMPTY_ANSWER = "the empty mask for every image and class"


def settings_file(run_path) -> Path:
    return Path(run_path) / SETTINGS_FILE


def predict_probabilities(model, images: np.ndarray, views=("identity",), batch_size: int = 8) -> np.ndarray:
    """Return (n, h, w, classes) float32 probabilities of uint8 images at the model's size, each view undone."""
    if not len(images):
        return np.zeros((0, *images.shape[1:3], int(model.outputs[0].shape[-1])), np.float32)
    return predict_views(lambda x: model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0),
                         images, views)


def full_size(probs: np.ndarray, ids, table) -> list:
    """Return each image's probabilities resized back to its own (height, width) (linear)."""
    return [resize(p, table.image_size(i)) for p, i in zip(probs, ids)]


def classes_in(mask: np.ndarray, classes) -> str:
    """Return the classes a (H, W, C) mask holds, space-separated ('' for none)."""
    return " ".join(str(name) for c, name in enumerate(classes) if mask[..., c].any())


def write_mask_holdout(cfg, spec, data, run, kept, accelerator) -> dict:
    """Predict the holdout with the kept stage's weights and write the run's outputs; return the holdout's Dice
    (None for a full-fit, which has no holdout: the default post-processing is kept)."""
    if not len(data.val):  # a full-fit: its reference run's choice, chosen on that run's holdout (else defaults)
        reference = settings_file(cfg.full_fit) if getattr(cfg, "full_fit", "") else None
        if reference is not None and reference.is_file():
            write_json(settings_file(run.path), {**read_json(reference, "the reference run's segmentation.json"),
                                                 "from_reference": str(cfg.full_fit)})
            print(f"post-processing: the reference run's, chosen on its holdout ({reference})")
        else:
            write_settings(run.path, PostProcess(tuple(map(str, data.class_map.values)),
                                                 tuple(ClassRule() for _ in data.class_map.values)), None, 0,
                           mask_table(data.comp.root).order)
        return {"holdout_accuracy": None, "holdout_score": None}
    model = build_stage_model(kept, cfg, spec, data, run.weights(kept.name), accelerator)
    images, _ = stage_arrays(data.val, mask_table(data.comp.root), unet_size(spec, kept.size))  # as validated
    probs = predict_probabilities(model, images, batch_size=cfg.batch_size)
    return {"holdout_accuracy": None, "holdout_score": write_mask_predictions(cfg, data, run, probs)}


def write_mask_predictions(cfg, data, run, probs: np.ndarray) -> float:
    """Write holdout_predictions.csv and RUN/segmentation.json from the holdout's probabilities (any size); return
    the holdout's mean Dice with the post-processing chosen there."""
    table, classes = mask_table(data.comp.root), tuple(map(str, data.class_map.values))
    ids = data.val["id"].astype(str).tolist()
    probs, truths = full_size(probs, ids, table), [table.mask(i) for i in ids]
    rules = choose_postprocess(probs, truths, classes)
    answers = [rules.apply(p) for p in probs]
    empty = mean_score(truths, [np.zeros_like(t) for t in truths])
    write_csv(run.holdout_file, pd.DataFrame({
        "id": ids, "label": [classes_in(t, classes) for t in truths],
        "predicted": [classes_in(a, classes) for a in answers],
        "dice": pair_scores(truths, answers).mean(axis=1)}))
    write_settings(run.path, rules, empty, len(ids), table.order)
    print(f"post-processing chosen on the holdout ({len(ids)} images, each at its own size): {rules.describe()} "
          f"({settings_file(run.path)})", flush=True)
    return rules.after


def write_settings(run_path, rules: PostProcess, empty, images: int, order: str) -> None:
    """Write RUN/segmentation.json: each class's rule, the Dice before and after, the empty answer's, the order."""
    write_json(settings_file(run_path), {
        "classes": list(rules.classes), "rules": [dataclasses.asdict(rule) for rule in rules.rules],
        "holdout_before": rules.before if images else None, "holdout": rules.after if images else None,
        "empty_answer": empty, "holdout_images": images, "order": order, "metric": "dice"})


def read_settings(run_path) -> dict:
    """Return RUN/segmentation.json with its rules as a PostProcess ("postprocess")."""
    path = settings_file(run_path)
    if not path.is_file():
        raise KitError(f"{path}: missing: the run ended before its holdout was written; --resume it to finish")
    record = read_json(path, "the run's segmentation.json")
    rules = tuple(ClassRule(**rule) for rule in record["rules"])
    return {**record, "postprocess": PostProcess(tuple(record["classes"]), rules, record.get("holdout_before") or 0.0,
                                                 record.get("holdout") or 0.0)}


def mask_holdout_score(cfg, data, run) -> tuple:
    """Return (the holdout's Dice with the chosen post-processing, the empty mask's Reference), from the run's file."""
    record = read_json(settings_file(run.path), "the run's segmentation.json")
    empty = record.get("empty_answer")
    return record.get("holdout"), Reference(float("nan") if empty is None else float(empty), EMPTY_ANSWER)


def empty_reference(y) -> Reference:
    """Return the empty mask's Dice on holdout rows of classes present (0/1 per image and class): 1 where empty."""
    y = np.asarray(y, np.float32)
    return Reference(float((1.0 - y).mean()) if y.size else float("nan"), EMPTY_ANSWER)


def empty_floor(cfg, data) -> float | None:
    """Return the empty mask's Dice as the per-epoch val_dice sees it: the share of empty (image, class) pairs."""
    return empty_reference(data.y_val).score if len(data.val) else None
