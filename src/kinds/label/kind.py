"""One label per image: the kind that reads whatever no other kind claims (classes, grades, a binary target).

    kind = LabelKind()     # registered in src.kinds; every layer asks it through kind_of(class_map)

Its answers are the layers' class paths: a softmax over the classes, categorical losses, the sample's label,
probability, class-probabilities or top-k format, the classes' prior as the trivial answer.
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.core.task_kind import TaskKind
from src.data.class_maps import make_class_map
from src.data.competition import check_learnable, drop_sparse_classes, read_label_files
from src.kinds.identity.reading import find_new_label
from src.data.splits import label_strata
from src.inference.checks import score_against
from src.inference.formats import class_format, format_metric
from src.inference.image_predictions import show_classes
from src.inference.reference import reference_answer
from src.inference.references import check_full_fits
from src.models.classifier import HeadSpec, classifier_network
from src.models.epoch_metrics import epoch_metric
from src.models.number_head import check_class_loss
from src.models.recipe import class_loss
from src.training.cross_validation import class_fold_score
from src.training.holdout import class_holdout_score, prior_floor, write_class_holdout
from src.training.stages import class_datasets, write_holdout

ALL_STEPS = ("screen", "train", "submit", "stack")  # stack: LightGBM over out-of-fold predictions and the table


class LabelKind(TaskKind):
    """One label per image (the catch-all reader); tags and identities build on it where they answer alike."""

    name = "label"
    answer = "one label per image"
    metrics = ("accuracy", "f1_macro", "log_loss", "auc", "qwk", "map@K", "pauc@R")
    fallback = "accuracy"
    reads_last = True
    activation = "softmax"  # the network's output: one distribution over the classes
    held = "classes"        # what a refused flag says the column holds

    # -- data
    def read_labels(self, root, opts, schema):
        return read_label_files(root, opts, schema)  # the catch-all: class folders, names in files, a labels CSV

    def repeated_ids(self, sample) -> str:
        return ""  # one answer per image: each id once

    def read_target(self, train, target: str, opts, schema):
        _, new_from = find_new_label(schema, train[target], getattr(opts, "new_label", ""))  # why no identity
        train = drop_sparse_classes(train, target, opts.min_class_count)
        check_learnable(train, target, opts.min_class_count)
        cmap = make_class_map(train[target], target)
        return train, dataclasses.replace(cmap, new_from=new_from, task=self.name)

    def claims(self, class_map) -> bool:
        return True

    def task_line(self, class_map, source: str, counts) -> str:
        note = getattr(class_map, "new_from", "")  # why the sample's unknown ids are no new answer
        return (f"task: {self.name}, {self.answer} in column {class_map.column}, {len(class_map.values)} "
                f"{self.nouns[1]} ({source}{'; ' + note if note else ''})")

    def exclusive_classes(self, class_map) -> tuple:
        return tuple(class_map.values)

    def report_counts(self, comp, split) -> tuple:
        return comp, split, comp.target, False

    def split_settings(self, class_map) -> str:
        return ""

    def draw_folds(self, train, target: str, opts, class_map):
        return None  # stratified folds, by the strata below

    def strata(self, train, target: str, opts, class_map, needed: int):
        return label_strata(train, target, needed)

    # -- models
    def head_spec(self, cfg, head, class_map):
        refuse_margin_head(cfg, self.answer)
        return dataclasses.replace(head, activation=self.activation)

    def build_network(self, cfg, spec, size, class_map, outputs, weights: str, train_backbone: bool,
                      table_width: int = 0):
        return classifier_network(cfg, spec, size, class_map, outputs, weights, train_backbone, table_width)

    def epoch_metric(self, metric: str, outputs: int, positive: int):
        return epoch_metric(metric, outputs, positive)

    def screen_head(self, cfg, class_map):
        return HeadSpec(dropout=cfg.dropout, activation=self.activation)

    def loss(self, cfg, reduction: str, scale):
        check_class_loss(cfg.loss, self.answer)
        return class_loss(cfg, reduction, independent=False)

    def screen_loss(self, class_map):
        return "sparse_categorical_crossentropy"

    def accuracy_metric(self):
        return "accuracy"

    # -- training
    def check_settings(self, cfg, data, heads: dict) -> None:
        self.check_head(cfg, data.target)

    def check_head(self, cfg, target: str) -> None:
        refuse_regressor(cfg, target, self.held, self.answer, "dense")
        if getattr(cfg, "head", "auto") == "arcface":
            raise KitError(f"--head arcface: column {target} holds {self.answer}; a margin head serves an "
                           "identity task (a new answer: --new-label NAME); --head auto or dense trains this one; "
                           "nothing was written")

    def check_added_images(self, cfg, target: str) -> None:
        return None  # --extra-data, --pseudo-labels and --soft-labels all add classes' images

    def datasets(self, cfg, data, opts, fixed_batches: bool, multiple: int):
        return class_datasets(cfg, data, opts, fixed_batches, multiple, rows=False)

    def write_holdout(self, cfg, spec, data, run, kept, accelerator) -> dict:
        return {"holdout_accuracy": write_holdout(cfg, spec, data, run, kept, accelerator) if len(data.val) else None}

    def write_predictions(self, cfg, data, run, probs, heads: dict) -> float:
        return write_class_holdout(cfg, data, run, probs, heads)

    def holdout_score(self, cfg, data, run):
        return class_holdout_score(cfg, data, run)

    def epoch_floor(self, cfg, data):
        return prior_floor(cfg, data)

    def fold_score(self, part, class_map, metric: str, positive: int) -> float:
        return class_fold_score(part, class_map, metric, positive)

    # -- inference
    def default_metric(self, schema, class_map) -> tuple:
        return format_metric(schema, class_map)

    def read_format(self, schema, class_map, override: str):
        return class_format(schema, class_map, override)

    def known_answers(self, class_map) -> set:
        return set()

    def write_submission(self, cfg, runs, comp, fmt, views, validate, record: dict):
        return None  # the layers' class path: views and runs averaged as probabilities

    def check_submit(self, cfg, runs) -> None:
        check_full_fits(cfg, runs, False)

    def answers(self, class_map, outputs):
        return outputs

    def fit_answers(self, fmt, probs, y, metric: str) -> tuple:
        return fmt, None

    def score_solution(self, frame, solution: str, schema, metric: str) -> tuple:
        return score_against(frame, solution, schema), None

    def reference(self, metric: str, y_train, y, classes: int, positive: int):
        return reference_answer(metric, y_train, y, classes, positive)

    def show_predictions(self, run, paths, probs, top: int) -> list:
        return show_classes(run, paths, probs, top, tags=False)

    def check_job(self, job: str, subject: str) -> None:
        return None  # tune, prune: both serve one label per image

    # -- the autopilot and the stack
    def auto_steps(self, stack: bool) -> tuple:
        return tuple(step for step in ALL_STEPS if step != "stack" or stack)

    def check_stack(self, class_map, target: str) -> None:
        if len(class_map.values) != 2:
            raise KitError(f"python -m src.stack: column {target} has {len(class_map.values)} classes; the stack "
                           "fits a binary target (ISIC's lesion is malignant or not)")


def refuse_margin_head(cfg, answer: str) -> None:
    """Refuse --head arcface for a kind without identities, naming the flag."""
    if getattr(cfg, "head", "auto") == "arcface":
        raise KitError(f"--head arcface: the target is {answer}; a margin head serves an identity task (a new "
                       "answer: --new-label NAME)")


def refuse_regressor(cfg, target: str, held: str, answer: str, heads: str) -> None:
    """Refuse --head ridge|svr (a regressor on the features needs a number), naming the heads that work."""
    head = getattr(cfg, "head", "auto")
    if head in ("ridge", "svr"):
        raise KitError(f"--head {head}: column {target} holds {held}; a regressor on the features needs a number "
                       f"target (--task regression reads integers as numbers); for {answer}: --head auto or {heads}; "
                       "nothing was written")
