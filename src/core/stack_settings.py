"""The config dataclass of python -m src.stack: a second stage over runs' out-of-fold predictions and the table.

Its fields are the command's flags (src.core.config makes them); defaults are the stack's recipe.
"""
from __future__ import annotations

import dataclasses

from src.core.config import file_name, opt, positive
from src.core.errors import KitError
from src.core.metric_choice import check_metric, metric_flag

# what scores one yes/no probability: map@K and the tag and number metrics do not
STACK_METRICS = ("auc", "pauc@R", "log_loss", "accuracy", "f1_macro", "qwk")
STACK_KNOWN = "auc, pauc@R (pauc@0.8 ...), log_loss, accuracy, f1_macro, qwk"


def stack_metric_flag(value: str):
    """Return what --metric expects when value is set and not a metric the stack can score, else None."""
    if metric_flag(value):
        return f"one of {STACK_KNOWN} (the stack scores one yes/no probability), or empty"
    if value and not (check_metric(value) in STACK_METRICS or check_metric(value).startswith("pauc@")):
        return f"one of {STACK_KNOWN}: the stack scores one yes/no probability, which {value} cannot score"
    return None


def check_stack_metric(name: str, where: str) -> str:
    """Return name when the stack can score it; else raise naming where it came from (the runs', Kaggle's)."""
    expected = stack_metric_flag(name)
    if expected:
        raise KitError(f"--metric {name} ({where}): expected {expected}; pass --metric")
    return name


def two_or_more(value):
    return None if value >= 2 else "2 or more (each fold's rows are scored by a model fitted on the other folds)"


@dataclasses.dataclass
class StackConfig:
    """A second stage on K-fold runs' out-of-fold predictions plus the metadata table's features: LightGBM, a logistic
    regression or their blend, whichever scores best out of fold (or the runs alone when they beat all three)."""

    data: str = opt("data/demo", "competition data folder (the training table and test-metadata.csv beside it)")
    runs: str = opt("", "K-fold run folders, comma separated, whose out-of-fold predictions are features; empty: "
                        "the table alone")
    metric: str = opt("", f"metric: {STACK_KNOWN}; empty: the runs' (config.json), else Kaggle's, else the "
                          "format's; early stopping and the second stage's choice follow it", check=stack_metric_flag)
    group_column: str = opt("", "column whose equal values stay in one fold (patient_id) and whose groups give the "
                                "within-group features; empty: the runs'")
    labels_csv: str = opt("", "the training table; empty: the runs', else guessed")
    id_column: str = opt("", "the table's id column; empty: the runs', else the sample's id column")
    label_column: str = opt("", "label column; empty: the runs', else guessed")
    images_dir: str = opt("", "training images folder; empty: the runs', else guessed")
    test_dir: str = opt("", "test images folder; empty: the runs', else guessed")
    name: str = opt("stack", "file name (without .csv) in --out", check=file_name)
    out: str = opt("submissions", "folder for the submission, its scores and feature importance")
    folds: int = opt(5, "folds of the stack (grouped by --group-column, stratified by the target)", check=two_or_more)
    seeds: int = opt(1, "seeds of folds and trees, averaged (test) and each scored out of fold", check=positive)
    rounds: int = opt(2000, "most boosting rounds; early stopping on each fold's held-out part by the metric",
                      check=positive)
    learning_rate: float = opt(0.05, "LightGBM's learning rate", check=positive)
    patience: int = opt(50, "rounds without a better metric before a fold stops", check=positive)
    solution: str = opt("", "CSV of true test labels to score the test predictions against (generated data)")
    overwrite: bool = opt(False, "replace an existing submission of the same name")

    @property
    def run_list(self) -> list:
        return [r.strip() for r in self.runs.split(",") if r.strip()]
