"""Number targets (regression: Pawpularity, bone age): read from the values, their scale, bins for the split.

    number, why = reads_as_number(train["Pawpularity"], "Pawpularity", task="", metric="", sample=schema)
    cmap = make_number_map(train["Pawpularity"], "Pawpularity")   # a ClassMap with .scale (min, max, mean, sd)

A numeric target column with many distinct values is a number, not class ids: any value with a
fraction (and 20 or more distinct values), or 30 or more distinct integers when the sample
submission writes the column as a decimal ("38.0") or when they cover at least half of their range
(Pawpularity: 92 of 1-100; not ids scattered over a wide range) and one has a single image (classes
could not be split). `--task label` reads any of them as classes. Integer grades (APTOS 0-4) stay classes unless --task regression says otherwise; a metric
for numbers (--metric rmse, or Kaggle's RMSE in kaggle_metric.json) says so too, even of two values. The sample's
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
FLOAT32_SHARE = 1e-3     # float32's step at the target's size above this share of its sd: the spread is lost
MISSING_WORDS = ("nan", "-nan", "na", "n/a", "null", "none", "inf", "-inf", "+inf", "infinity", "-infinity")


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
    """Return the values as float64; a value that is not a finite number is an error naming the column, the value
    and its row (inf would train to a NaN loss, nan to nothing)."""
    numbers = pd.to_numeric(pd.Series(values).astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.argmax(bad))
        raise KitError(f"column {column}: value {pd.Series(values).iloc[row]!r} (row {row + 1} of its values) is not a "
                       "finite number: a number target (regression) needs a finite number in every row")
    return numbers


def check_number_cells(values: pd.Series, column: str, path) -> None:
    """Raise naming the cell and its row of the file when a column of numbers holds nan, inf or an empty-number word.

    Why: read as text, one 'nan' makes a number column classes of one image each, and one 'inf' trains to a NaN
    loss; neither is a label. Columns of words ('new_whale', 'NA' among words) are left alone.
    """
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if not bad.any() or bad.all() or not (text[bad].str.lower().isin(MISSING_WORDS) | np.isinf(numbers[bad])).all():
        return
    row = int(np.argmax(bad))
    raise KitError(f"{path}: column {column!r}, row {row + 2} of the file: cell {text.iloc[row]!r} is not a finite "
                   f"number, in a column of numbers ({int(bad.sum())} such cell(s)): fill or drop those rows")


def scale_of(values, column: str) -> TargetScale:
    """Return the TargetScale of a column's training values; refuse values that do not vary, or whose spread
    float32 (what the network computes in) cannot hold: a network would learn a constant."""
    numbers = as_numbers(values, column)
    sd = float(numbers.std())
    if sd == 0:
        raise KitError(f"column {column}: every training value is {numbers[0]:g} (sd 0): a number target "
                       "(regression) needs values that differ; is it the target column? (--label-column names it)")
    big = float(np.abs(numbers).max())
    if float(np.spacing(np.float32(big))) > sd * FLOAT32_SHARE:
        raise KitError(f"column {column}: values near {big:.6g} with sd {sd:.4g}: float32, which the network computes "
                       f"in, keeps about 7 digits, so their spread is lost (steps of {float(np.spacing(np.float32(big))):g}); "
                       f"subtract a constant from the column (e.g. {numbers.min():.0f}) and add it back to the submission")
    return TargetScale(float(numbers.min()), float(numbers.max()), float(numbers.mean()), sd)


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
    if numbers.isna().any() or distinct < 2:
        return False, ""
    if metric in NUMBER_METRICS:  # two values too (0/1 scored by rmse): the metric says what an answer is
        return True, f"the metric {metric} scores numbers"
    if distinct < 3:
        return False, ""
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
