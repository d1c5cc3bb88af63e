"""Number targets (regression: Pawpularity, bone age): read from the values, their scale, bins for the split.

    number, why = reads_as_number(train["Pawpularity"], "Pawpularity", task="", metric="", sample=schema)
    cmap = make_number_map(train["Pawpularity"], "Pawpularity")   # a ClassMap with .scale (min, max, mean, sd)

A numeric target column with many distinct values is a number, not class ids: any value with a
fraction (and 20 or more distinct values), or 30 or more distinct integers when the sample
submission writes the column as a decimal ("38.0") or when they cover at least half of their range
(Pawpularity: 92 of 1-100; not ids scattered over a wide range) and one has a single image (classes
could not be split). `--task label` reads any of them as classes. Integer grades (APTOS 0-4) stay classes unless --task regression says otherwise; a metric
for numbers (--metric rmse, or Kaggle's RMSE in kaggle_metric.json) says so too. The sample's
constant value never makes it a class.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from src.core.errors import KitError

NUMBER_TASKS = ("number", "regression")   # --task values that mean a number per image
NUMBER_METRICS = ("rmse", "mae", "r2")
MANY_FRACTIONS = 20      # distinct values with a fraction: a measurement, not labels
MANY_INTEGERS = 30       # distinct integers that may be a score (Pawpularity 1-100), when also ...
DENSE = 0.5              # ... and cover at least half the integers of their range (a score, not scattered ids)
BINS = 10                # quantile bins the split stratifies a number on


@dataclasses.dataclass(frozen=True)
class TargetScale:
    """The training target's range and spread: the network's output scale, the clip of every prediction."""

    low: float
    high: float
    mean: float
    sd: float

    def clip(self, values) -> np.ndarray:
        """Return values clipped to the training range (no prediction leaves what training ever showed)."""
        return np.clip(np.asarray(values, dtype=np.float64), self.low, self.high)

    def describe(self) -> str:
        return f"{self.low:g} to {self.high:g}, mean {self.mean:.4g}, sd {self.sd:.4g}"

    def to_json(self) -> dict:
        return {"min": self.low, "max": self.high, "mean": self.mean, "sd": self.sd}

    @classmethod
    def from_json(cls, data: dict) -> "TargetScale":
        return cls(float(data["min"]), float(data["max"]), float(data["mean"]), float(data["sd"]))


def as_numbers(values, column: str) -> np.ndarray:
    """Return the values as float64; a value that is not a number is an error naming the column and the value."""
    numbers = pd.to_numeric(pd.Series(values).astype(str).str.strip(), errors="coerce")
    if numbers.isna().any():
        bad = pd.Series(values)[numbers.isna().to_numpy()].iloc[0]
        raise KitError(f"column {column}: value {bad!r} is not a number: a number target (regression) needs "
                       "numbers in every row")
    return numbers.to_numpy(dtype=np.float64)


def scale_of(values, column: str) -> TargetScale:
    """Return the TargetScale of a column's training values (sd 1 when they are all equal)."""
    numbers = as_numbers(values, column)
    sd = float(numbers.std())
    return TargetScale(float(numbers.min()), float(numbers.max()), float(numbers.mean()), sd if sd > 0 else 1.0)


def number_bins(values, column: str, bins: int = BINS) -> np.ndarray:
    """Return one stratification key per row: the value's quantile bin ('bin 3'), so every fold sees the range."""
    numbers = pd.Series(as_numbers(values, column))
    if numbers.nunique() <= 1 or bins <= 1:
        return np.full(len(numbers), "bin 0")
    if numbers.nunique() <= bins:  # few distinct values (grades read as numbers): each value its own bin
        return np.asarray([f"value {v:g}" for v in numbers])
    # on the values, ties kept together: never an arbitrary cut through equal values
    codes = pd.qcut(numbers, q=min(bins, len(numbers)), labels=False, duplicates="drop")
    return np.asarray([f"bin {int(c)}" for c in codes])


def reads_as_number(values: pd.Series, column: str, task: str = "", metric: str = "", sample=None) -> tuple:
    """Return (True when the column is a number target, the words saying why) by the rules of the docstring.

    task: --task (number/regression forces it, label/tags refuse it); metric: the flag's or Kaggle's
    metric in the kit's name; sample: the SubmissionSchema (its first value of the column), or None.
    """
    if task in NUMBER_TASKS:
        as_numbers(values, column)
        return True, f"--task {task}"
    if task:
        return False, ""
    numbers = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    distinct = numbers.nunique()
    if numbers.isna().any() or distinct < 3:
        return False, ""
    if metric in NUMBER_METRICS:
        return True, f"the metric {metric} scores numbers"
    if (numbers % 1 != 0).any():
        return (True, f"{distinct} distinct values with fractions") if distinct >= MANY_FRACTIONS else (False, "")
    if distinct < MANY_INTEGERS:
        return False, ""
    if sample is not None and sample.sample is not None and len(sample.sample) and column in sample.sample:
        if str(sample.sample[column].iloc[0]).strip().count(".") == 1:
            return True, f"{distinct} distinct integers; {sample.path.name} writes decimals"
    if distinct / (numbers.max() - numbers.min() + 1) >= DENSE and numbers.value_counts().min() < 2:
        return True, f"{distinct} distinct integers over {numbers.min():g}-{numbers.max():g}, some with one image"
    return False, ""  # few images each of many ids scattered over a wide range (CompCars' model_id): classes
