"""The trivial answer's score beside every result: a run, a submission, a stack or an auto run no better than
the answer that looks at no image is said loudly.

    ref = reference_answer("log_loss", y_train, y_val, classes=2)      # Reference(score, what)
    line, no_better = compare(run_score, ref, "log_loss")              # the line to print, and the verdict

Why: a network that learned nothing still prints a holdout score (log loss 0.693 on two balanced classes,
accuracy at the majority rate, QWK 0); without the reference beside it a user reads that number as a result.
The trivial answer is, per task kind: the training classes' prior for every image (one label), each tag's
training rate (tags, thresholds fitted as submit fits them), the training mean (a number; the median for mae),
the most frequent training identities with the new answer where it scores best (identities).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from src.core.metric_choice import higher_is_better, is_better
from src.inference.metrics import fit_thresholds, score
from src.runs.auto_state import candidate_score


@dataclasses.dataclass(frozen=True)
class Reference:
    """The trivial answer's score on a holdout and what that answer is, in words."""

    score: float
    what: str

    def as_record(self) -> dict:
        return {"reference_score": self.score, "reference": self.what}


def prior_answer(y_train, n: int, classes: int) -> np.ndarray:
    """Return n rows of the training classes' frequencies (one label) or each tag's rate (0/1 rows)."""
    y_train = np.asarray(y_train)
    if y_train.ndim == 2:  # tags: each tag's share of the training images
        prior = y_train.astype(float).mean(axis=0)
    else:
        prior = np.bincount(y_train.astype(int), minlength=classes).astype(float) / max(len(y_train), 1)
    return np.tile(prior, (n, 1))


def number_reference(y_train, y_val, metric: str) -> Reference:
    """Return the score of the training mean (the median for mae, which it minimises) on every holdout image."""
    train = np.asarray(y_train, dtype=np.float64).reshape(-1)
    value, what = (np.median(train), "the training median") if metric == "mae" else (train.mean(), "the training mean")
    guess = np.full(len(np.asarray(y_val).reshape(-1)), value)
    return Reference(score(guess, y_val, metric), f"{what} ({value:.4g}) for every image")


def reference_answer(metric: str, y_train, y_val, classes: int, positive_index: int = 1,
                     number: bool = False) -> Reference:
    """Return the trivial answer's Reference on the holdout (y_val) for a label, tags or number target."""
    if number:
        return number_reference(y_train, y_val, metric)
    probs = prior_answer(y_train, len(y_val), classes)
    if metric == "f2_samples":
        return Reference(score(probs, y_val, metric, thresholds=fit_thresholds(probs, y_val)),
                         "each tag's training rate for every image, thresholds fitted")
    return Reference(score(probs, y_val, metric, positive_index), "the training classes' prior for every image")


def identity_reference(train_codes, truth, classes: int, k: int) -> Reference:
    """Return MAP@k of the k most frequent training identities for every image, the new answer (code `classes`)
    inserted where it scores best on the holdout (or left out)."""
    counts = np.bincount(np.asarray(train_codes, int), minlength=classes)
    frequent = list(np.argsort(-counts, kind="stable")[:k])
    truth = np.asarray(truth, int)
    best, where = -1.0, "without the new answer"
    for position in [None, *range(k)]:
        ranked = frequent[:k] if position is None else (frequent[:position] + [classes] + frequent[position:])[:k]
        hits = np.asarray(ranked)[None, :] == truth[:, None]  # fewer than k identities: fewer answers
        value = float((hits / np.arange(1, len(ranked) + 1)).sum(axis=1).mean()) if len(truth) else float("nan")
        if value > best:
            best, where = value, "without the new answer" if position is None else f"the new answer at rank {position + 1}"
    return Reference(best, f"the {k} most frequent training identities for every image, {where}")


def no_better(value, reference: Reference | None, metric: str) -> bool:
    """Return True when value does not beat the reference's score in the metric's direction (NaN: no verdict)."""
    if reference is None or value is None or np.isnan(float(value)) or np.isnan(reference.score):
        return False
    return not is_better(value, None, reference.score, None, metric)


def compare(value, reference: Reference | None, metric: str, subject: str = "the run") -> tuple[str, bool]:
    """Return (the line saying value against the trivial answer's score, True when value is no better).

    The no-better line is loud on purpose (capitals, what to try): it is the line a user must not miss.
    """
    if reference is None or value is None or np.isnan(float(value)) or np.isnan(reference.score):
        return "", False
    direction = "higher" if higher_is_better(metric) else "lower"
    said = f"reference: {reference.what} scores {metric} {reference.score:.4f}; {subject} {float(value):.4f}"
    if no_better(value, reference, metric):
        return (f"WARNING: NO BETTER THAN THE TRIVIAL ANSWER: {said} ({direction} is better). Nothing was learned "
                "that the holdout can see: more epochs, other rates (--stage1-lr), pretrained --weights or a "
                "larger image size may help"), True
    return f"{said} ({direction} is better)", False


def training_answers(group, comp) -> np.ndarray:
    """Return the encoded training targets the trivial answer is drawn from: the run's training side (a K-fold
    run: every training image, whose out-of-fold holdout they also are; the reference is then a little kind)."""
    member = group.members[0]
    frame = comp.train
    if not group.is_cv:
        ids = set(member.split.loc[member.split["split"] == "train", "id"].astype(str))
        frame = frame[frame["id"].astype(str).isin(ids)]
    return group.class_map.encode(frame[group.target])


def judge_submission(rows: list, group, comp, y, metric: str, positive: int) -> dict:
    """Return the submission's holdout score (its holdout table rows' kept score, candidate_score) beside the
    trivial answer's (reference_answer) as NAME.json records it, with the line to print; {} when there is no
    holdout to score on (full-fit runs)."""
    value = candidate_score(rows)
    if value is None or not len(y) or np.isnan(float(value)):
        return {}
    class_map = group.class_map
    reference = class_map.kind.reference(metric, training_answers(group, comp), y, len(class_map.values), positive)
    line, worse = compare(value, reference, metric, "the submission")
    return {"holdout_score": float(value), **reference.as_record(), "no_better": worse, "line": line}
