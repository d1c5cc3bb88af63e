"""A run's holdout_predictions.csv: ids, labels and what the final weights predict, in the task kind's terms.

    accuracy = write_predictions(cfg, data, run, probs, heads)   # labels, tags or numbers; returns the score

The file every later job reads back: K-fold's out-of-fold table, the ledger, src.submit's holdout blends.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.core.files import write_csv
from src.inference.metrics import score
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
