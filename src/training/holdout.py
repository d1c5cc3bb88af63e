"""A run's holdout_predictions.csv: ids, labels and what the final weights predict, in the task kind's terms.

    accuracy = write_predictions(cfg, data, run, probs, heads)   # labels, tags or numbers; returns the score
    verdict = judge_holdout(cfg, data, run)                     # --metric against the trivial answer's

The file every later job reads back: K-fold's out-of-fold table, the ledger, src.submit's holdout blends.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.core.files import write_csv
from src.inference.metrics import fit_thresholds, score
from src.inference.reference import compare, prior_answer, reference_answer
from src.runs.folder import RunFolder


def write_predictions(cfg, data, run: RunFolder, probs, heads: dict) -> float:
    """Write the holdout's predictions in the task kind's terms (src.kinds: a label with every class's probability
    and each multi-task head's answer, tags at 0.5, a number); return its score (accuracy, per-tag, --metric)."""
    return data.class_map.kind.write_predictions(cfg, data, run, probs, heads)


def write_tags_holdout(data, run: RunFolder, probs) -> float:
    """Write a tags holdout at 0.5 (src.submit fits a threshold per tag for its metric); return per-tag accuracy."""
    frame = pd.DataFrame({"id": data.val["id"].to_numpy(), "label": data.val[data.target].to_numpy(),
                          "predicted": data.class_map.decode_tags(probs >= 0.5)})
    frame = frame.join(pd.DataFrame(probs, columns=[f"prob_{v}" for v in data.class_map.values]))
    write_csv(run.holdout_file, frame)
    return float(((probs >= 0.5) == (data.y_val > 0.5)).mean())  # per-tag accuracy, as val_accuracy


def write_class_holdout(cfg, data, run: RunFolder, probs, heads: dict) -> float:
    """Write a label's holdout: the label, the predicted class, every class's probability and each multi-task
    head's answer; return the holdout accuracy."""
    y_val = data.y_val
    frame = pd.DataFrame({"id": data.val["id"].to_numpy(), "label": data.class_map.decode(y_val),
                          "predicted": data.class_map.decode(probs.argmax(axis=1))})
    for column, head_probs in heads.items():  # every head's answer, so its accuracy can be checked
        truth, guess = data.heads[column].encode(data.val[column]), head_probs.argmax(axis=1)
        if column != data.target:
            frame[f"{column}_label"] = data.val[column].to_numpy()
            frame[f"{column}_predicted"] = data.heads[column].decode(guess)
        print(f"holdout accuracy of head {column}: {(truth == guess).mean():.4f}")
    frame = frame.join(pd.DataFrame(probs, columns=[f"prob_{v}" for v in data.class_map.values]))  # one block
    write_csv(run.holdout_file, frame)
    return float((probs.argmax(axis=1) == y_val).mean())


def write_number_holdout(cfg, data, run: RunFolder, predicted) -> float:
    """Write a number target's holdout (id, label, predicted, prob_<column> as K-fold reads it); return --metric.

    Predictions are clipped to the training range, as the submission's are.
    """
    predicted = data.class_map.scale.clip(np.asarray(predicted).reshape(-1))
    frame = pd.DataFrame({"id": data.val["id"].to_numpy(), "label": data.y_val.reshape(-1), "predicted": predicted,
                          f"prob_{data.class_map.values[0]}": predicted})
    write_csv(run.holdout_file, frame)
    return score(predicted, data.y_val, cfg.metric)


def judge_holdout(cfg, data, run: RunFolder) -> dict:
    """Return the holdout's --metric score with the final weights, the trivial answer's (src.inference.reference)
    and whether the run is no better, read back from the files the run just wrote (the task kind's score).

    Exists so every run ends by saying whether it learned anything the holdout can see: accuracy alone hides a
    log loss, a QWK or an RMSE no better than the answer that looks at no image.
    """
    value, reference = data.class_map.kind.holdout_score(cfg, data, run)
    line, worse = compare(value, reference, cfg.metric)
    return {"holdout_score": None if value is None else float(value), **reference.as_record(),
            "no_better": worse, "line": line}


def class_holdout_score(cfg, data, run: RunFolder) -> tuple:
    """Return (a label's or tags' holdout --metric from holdout_predictions.csv, the prior's Reference); tags
    scored with thresholds fitted as src.submit fits them."""
    frame, metric = pd.read_csv(run.holdout_file), cfg.metric
    probs = frame[[f"prob_{v}" for v in data.class_map.values]].to_numpy(float)
    thresholds = fit_thresholds(probs, data.y_val) if metric == "f2_samples" else None
    value = score(probs, data.y_val, metric, data.positive, thresholds)
    return value, reference_answer(metric, data.y_train, data.y_val, len(data.class_map.values), data.positive)


def number_holdout_score(cfg, data, run: RunFolder) -> tuple:
    """Return (a number's holdout --metric from holdout_predictions.csv, the training mean's Reference)."""
    frame = pd.read_csv(run.holdout_file)
    value = score(frame["predicted"].to_numpy(float), data.y_val, cfg.metric)
    return value, reference_answer(cfg.metric, data.y_train, data.y_val, 1, data.positive, number=True)


def epoch_floor(cfg, data) -> float | None:
    """Return the trivial answer's score as the per-epoch metric computes it on the holdout (tags at 0.5), the
    floor under which early stopping does not count its patience; None where no epoch metric is comparable
    (a full-fit without a holdout, a kind whose epoch metric no trivial answer matches, a holdout of one class)."""
    if cfg.full_fit or not len(data.val):
        return None
    value = data.class_map.kind.epoch_floor(cfg, data)
    return None if value is None or not np.isfinite(value) else float(value)


def prior_floor(cfg, data) -> float | None:
    """Return the training prior's per-epoch --metric on the holdout (a label's classes, tags' rates)."""
    probs = prior_answer(data.y_train, len(data.val), len(data.class_map.values))
    return score(probs, data.y_val, cfg.metric, data.positive)


def number_floor(cfg, data) -> float | None:
    """Return the training mean's --metric on the holdout (a number)."""
    return reference_answer(cfg.metric, data.y_train, data.y_val, 1, number=True).score
