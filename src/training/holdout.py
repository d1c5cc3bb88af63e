"""A run's holdout_predictions.csv: ids, labels and what the final weights predict, in the task kind's terms.

    accuracy = write_predictions(cfg, data, run, probs, heads)   # labels, tags or numbers; returns the score
    verdict = judge_holdout(cfg, data, run)                     # --metric against the trivial answer's

The file every later job reads back: K-fold's out-of-fold table, the ledger, src.submit's holdout blends.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.core.files import read_json, write_csv
from src.inference.identities import identity_file, identity_truth
from src.inference.metrics import fit_thresholds, score
from src.inference.reference import compare, identity_reference, prior_answer, reference_answer
from src.runs.folder import RunFolder


def write_predictions(cfg, data, run: RunFolder, probs, heads: dict) -> float:
    """Write the holdout's predictions (a number, tags at 0.5, or a label with every class's probability and each
    multi-task head's answer); return the holdout accuracy (per-tag for tags; a number: --metric)."""
    y_val = data.y_val
    if data.class_map.kind.output == "number":  # a number: written clipped to the training range, scored by --metric
        return write_number_holdout(cfg, data, run, probs)
    if data.class_map.kind.name == "tags":  # tags at 0.5 here; src.submit fits a threshold per tag for its metric
        frame = pd.DataFrame({"id": data.val["id"].to_numpy(), "label": data.val[data.target].to_numpy(),
                              "predicted": data.class_map.decode_tags(probs >= 0.5)})
        frame = frame.join(pd.DataFrame(probs, columns=[f"prob_{v}" for v in data.class_map.values]))
        write_csv(run.holdout_file, frame)
        return float(((probs >= 0.5) == (y_val > 0.5)).mean())  # per-tag accuracy, as val_accuracy
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
    and whether the run is no better, read back from the files the run just wrote.

    Exists so every run ends by saying whether it learned anything the holdout can see: accuracy alone hides a
    log loss, a QWK or an RMSE no better than the answer that looks at no image.
    """
    class_map, metric = data.class_map, cfg.metric
    if class_map.kind.output == "embedding":  # identities: the threshold's holdout MAP against the most frequent
        record = read_json(identity_file(run.path), "the run's identity.json")
        truth = identity_truth(data.val[data.target], class_map, set(data.train[data.target].astype(str)))
        k = int(metric.split("@")[1]) if "@" in metric else 5
        value = record.get("holdout")
        reference = identity_reference(data.y_train, truth, len(class_map.values), k)
    else:
        frame = pd.read_csv(run.holdout_file)
        if class_map.kind.output == "number":
            value = score(frame["predicted"].to_numpy(float), data.y_val, metric)
        else:
            probs = frame[[f"prob_{v}" for v in class_map.values]].to_numpy(float)
            thresholds = fit_thresholds(probs, data.y_val) if metric == "f2_samples" else None
            value = score(probs, data.y_val, metric, data.positive, thresholds)
        reference = reference_answer(metric, data.y_train, data.y_val, len(class_map.values), data.positive,
                                     number=class_map.kind.output == "number")
    line, worse = compare(value, reference, metric)
    return {"holdout_score": None if value is None else float(value), **reference.as_record(),
            "no_better": worse, "line": line}


def epoch_floor(cfg, data) -> float | None:
    """Return the trivial answer's score as the per-epoch metric computes it on the holdout (tags at 0.5), the
    floor under which early stopping does not count its patience; None where no epoch metric is comparable
    (identities, a full-fit without a holdout, a holdout of one class)."""
    output = data.class_map.kind.output
    if cfg.full_fit or not len(data.val) or output == "embedding":
        return None
    if output == "number":
        value = reference_answer(cfg.metric, data.y_train, data.y_val, 1, number=True).score
    else:
        probs = prior_answer(data.y_train, len(data.val), len(data.class_map.values))
        value = score(probs, data.y_val, cfg.metric, data.positive)
    return None if value is None or not np.isfinite(value) else float(value)
