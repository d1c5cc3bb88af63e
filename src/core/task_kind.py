"""What one answer is, the task kind: read once from the data, said in one line, recorded in the run's config.

    kind = kind_of(class_map)            # tags when the labels are space-separated tags, else label
    kind = class_map.kind                # the same, asked of a ClassMap (src.data.class_maps)
    kind = settle_task(cfg, class_map)   # the same, checked against --task, said, and cfg.task set
    kind.metrics, kind.activation        # what may score it, what the network's output layer is

Every later step asks the kind instead of branching on its own: the metrics that can score it and the
one used with no sample submission (src.core.metric_choice), the head's output and loss (src.models),
how views and runs are averaged and what the submission holds (src.inference), how the holdout is drawn
(src.data.splits). A new kind (a number, an identity) is a new entry in KINDS and the places that read its
fields, not a flag in each layer: no module but this one and the class map's own tells a number by
`class_map.scale is not None`, an identity by `class_map.new_label` or tags by `class_map.multi_label`
(tests/test_layout.py).
"""
from __future__ import annotations

import dataclasses
import re

from src.core.errors import KitError

# pauc@R: partial AUC above true-positive rate R (0 < R < 1), ISIC 2024's pAUC at R = 0.8
PAUC_PATTERN = r"pauc@0?\.\d*[1-9]\d*"


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One kind of answer and what follows from it."""

    name: str          # label, tags, identity, number
    answer: str        # what one answer is, in the words every line uses
    metrics: tuple     # the kit's metrics that can score it (map@K: map@1, map@5 ...)
    fallback: str      # the metric when no sample submission implies one
    activation: str    # the network's output: softmax (one distribution) or sigmoid (a yes/no per output)
    # what prediction reads: class probabilities, an embedding (identity), or a number, which views and runs
    # average as numbers (no geometric mean, no rank blend) and the holdout, submission and src.predict clip to
    # the training range
    output: str = "probabilities"
    # how the holdout is drawn (src.data.splits): stratified by label, by each image's rarest tag, by quantile
    # bin of the number, or identities held out whole
    split: str = "label"
    extra_labels: bool = True  # --extra-data, --pseudo-labels, --soft-labels can add to its training
    # each image is one of the classes: class counts, per-class weights, every class on both sides of the holdout,
    # a class the run never learned (not tags, several per image, nor a number)
    one_class: bool = True

    @property
    def independent_outputs(self) -> bool:
        """Return True when each output is its own yes/no (binary losses, per-output accuracy)."""
        return self.activation == "sigmoid"

    def scores_with(self, metric: str) -> bool:
        """Return True when metric (a canonical name) can score this kind of answer."""
        return metric in self.metrics or ("map@K" in self.metrics and re.fullmatch(r"map@[1-9]\d*", metric) is not None) \
            or ("pauc@R" in self.metrics and re.fullmatch(PAUC_PATTERN, metric) is not None)


KINDS = {
    "label": TaskKind("label", "one label per image", ("accuracy", "f1_macro", "log_loss", "auc", "qwk", "map@K",
                                                  "pauc@R"),
                      "accuracy", "softmax"),
    "tags": TaskKind("tags", "tags (multi-label)", ("f2_samples",), "f2_samples", "sigmoid", split="rarest tag",
                     extra_labels=False, one_class=False),
    # many identities with few images each, and an answer for one never seen (new_whale): nearest neighbours
    # of an embedding, the new answer inserted at a similarity threshold (src.inference.identities)
    "identity": TaskKind("identity", "one identity per image, or a new one", ("map@K",), "map@5", "softmax",
                         "embedding", split="identities whole"),
    # A number per image (regression: Pawpularity, bone age): one output, linear on the standardised target,
    # or "sigmoid-scaled" (--loss bce-scaled: a sigmoid and cross-entropy on the target scaled to 0-1).
    "number": TaskKind("number", "a number per image (regression)", ("rmse", "mae", "r2"), "rmse", "linear",
                       "number", split="quantile bins", extra_labels=False, one_class=False),
}
TASK_ALIASES = {"regression": "number"}  # --task regression is the name people use
LABEL = KINDS["label"]


def kind_scoring(metric: str) -> TaskKind:
    """Return the task kind a metric scores (the first that lists it); what a misfit metric is said to be for."""
    return next(kind for kind in KINDS.values() if kind.scores_with(metric))


def kind_of(class_map) -> TaskKind:
    """Return the kind the labels show: a number when src.data.numbers read the column as numbers (a scale),
    identity when an answer for an unseen identity was found (class_map.new_label), tags when the target
    column holds space-separated tags, else label."""
    if getattr(class_map, "scale", None) is not None:
        return KINDS["number"]
    if getattr(class_map, "new_label", ""):
        return KINDS["identity"]
    return KINDS["tags" if getattr(class_map, "multi_label", False) else "label"]


def task_flag(value: str):
    """Return what --task expects when value is not empty and not a kind, else None (a field check)."""
    return None if not value or value in KINDS or value in TASK_ALIASES else \
        f"one of {', '.join([*KINDS, *TASK_ALIASES])}, or empty (read from the data)"


def settle_task(cfg, class_map, saved: str = "", counts=None) -> tuple:
    """Return (cfg with .task set, the TaskKind) after printing the kind's one line.

    The kind is read from the data (the target column's values); --task, or a resumed run's config
    (saved), must agree with it: a number cannot be read as tags, nor tags as one label.
    counts: images per class (a pandas Series), for the identity line's single-image count.
    """
    kind = kind_of(class_map)
    asked = TASK_ALIASES.get(cfg.task or saved, cfg.task or saved)
    if asked and asked != kind.name:
        hint = "; an identity task needs its new answer: --new-label NAME (new_whale ...)" if asked == "identity" else ""
        raise KitError(f"--task {asked}: column {class_map.column} holds {kind.answer}, read from its values; "
                       f"expected --task {kind.name} or none{hint}")
    source = "--task" if cfg.task else "the run's config" if saved else "read from the labels"
    if kind.name == "identity":
        single = "" if counts is None else f" ({int((counts == 1).sum())} with one image)"
        print(f"task: identity, {len(class_map.values)} identities in column {class_map.column}{single}, new answer "
              f"{class_map.new_label!r} ({getattr(class_map, 'new_from', '') or source})", flush=True)
        return dataclasses.replace(cfg, task=kind.name), kind
    classes = f"{len(class_map.values)} {'tags' if kind.name == 'tags' else 'classes'}" if kind.name != "number" \
        else class_map.scale.describe()
    note = getattr(class_map, "new_from", "")  # a label task's: why the sample's unknown ids are no new answer
    print(f"task: {kind.name}, {kind.answer} in column {class_map.column}, {classes} "
          f"({source}{'; ' + note if note else ''})", flush=True)
    return dataclasses.replace(cfg, task=kind.name), kind
