"""A number per image (regression: Pawpularity, bone age): one output in the target's units.

    kind = NumberKind()    # registered in src.kinds

Read when the target column holds numbers by src.data.numbers' rules (or --task regression); one output,
linear on the standardised target or sigmoid-scaled (--loss bce-scaled); the holdout stratified by quantile
bin; views and runs averaged as numbers and clipped to the training range; rmse unless told; the training
mean (median for mae) as the trivial answer.
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.core.metric_choice import kit_name, read_kaggle_metric
from src.core.task_kind import TaskKind
from src.data.class_maps import make_number_map
from src.data.numbers import BINS, reads_as_number
from src.data.report import binned
from src.data.splits import number_strata
from src.inference.checks import score_numbers_against
from src.inference.formats import SubmissionFormat
from src.inference.image_predictions import show_numbers
from src.inference.reference import number_reference
from src.inference.references import check_full_fits
from src.kinds.label.kind import refuse_margin_head
from src.kinds.tags.kind import refuse_added_images
from src.models.classifier import HeadSpec, classifier_network
from src.models.epoch_metrics import epoch_metric
from src.models.number_head import number_loss, number_output
from src.training.cross_validation import class_fold_score
from src.training.holdout import number_floor, number_holdout_score, write_number_holdout
from src.training.stages import number_datasets, write_holdout


class NumberKind(TaskKind):
    """One number per image."""

    name = "number"
    answer = "a number per image (regression)"
    metrics = ("rmse", "mae", "r2")
    fallback = "rmse"
    misfit_hint = "--task regression reads the target as numbers"

    # -- data
    def read_labels(self, root, opts, schema):
        return None  # read as one label's are (the catch-all); read_target tells the numbers

    def repeated_ids(self, sample) -> str:
        return ""  # a number per image: each id once

    def read_target(self, train, target: str, opts, schema):
        metric = getattr(opts, "metric", "") or kit_name(read_kaggle_metric(opts.data))
        number, why = reads_as_number(train[target], target, getattr(opts, "task", ""), metric, schema)
        if not number:
            return None
        print(f"labels: column {target} holds numbers ({why}): a number per image (regression)"
              f"{'' if getattr(opts, 'task', '') else '; --task label reads them as classes'}")
        return train, dataclasses.replace(make_number_map(train[target], target), task=self.name)

    def claims(self, class_map) -> bool:
        return getattr(class_map, "scale", None) is not None

    def task_line(self, class_map, source: str, counts) -> str:
        return (f"task: {self.name}, {self.answer} in column {class_map.column}, {class_map.scale.describe()} "
                f"({source})")

    def exclusive_classes(self, class_map) -> tuple:
        return ()

    def report_counts(self, comp, split) -> tuple:
        cmap = comp.class_maps[comp.target]
        print(f"target: column {comp.target} holds a number per image: {cmap.scale.describe()}; counted below in "
              f"{BINS} quantile bins of its values")
        comp, split = binned(comp, split)
        return comp, split, comp.target, False

    def split_settings(self, class_map) -> str:
        return "-number"

    def draw_folds(self, train, target: str, opts, class_map):
        return None  # stratified folds, by the strata below

    def strata(self, train, target: str, opts, class_map, needed: int):
        return number_strata(train, target, opts, needed)

    # -- models
    def head_spec(self, cfg, head, class_map):
        refuse_margin_head(cfg, self.answer)
        if class_map is None:
            return dataclasses.replace(head, activation="linear")
        activation, offset, span = number_output(getattr(cfg, "loss", "mse"), class_map.scale)
        return dataclasses.replace(head, activation=activation, rescale=(offset, span))

    def build_network(self, cfg, spec, size, class_map, outputs, weights: str, train_backbone: bool,
                      table_width: int = 0):
        return classifier_network(cfg, spec, size, class_map, outputs, weights, train_backbone, table_width)

    def epoch_metric(self, metric: str, outputs: int, positive: int):
        return epoch_metric(metric, outputs, positive)  # rmse, mae, r2: Keras's own on the numbers

    def screen_head(self, cfg, class_map):
        # linear in the target's units, as src.train's default --loss mse
        return HeadSpec(dropout=cfg.dropout, activation="linear", rescale=(class_map.scale.mean, class_map.scale.sd))

    def loss(self, cfg, reduction: str, scale):
        return number_loss(cfg.loss, scale, reduction)

    def screen_loss(self, class_map):
        return number_loss("mse", class_map.scale)  # ranked by the metric on the numbers: mse, standardised

    def accuracy_metric(self):
        return None  # no accuracy: the holdout's --metric (rmse ...) instead

    # -- training
    def check_settings(self, cfg, data, heads: dict) -> None:
        self.check_head(cfg, data.target)
        refused = {"--class-weights": cfg.class_weights, "--targets (multi-task heads)": len(heads) > 1,
                   f"--sampling {cfg.sampling} (per-class weights)": cfg.sampling != "natural"}
        for flag, given in refused.items():  # --extra-data, --pseudo-labels, --soft-labels: check_added_images
            if given:
                raise KitError(f"{flag}: column {data.target} holds a number per image (regression), which "
                               f"{flag.split()[0]} does not support; leave it out")

    def check_head(self, cfg, target: str) -> None:
        if getattr(cfg, "head", "auto") == "arcface":
            raise KitError(f"--head arcface: column {target} holds {self.answer}; a margin head serves an identity "
                           "task (a new answer: --new-label NAME); --head auto or dense trains this one; nothing "
                           "was written")

    def check_added_images(self, cfg, target: str) -> None:
        refuse_added_images(cfg, target, self.answer)

    def datasets(self, cfg, data, opts, fixed_batches: bool, multiple: int):
        return number_datasets(cfg, data, opts, fixed_batches, multiple)

    def write_holdout(self, cfg, spec, data, run, kept, accelerator) -> dict:
        value = write_holdout(cfg, spec, data, run, kept, accelerator) if len(data.val) else None
        return {"holdout_accuracy": None, "holdout_score": value}  # no accuracy: the holdout's --metric

    def write_predictions(self, cfg, data, run, probs, heads: dict) -> float:
        return write_number_holdout(cfg, data, run, probs)

    def holdout_score(self, cfg, data, run):
        return number_holdout_score(cfg, data, run)

    def epoch_floor(self, cfg, data):
        return number_floor(cfg, data)

    def fold_score(self, part, class_map, metric: str, positive: int) -> float:
        return class_fold_score(part, class_map, metric, positive)

    # -- inference
    def default_metric(self, schema, class_map) -> tuple:
        return self.fallback, "the number format's"  # one format only: numbers, rmse unless told

    def read_format(self, schema, class_map, override: str):
        if override not in ("", "number"):
            raise KitError(f"--submission-format {override}: column {class_map.column} holds a number per image; "
                           "expected number")
        return SubmissionFormat("number", (schema.target_column,))

    def known_answers(self, class_map) -> set:
        return set()

    def write_submission(self, cfg, runs, comp, fmt, views, validate, record: dict):
        return None  # the layers' path: views and runs averaged as numbers (answers clips them)

    def check_submit(self, cfg, runs) -> None:
        if cfg.tta_mean == "geometric" or cfg.blend == "rank":
            raise KitError(f"{'--tta-mean geometric' if cfg.tta_mean == 'geometric' else '--blend rank'}: the target "
                           "is a number per image, not probabilities: use --tta-mean arithmetic and --blend mean")
        check_full_fits(cfg, runs, False)

    def answers(self, class_map, outputs):
        return class_map.scale.clip(outputs)  # the training range: as the holdout and src.predict write them

    def fit_answers(self, fmt, probs, y, metric: str) -> tuple:
        return fmt, None

    def score_solution(self, frame, solution: str, schema, metric: str) -> tuple:
        return None, score_numbers_against(frame, solution, schema, metric)

    def reference(self, metric: str, y_train, y, classes: int, positive: int):
        return number_reference(y_train, y, metric)

    def show_predictions(self, run, paths, probs, top: int) -> list:
        return show_numbers(run, paths, probs)

    def check_job(self, job: str, subject: str) -> None:
        return None

    # -- the autopilot and the stack
    def auto_steps(self, stack: bool) -> tuple:
        return ("screen", "train", "submit", "head")  # head: a ridge on the features, blended (holdout runs)

    def check_stack(self, class_map, target: str) -> None:
        raise KitError(f"python -m src.stack: column {target} holds a number per image; the stack fits a binary "
                       "target (ISIC's lesion is malignant or not)")

