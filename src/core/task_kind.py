"""What one answer is, the task kind: the one interface every layer asks, and the registry the kinds join.

    kind = kind_of(class_map)            # the kind that read the target column (class_map.kind: the same)
    kind = settle_task(cfg, class_map)   # the same, checked against --task, said in one line, cfg.task set
    kind.read_format(schema, class_map)  # ... every question a layer has: see TaskKind's methods

Each kind lives in its own folder, src/kinds/<name>/, as one TaskKind subclass that answers every method below
(tests/test_layout.py fails on a kind that leaves one out, and on a layer that branches on a kind's name or
fields instead of asking). The folders sit above the layers that ask them, so the layers never import a kind:
`register` is the one line that adds a kind (src/kinds/__init__.py), and the registry loads that package the
first time a kind is asked for (dependency inversion: the interface here, below every layer; the kinds above).
"""
from __future__ import annotations

import abc
import dataclasses
import importlib
import sys
import re

from src.core.errors import KitError

# pauc@R: partial AUC above true-positive rate R (0 < R < 1), ISIC 2024's pAUC at R = 0.8
PAUC_PATTERN = r"pauc@0?\.\d*[1-9]\d*"
KINDS: dict = {}  # name -> TaskKind, in the order they are asked to read a target column (register's order)
TASK_ALIASES = {"regression": "number"}  # --task regression is the name people use
KINDS_PACKAGE = "src.kinds"  # registers the kit's own kinds when imported


class TaskKind(abc.ABC):
    """One kind of answer: what it is called, what may score it, and each layer's question about it.

    Subclasses set the four names below and implement every abstract method (a kind that cannot do a thing
    says so in its own words, raising a KitError). `reads_last`: asked only after every other kind declined
    (one label per image takes whatever no other kind claims).
    """

    name: str = ""         # label, tags, identity, number, segmentation: the --task value and config.json's task
    answer: str = ""       # what one answer is, in the words every line uses
    metrics: tuple = ()    # the kit's metrics that can score it (map@K: map@1, map@5 ...; pauc@R: pauc@0.8 ...)
    fallback: str = ""     # the metric when no sample submission implies one
    nouns: tuple = ("class", "classes")  # what one of its outputs is called in counts and tables
    reads_last: bool = False
    misfit_hint: str = ""  # said when one of its metrics is asked of another kind's target

    def scores_with(self, metric: str) -> bool:
        """Return True when metric (a canonical name) can score this kind of answer."""
        return metric in self.metrics or ("map@K" in self.metrics and re.fullmatch(r"map@[1-9]\d*", metric) is not None) \
            or ("pauc@R" in self.metrics and re.fullmatch(PAUC_PATTERN, metric) is not None)

    # -- data: the labels, the target column, the holdout, the report
    @abc.abstractmethod
    def read_labels(self, root, opts, schema):
        """Return (layout, frame of id/path/labels, label columns) when this kind reads the folder's training labels
        in a layout of its own (masks), else None; one label, the catch-all, reads class folders, names, a CSV."""

    @abc.abstractmethod
    def repeated_ids(self, sample) -> str:
        """Return what a sample submission listing an image on several rows means to this kind (a row per image
        and class), '' when each id must be listed once."""

    @abc.abstractmethod
    def read_target(self, train, target: str, opts, schema):
        """Return (training rows, the target's ClassMap) when the column holds this kind's answers, else None."""

    @abc.abstractmethod
    def claims(self, class_map) -> bool:
        """Return True when a class map written by an older kit (no task recorded) is this kind's."""

    @abc.abstractmethod
    def task_line(self, class_map, source: str, counts) -> str:
        """Return the one `task:` line said when a job reads the target."""

    @abc.abstractmethod
    def exclusive_classes(self, class_map) -> tuple:
        """Return the classes each image is exactly one of (class counts, weights, both sides of the holdout, a
        class never learned); () when an answer is no one class (tags, a number)."""

    @abc.abstractmethod
    def report_counts(self, comp, split) -> tuple:
        """Return (comp, split, what the counts are, whether an answer lists several) for the EDA's counts."""

    @abc.abstractmethod
    def split_settings(self, class_map) -> str:
        """Return what names this kind's split among the saved ones ('' for none beyond the data settings)."""

    @abc.abstractmethod
    def draw_folds(self, train, target: str, opts, class_map):
        """Return the fold of every row when the kind draws its split itself, else None (stratified by strata)."""

    @abc.abstractmethod
    def strata(self, train, target: str, opts, class_map, needed: int):
        """Return one stratum per row, so every side of the split sees each (classes, rarest tag, number bin)."""

    # -- models: the head, the loss, the per-epoch accuracy
    @abc.abstractmethod
    def head_spec(self, cfg, head, class_map):
        """Return the HeadSpec `head` (from the flags) made this kind's: its activation, an embedding, a scale."""

    @abc.abstractmethod
    def build_network(self, cfg, spec, size, class_map, outputs, weights: str, train_backbone: bool,
                      table_width: int = 0):
        """Return the network a stage trains at `size` (height, width): the backbone and this kind's output."""

    @abc.abstractmethod
    def epoch_metric(self, metric: str, outputs: int, positive: int):
        """Return the Keras metric logging val_<metric> every epoch (None: accuracy, which Keras logs already)."""

    @abc.abstractmethod
    def screen_head(self, cfg, class_map):
        """Return the fresh head a frozen backbone gets in screening."""

    @abc.abstractmethod
    def loss(self, cfg, reduction: str, scale):
        """Return the training loss on one-hot (or 0/1, or number) targets."""

    @abc.abstractmethod
    def screen_loss(self, class_map):
        """Return the loss of a fresh head on sparse targets (screening)."""

    @abc.abstractmethod
    def accuracy_metric(self):
        """Return the metric logged as accuracy (None: the kind has none)."""

    # -- training: checks, datasets, the holdout's files and verdict
    @abc.abstractmethod
    def check_head(self, cfg, target: str) -> None:
        """Refuse a --head this kind cannot take, naming the flag, the column and the heads that work."""

    @abc.abstractmethod
    def check_settings(self, cfg, data, heads: dict) -> None:
        """Refuse the flags this kind cannot take, naming each; print the kind's own lines about the split."""

    @abc.abstractmethod
    def check_added_images(self, cfg, target: str) -> None:
        """Refuse --extra-data, --pseudo-labels or --soft-labels when the kind cannot add such images."""

    @abc.abstractmethod
    def check_job(self, job: str, subject: str) -> None:
        """Refuse a job (tune, prune, predict) the kind cannot serve, the subject (flag and column) named."""

    @abc.abstractmethod
    def datasets(self, cfg, data, opts, fixed_batches: bool, multiple: int):
        """Return (training, validation) tf.data datasets with this kind's targets."""

    @abc.abstractmethod
    def write_holdout(self, cfg, spec, data, run, kept, accelerator) -> dict:
        """Write the holdout's answers with the kept weights; return {holdout_accuracy[, holdout_score]}."""

    @abc.abstractmethod
    def write_predictions(self, cfg, data, run, probs, heads: dict) -> float:
        """Write holdout_predictions.csv from the holdout's outputs; return its accuracy (or --metric)."""

    @abc.abstractmethod
    def holdout_score(self, cfg, data, run):
        """Return (the holdout's --metric read back from the run's files, the trivial answer's Reference)."""

    @abc.abstractmethod
    def epoch_floor(self, cfg, data):
        """Return the trivial answer's score as the per-epoch metric sees it, or None where none compares."""

    @abc.abstractmethod
    def fold_score(self, part, class_map, metric: str, positive: int) -> float:
        """Return one fold's out-of-fold score from its rows of oof_predictions.csv."""

    # -- inference: formats, answers, checks
    @abc.abstractmethod
    def default_metric(self, schema, class_map) -> tuple:
        """Return (the metric the submission format implies, whose default it is)."""

    @abc.abstractmethod
    def read_format(self, schema, class_map, override: str):
        """Return the SubmissionFormat the sample (or --submission-format) asks, checked against the classes."""

    @abc.abstractmethod
    def known_answers(self, class_map) -> set:
        """Return the answers a submission may hold beyond the written labels (an identity's new answer)."""

    @abc.abstractmethod
    def write_submission(self, cfg, runs, comp, fmt, views, validate, record: dict):
        """Write the kind's own submission and return src.submit's result, or None to take the layers' path
        (views and runs averaged as outputs, answers, fit_answers)."""

    @abc.abstractmethod
    def check_submit(self, cfg, runs) -> None:
        """Refuse the submit flags the kind's outputs cannot be averaged or fitted with, naming each."""

    @abc.abstractmethod
    def answers(self, class_map, outputs):
        """Return the outputs as they are scored and written (a number clipped to the training range)."""

    @abc.abstractmethod
    def fit_answers(self, fmt, probs, y, metric: str) -> tuple:
        """Return (the format with what is fitted on the holdout, e.g. a threshold per tag; its score row or None)."""

    @abc.abstractmethod
    def score_solution(self, frame, solution: str, schema, metric: str) -> tuple:
        """Return (accuracy, --metric) of a submission against --solution; None for what the kind has not."""

    @abc.abstractmethod
    def reference(self, metric: str, y_train, y, classes: int, positive: int):
        """Return the trivial answer (src.inference.reference.Reference) on these holdout rows."""

    @abc.abstractmethod
    def show_predictions(self, run, paths, probs, top: int) -> list:
        """Print src.predict's answers per image; return [(path, [(answer, value) ...])]."""

    # -- the autopilot and the stack
    @abc.abstractmethod
    def auto_steps(self, stack: bool) -> tuple:
        """Return the steps src.auto plans for this kind (a KitError names what it cannot plan)."""

    @abc.abstractmethod
    def check_stack(self, class_map, target: str) -> None:
        """Refuse src.stack when its second stage cannot fit this target, naming the column."""


def register(kind: TaskKind) -> TaskKind:
    """Add a kind to the registry (a kind of the same name is replaced); return it. The one line a kind adds."""
    KINDS[kind.name] = kind
    return kind


def registered() -> dict:
    """Return the registry, the kit's own kinds loaded the first time (src.kinds registers them on import)."""
    if KINDS_PACKAGE not in sys.modules:
        importlib.import_module(KINDS_PACKAGE)
    return KINDS


def reading_order() -> list:
    """Return the kinds in the order they are asked to read a target column: the catch-all last."""
    kinds = list(registered().values())
    return [k for k in kinds if not k.reads_last] + [k for k in kinds if k.reads_last]


def kind_named(name: str) -> TaskKind:
    """Return the registered kind called name (an alias such as regression read as its kind)."""
    kinds = registered()
    name = TASK_ALIASES.get(name, name)
    if name not in kinds:
        raise KitError(f"task kind {name!r}: expected one of {', '.join(kinds)}")
    return kinds[name]


def kind_scoring(metric: str) -> TaskKind:
    """Return the task kind a metric scores (the first that lists it); what a misfit metric is said to be for."""
    return next(kind for kind in registered().values() if kind.scores_with(metric))


def kind_of(class_map) -> TaskKind:
    """Return the kind that read the class map's column: its recorded task, else (a class map from an older
    kit) the first kind that claims it."""
    task = getattr(class_map, "task", "")
    if task:
        return kind_named(task)
    return next(kind for kind in reading_order() if kind.claims(class_map))


def task_flag(value: str):
    """Return what --task expects when value is not empty and not a kind, else None (a field check)."""
    if not value or value in TASK_ALIASES:
        return None
    names = registered()
    return None if value in names else f"one of {', '.join([*names, *TASK_ALIASES])}, or empty (read from the data)"


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
    print(kind.task_line(class_map, source, counts), flush=True)
    return dataclasses.replace(cfg, task=kind.name), kind
