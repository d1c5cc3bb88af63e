"""What one answer is, the task kind: read once from the data, said in one line, recorded in the run's config.

    kind = kind_of(class_map)            # tags when the labels are space-separated tags, else label
    kind = settle_task(cfg, class_map)   # the same, checked against --task, said, and cfg.task set
    kind.metrics, kind.activation        # what may score it, what the network's output layer is

Every later step asks the kind instead of branching on its own: the metrics that can score it and the
one used with no sample submission (src.core.metric_choice), the head's output and loss (src.models),
how views and runs are averaged and what the submission holds (src.inference). A new kind (a number,
an identity) is a new entry in KINDS and the places that read its fields, not a flag in each layer.
"""
from __future__ import annotations

import dataclasses
import re

from src.core.errors import KitError


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One kind of answer and what follows from it."""

    name: str          # label, tags
    answer: str        # what one answer is, in the words every line uses
    metrics: tuple     # the kit's metrics that can score it (map@K: map@1, map@5 ...)
    fallback: str      # the metric when no sample submission implies one
    activation: str    # the network's output: softmax (one distribution) or sigmoid (a yes/no per output)

    @property
    def independent_outputs(self) -> bool:
        """Return True when each output is its own yes/no (binary losses, per-output accuracy)."""
        return self.activation == "sigmoid"

    def scores_with(self, metric: str) -> bool:
        """Return True when metric (a canonical name) can score this kind of answer."""
        return metric in self.metrics or ("map@K" in self.metrics and re.fullmatch(r"map@[1-9]\d*", metric) is not None)


KINDS = {
    "label": TaskKind("label", "one label per image", ("accuracy", "f1_macro", "log_loss", "auc", "qwk", "map@K"),
                      "accuracy", "softmax"),
    "tags": TaskKind("tags", "tags (multi-label)", ("f2_samples",), "f2_samples", "sigmoid"),
    # A number per image (regression: Pawpularity, bone age): one output, linear on the standardised target,
    # or "sigmoid-scaled" (--loss bce-scaled: a sigmoid and cross-entropy on the target scaled to 0-1).
    "number": TaskKind("number", "a number per image (regression)", ("rmse", "mae", "r2"), "rmse", "linear"),
}
TASK_ALIASES = {"regression": "number"}  # --task regression is the name people use
LABEL = KINDS["label"]


def kind_of(class_map) -> TaskKind:
    """Return the kind the labels show: tags when the target column holds space-separated tags, else label."""
    if getattr(class_map, "scale", None) is not None:  # src.data.numbers read the column as numbers
        return KINDS["number"]
    return KINDS["tags" if getattr(class_map, "multi_label", False) else "label"]


def task_flag(value: str):
    """Return what --task expects when value is not empty and not a kind, else None (a field check)."""
    return None if not value or value in KINDS or value in TASK_ALIASES else \
        f"one of {', '.join([*KINDS, *TASK_ALIASES])}, or empty (read from the data)"


def settle_task(cfg, class_map, saved: str = "") -> tuple:
    """Return (cfg with .task set, the TaskKind) after printing the kind's one line.

    The kind is read from the data (the target column's values); --task, or a resumed run's config
    (saved), must agree with it: a number cannot be read as tags, nor tags as one label.
    """
    kind = kind_of(class_map)
    asked = TASK_ALIASES.get(cfg.task or saved, cfg.task or saved)
    if asked and asked != kind.name:
        raise KitError(f"--task {asked}: column {class_map.column} holds {kind.answer}, read from its values; "
                       f"expected --task {kind.name} or none")
    classes = f"{len(class_map.values)} {'tags' if kind.name == 'tags' else 'classes'}" if kind.name != "number" \
        else class_map.scale.describe()
    source = "--task" if cfg.task else "the run's config" if saved else "read from the labels"
    print(f"task: {kind.name}, {kind.answer} in column {class_map.column}, {classes} ({source})", flush=True)
    return dataclasses.replace(cfg, task=kind.name), kind
