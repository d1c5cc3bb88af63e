"""What a submission's target column(s) must hold, read from the sample submission: its format.

    fmt = detect_format(schema, class_map)          # or --submission-format NAME
    frame = fill_submission(schema, probs, class_map, fmt)
    check_submission(frame, schema, class_map, fmt)

Formats (the public competitions they come from):
  label                one class label per row (sf-dl-car-classification: Id,Category)
  probability          binary target, the probability of the positive class (Aerial Cactus
                       Identification id,has_cactus; Histopathologic Cancer Detection id,label; ROC AUC)
  class-probabilities  one probability column per class, rows summing to 1 (Plant Pathology 2020)
  top-k                k space-separated labels, best first (Humpback Whale Identification, MAP@5)
  multi-label          the tags whose probability reaches that tag's threshold, space-separated
                       (Planet: Understanding the Amazon from Space, mean F2)
  number               a number per row, clipped to the training range (PetFinder Pawpularity, RMSE)
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.metric_choice import is_ranking
from src.core.task_kind import kind_of

FORMATS = ("label", "probability", "class-probabilities", "top-k", "multi-label", "number")
DEFAULT_METRIC = {"label": "accuracy", "probability": "auc", "class-probabilities": "log_loss", "top-k": "map@k",
                  "multi-label": "f2_samples", "number": "rmse"}


@dataclasses.dataclass(frozen=True)
class SubmissionFormat:
    """A format and what it needs: the target columns in the sample's order, k, the positive class."""

    name: str
    columns: tuple          # the sample's columns this format fills
    k: int = 1
    positive: object = None  # probability: the class whose probability is written
    thresholds: tuple = ()   # multi-label: one per tag, fitted on the holdout (0.5 each until then)
    why: str = ""            # why this format: the flag, the sample's values, or the metric

    def describe(self) -> str:
        """Return what the target column(s) hold and why (the line every submission prints)."""
        return f"{self.what()} ({self.why})" if self.why else self.what()

    def what(self) -> str:
        if self.name == "probability":
            return f"probability of class {self.positive!r} in column {self.columns[0]}"
        if self.name == "top-k":
            return f"top-{self.k} labels, space-separated, in column {self.columns[0]}"
        if self.name == "multi-label":
            return f"space-separated tags in column {self.columns[0]}, a threshold per tag"
        if self.name == "class-probabilities":
            return f"one probability column per class ({len(self.columns)} columns)"
        if self.name == "number":
            return f"a number per row in column {self.columns[0]}, clipped to the training range"
        return f"one label per row in column {self.columns[0]}"

    @property
    def metric(self) -> str:
        return DEFAULT_METRIC[self.name].replace("@k", f"@{self.k}")


def implied_metric(schema, class_map) -> str:
    """Return the metric a run's submission format implies (what a K-fold run's cv.csv is scored with).

    As cross-validation picks it: the format's metric when the sample submission has rows; without one,
    f2_samples for tags and accuracy for labels.
    """
    return default_metric(schema, class_map)[0]


def is_fraction(values: pd.Series) -> bool:
    """Return True when every value is a number in [0, 1]."""
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(len(values)) and numbers.notna().all() and bool(((numbers >= 0) & (numbers <= 1)).all())


def detect_format(schema, class_map, override: str = "", metric: str = "") -> SubmissionFormat:
    """Return the format the sample submission asks for (or `override`), checked against the classes.

    The metric decides where the sample's values cannot: auc and log_loss score probabilities, so a
    binary target whose sample holds 0/1 labels (ISIC 2020's `image_name,target` all 0) gets the
    positive class's probability, not hard labels. The format's `why` says which rule decided.
    """
    fmt = read_format(schema, class_map, override)
    if override or fmt.name != "label" or not (metric == "log_loss" or (metric and is_ranking(metric))):
        why = f"--submission-format {override}" if override else "multi-label tags" if fmt.name == "multi-label" else \
            "a number target" if fmt.name == "number" else f"the sample's values in {schema.path.name}"
        return dataclasses.replace(fmt, why=why)
    if len(class_map.values) != 2:  # one column of labels cannot hold a distribution over more classes
        return dataclasses.replace(fmt, why=f"the sample's values; {metric} would want probabilities, but one "
                                            f"column holds one of {len(class_map.values)} classes")
    return SubmissionFormat("probability", fmt.columns, positive=positive_class(class_map),
                            why=f"the metric {metric} scores probabilities, though the sample in "
                                f"{schema.path.name} holds labels")


def default_metric(schema, class_map) -> tuple[str, str]:
    """Return (the metric the submission format implies, whose default it is): the kit's metric of last resort,
    the task kind's answer (src.kinds: a label's sample format, tags' f2_samples, a number's rmse)."""
    return kind_of(class_map).default_metric(schema, class_map)


def format_metric(schema, class_map) -> tuple[str, str]:
    """Return (metric, whose) for a kind whose sample's values decide its format: the format's metric; no sample
    submission: the kind's own fallback."""
    if schema is None or schema.sample is None or not len(schema.sample):
        return kind_of(class_map).fallback, "no sample submission: the kit's"
    fmt = read_format(schema, class_map)
    return fmt.metric, f"the {fmt.name} format's"


def positive_index(class_map) -> int:
    """Return the index of the class whose probability auc scores (1 / True / yes, else the second)."""
    return class_map.values.index(positive_class(class_map)) if len(class_map.values) == 2 else 1


def read_format(schema, class_map, override: str = "") -> SubmissionFormat:
    """Return the format the sample's values (or `override`) show, checked against the classes: the task kind's
    answer (src.kinds)."""
    return kind_of(class_map).read_format(schema, class_map, override)


def class_format(schema, class_map, override: str = "") -> SubmissionFormat:
    """Return the format of classes the sample's values (or `override`) show: label, probability,
    class-probabilities or top-k; a number or tags format asked of classes is refused."""
    sample = schema.sample
    others = [c for c in sample.columns if c != schema.id_column]
    classes = [str(v) for v in class_map.values]
    per_class = [c for c in others if str(c) in classes]
    if override == "number":
        raise KitError(f"--submission-format number: column {class_map.column} holds classes, not a number per "
                       "image (--task regression reads integers as numbers)")
    if override == "multi-label":
        raise KitError(f"--submission-format multi-label: column {class_map.column} holds one label per image, "
                       "not space-separated tags")
    name = override or guess_format(sample, schema.target_column, per_class, classes)
    if name == "class-probabilities":
        missing = sorted(set(classes) - set(map(str, others)))
        if missing:
            raise KitError(f"{schema.path}: class-probabilities needs one column per class; no column for "
                           f"{', '.join(missing[:5])}")
        return SubmissionFormat(name, tuple(c for c in others if str(c) in classes))
    if name == "probability":
        if len(classes) != 2:
            raise KitError(f"{schema.path}: a probability column needs a binary target; {class_map.column} has "
                           f"{len(classes)} classes (use --submission-format label or class-probabilities)")
        return SubmissionFormat(name, (schema.target_column,), positive=positive_class(class_map))
    if name == "top-k":
        k = int(sample[schema.target_column].astype(str).str.split().str.len().max()) or 1
        if k > len(classes):
            raise KitError(f"{schema.path}: top-{k} needs at least {k} classes, {class_map.column} has {len(classes)}")
        return SubmissionFormat(name, (schema.target_column,), k=k)
    return SubmissionFormat("label", (schema.target_column,))


def guess_format(sample: pd.DataFrame, target: str, per_class: list, classes: list) -> str:
    """Return the format a sample's values show: per-class columns, fractions, several known classes, or labels.

    A value that is one class name is a label whatever it contains; top-k needs every value to hold two or
    more known classes (tokens the training labels never name, as after --min-class-count, are allowed).
    """
    if len(per_class) >= 2 and all(is_fraction(sample[c]) for c in per_class):
        return "class-probabilities"
    values = sample[target].astype(str)
    if len(classes) == 2 and is_fraction(values) and (pd.to_numeric(values) % 1 != 0).any():
        return "probability"
    if values.isin(classes).all():  # "Sugar beet", "Audi A4 Sedan 2012": class names, spaces or not
        return "label"
    if values.map(lambda v: len(set(v.split()) & set(classes)) >= 2).all():
        return "top-k"
    return "label"


def positive_class(class_map):
    """Return the class a probability column means: 1 / True / yes when present, else the second in order."""
    for value in class_map.values:
        if str(value).lower() in ("1", "true", "yes", "positive"):
            return value
    return class_map.values[1]


def fill_submission(schema, probs: np.ndarray, class_map, fmt: SubmissionFormat) -> pd.DataFrame:
    """Return the sample submission with its target column(s) filled from averaged probabilities."""
    frame = schema.sample.copy()
    labels = written_labels(schema, class_map, fmt)
    if labels != list(class_map.values):
        shown = ", ".join(f"{v} as {w}" for v, w in list(zip(class_map.values, labels))[:5])
        print(f"labels: written as integers, as in {schema.path.name}'s {fmt.columns[0]}: {shown}"
              f"{' ...' if len(labels) > 5 else ''}")
    if fmt.name == "label":
        frame[fmt.columns[0]] = [labels[i] for i in probs.argmax(axis=1)]
    elif fmt.name == "probability":
        frame[fmt.columns[0]] = probs[:, class_map.values.index(fmt.positive)]
    elif fmt.name == "class-probabilities":
        index = {str(v): i for i, v in enumerate(class_map.values)}
        for column in fmt.columns:
            frame[column] = probs[:, index[str(column)]]
    elif fmt.name == "multi-label":
        frame[fmt.columns[0]] = class_map.decode_tags(choose_tags(probs, fmt.thresholds))
    elif fmt.name == "number":  # floats in the sample's column, never outside what training showed
        frame[fmt.columns[0]] = class_map.scale.clip(np.asarray(probs).reshape(-1))
    else:
        best = np.argsort(-probs, axis=1, kind="stable")[:, : fmt.k]
        frame[fmt.columns[0]] = [" ".join(str(labels[i]) for i in row) for row in best]
    return frame


def written_labels(schema, class_map, fmt: SubmissionFormat) -> list:
    """Return what the submission writes for each class: its value, or its integer when the sample writes integers.

    Class folders 00, 01, 02 beside a sample whose labels are plain integers (0, not 00): the submission
    writes 2, as the sample does, not '02'. A sample that writes any label zero-padded keeps the names.
    """
    values = list(class_map.values)
    texts = [str(v) for v in values]
    if fmt.name not in ("label", "top-k") or schema is None or schema.sample is None or \
            not all(re.fullmatch(r"[0-9]+", t) for t in texts) or not any(re.fullmatch(r"0[0-9]+", t) for t in texts):
        return values
    written = schema.sample[fmt.columns[0]].astype(str).str.split().explode().dropna()
    numbers = [int(t) for t in texts]
    if written.empty or not written.str.fullmatch(r"0|[1-9][0-9]*").all() or len(set(numbers)) != len(numbers):
        return values
    return numbers


def choose_tags(probs: np.ndarray, thresholds=()) -> np.ndarray:
    """Return the 0/1 tags per row: each tag at or above its threshold (0.5 when none), the likeliest if none is.

    Every image of the multi-label competitions carries at least one tag: an empty row scores 0.
    """
    chosen = probs >= (np.asarray(thresholds) if len(thresholds) else 0.5)
    chosen[np.arange(len(probs)), probs.argmax(axis=1)] |= ~chosen.any(axis=1)
    return chosen


def check_submission(frame: pd.DataFrame, schema, class_map, fmt: SubmissionFormat) -> None:
    """Raise naming the first row whose value the format does not allow."""
    where = "submission"
    for column in fmt.columns:
        empty = frame[column].isna()
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            raise KitError(f"{where}: row {row + 2} (id {frame[schema.id_column].iloc[row]!r}) has no {column}")
    if fmt.name in ("probability", "class-probabilities"):
        values = frame[list(fmt.columns)].astype(float).to_numpy()
        bad = np.flatnonzero(((values < 0) | (values > 1)).any(axis=1))
        if len(bad):
            raise KitError(f"{where}: row {bad[0] + 2} holds a probability outside [0, 1]")
        if fmt.name == "class-probabilities":
            sums = values.sum(axis=1)
            off = np.flatnonzero(np.abs(sums - 1) > 1e-3)
            if len(off):
                raise KitError(f"{where}: row {off[0] + 2}'s probabilities sum to {sums[off[0]]:.4f}, not 1")
        return
    if fmt.name == "number":
        values = pd.to_numeric(frame[fmt.columns[0]], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise KitError(f"{where}: row {bad[0] + 2} holds {frame[fmt.columns[0]].iloc[bad[0]]!r}: expected a number")
        return
    # and what the kind answers beyond its classes (an identity's answer for one never seen)
    known = {str(v) for v in written_labels(schema, class_map, fmt)} | kind_of(class_map).known_answers(class_map)
    for row, value in enumerate(frame[fmt.columns[0]].astype(str)):
        tokens = value.split() if fmt.name in ("top-k", "multi-label") else [value]
        if fmt.name == "top-k" and (len(tokens) != fmt.k or len(set(tokens)) != fmt.k):
            raise KitError(f"{where}: row {row + 2} holds {value!r}: expected {fmt.k} distinct labels")
        if fmt.name == "multi-label" and (not tokens or len(set(tokens)) != len(tokens)):
            raise KitError(f"{where}: row {row + 2} holds {value!r}: expected one or more distinct tags")
        unknown = [t for t in tokens if t not in known]
        if unknown:
            raise KitError(f"{where}: row {row + 2} (id {frame[schema.id_column].iloc[row]!r}) has label "
                           f"{unknown[0]!r}, not one of the competition's classes")

