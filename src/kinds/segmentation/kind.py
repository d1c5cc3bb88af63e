"""A mask per image (segmentation: HuBMAP, Severstal): a U-Net, BCE + Dice, run-length rows scored by Dice.

    kind = SegmentationKind()    # registered in src.kinds, asked before tags and numbers

Read when the sample submission asks for run-length strings (or --task segmentation) and the masks are found:
a labels CSV with a run-length column, or mask files (src.kinds.segmentation.reading). Trained as a U-Net on
the run's --backbone (src.kinds.segmentation.unet), images and masks resized and flipped together, two stages
at growing sizes as the recipe does, checkpoints and early stopping on val_dice; the holdout's probabilities
back at each image's size choose the post-processing (outputs); the submission writes the sample's rows
(submission). What it cannot do it refuses in its own words: screening, the head search, pruning, the stack,
images added to training, K-fold runs, the classifiers' flags.
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.core.metric_choice import log_name
from src.core.task_kind import TaskKind
from src.data.class_maps import ClassMap
from src.inference.formats import SubmissionFormat
from src.kinds.segmentation.metrics import BceDice, DiceMetric
from src.kinds.segmentation.outputs import (empty_floor, empty_reference, mask_holdout_score, write_mask_holdout,
                                            write_mask_predictions)
from src.kinds.segmentation.reading import (NO_MASK, has_masks, mask_strata, mask_table, read_mask_labels,
                                            sample_class_column, sample_rows)
from src.kinds.segmentation.submission import check_mask_submit, write_mask_submission
from src.kinds.segmentation.training import mask_datasets, unet_network, unet_size
from src.kinds.tags.kind import refuse_added_images

CANNOT = "segmentation trains a U-Net on masks"


class SegmentationKind(TaskKind):
    """A mask per image, a channel per class; an image may have none."""

    name = "segmentation"
    answer = "a mask per image (segmentation)"
    metrics = ("dice",)
    fallback = "dice"
    misfit_hint = "a sample submission of run-length strings (rle, EncodedPixels) reads the target as masks"

    # -- data
    def read_labels(self, root, opts, schema):
        return read_mask_labels(root, opts, schema)

    def repeated_ids(self, sample) -> str:
        return sample_rows(sample)  # Severstal: a row per image and class

    def read_target(self, train, target: str, opts, schema):
        if not has_masks(opts):  # read_labels read no masks in this folder: not mine
            return None
        classes = tuple(str(c) for c in mask_table(opts.data).classes)  # in channel order (Severstal's 1 to 4)
        # multi_label: ClassMap.encode gives each image's classes present as a 0/1 row (strata, the empty answer)
        return train, ClassMap(target, classes, multi_label=True, task=self.name)

    def claims(self, class_map) -> bool:
        return getattr(class_map, "task", "") == self.name

    def task_line(self, class_map, source: str, counts) -> str:
        classes = f"{len(class_map.values)} class{'es' if len(class_map.values) > 1 else ''} " \
                  f"({', '.join(map(str, class_map.values))})"
        empty = "" if counts is None else f", {int(counts.get('', 0))} of {int(counts.sum())} images without a mask"
        return f"task: {self.name}, a mask per image in column {class_map.column}, {classes}{empty} ({source})"

    def exclusive_classes(self, class_map) -> tuple:
        return ()  # a mask holds several classes, or none

    def report_counts(self, comp, split) -> tuple:
        def named(frame):
            return frame.assign(**{comp.target: frame[comp.target].astype(str).str.strip().replace("", NO_MASK)})

        return dataclasses.replace(comp, train=named(comp.train)), named(split), "images per class in the mask", True

    def split_settings(self, class_map) -> str:
        return "-segmentation"

    def draw_folds(self, train, target: str, opts, class_map):
        return None  # stratified by the classes each mask holds

    def strata(self, train, target: str, opts, class_map, needed: int):
        return mask_strata(train, target, needed)

    # -- models
    def head_spec(self, cfg, head, class_map):
        return dataclasses.replace(head, activation="sigmoid")  # a U-Net's output: a sigmoid per class and pixel

    def build_network(self, cfg, spec, size, class_map, outputs, weights: str, train_backbone: bool,
                      table_width: int = 0):
        return unet_network(cfg, spec, size, class_map, weights, train_backbone)

    def epoch_metric(self, metric: str, outputs: int, positive: int):
        return DiceMetric(name=log_name(metric))  # val_dice: thresholded at 0.5, per (image, class) pair

    def screen_head(self, cfg, class_map):
        raise KitError(f"python -m src.screen_backbones ranks heads on pooled features; {CANNOT}: compare backbones "
                       "with python -m src.train --backbone NAME")

    def loss(self, cfg, reduction: str, scale):
        if getattr(cfg, "loss", "cce") != "cce":
            raise KitError(f"--loss {cfg.loss}: {CANNOT} with binary cross-entropy + Dice; leave --loss out")
        return BceDice(reduction=reduction)

    def screen_loss(self, class_map):
        return self.screen_head(None, class_map)

    def accuracy_metric(self):
        return None  # no accuracy: val_dice

    # -- training
    def check_head(self, cfg, target: str) -> None:
        head = getattr(cfg, "head", "auto")
        if head not in ("auto", "dense"):
            raise KitError(f"--head {head}: column {target} holds masks; {CANNOT} (its decoder is the head); leave "
                           "--head out; nothing was written")

    def check_settings(self, cfg, data, heads: dict) -> None:
        self.check_head(cfg, data.target)
        refused = {"--class-weights": cfg.class_weights, "--targets (multi-task heads)": len(heads) > 1,
                   f"--sampling {cfg.sampling}": cfg.sampling != "natural", "--metadata": cfg.metadata,
                   "--mixup": cfg.mixup > 0, "--cutmix": cfg.cutmix > 0, "--label-smoothing": cfg.label_smoothing > 0,
                   f"--folds {cfg.folds} (K-fold)": cfg.folds > 1, "--augment albumentations:FILE":
                       str(cfg.augment).startswith("albumentations:")}
        for flag, given in refused.items():
            if given:
                raise KitError(f"{flag}: column {data.target} holds masks (segmentation), which {flag.split()[0]} "
                               "does not support; leave it out")
        sizes = [cfg.stage1_size] + ([cfg.stage2_size] if cfg.stages > 1 else [])
        shown = ", ".join(f"{h}x{w}" for h, w in (unet_size(cfg.backbone, s) for s in sizes))
        flipped = "none" if cfg.augment == "none" else \
            ("left-right, " if cfg.flip else "") + "up-down" + (", transposed" if cfg.augment == "strong" else "")
        print(f"segmentation: a U-Net on {cfg.backbone} at {shown} (each side a multiple of its deepest stride), "
              f"binary cross-entropy + Dice; flips of image and mask together: {flipped}", flush=True)

    def check_added_images(self, cfg, target: str) -> None:
        refuse_added_images(cfg, target, self.answer)

    def check_job(self, job: str, subject: str) -> None:
        if job == "predict":
            raise KitError(f"python -m src.predict prints classes; {subject} holds masks (segmentation): python -m "
                           "src.submit --run RUN writes them as the sample's run-length rows")
        raise KitError(f"{subject} holds masks (segmentation); {job} serves classifiers, {CANNOT}")

    def datasets(self, cfg, data, opts, fixed_batches: bool, multiple: int):
        return mask_datasets(cfg, data, opts, fixed_batches, multiple)

    def write_holdout(self, cfg, spec, data, run, kept, accelerator) -> dict:
        return write_mask_holdout(cfg, spec, data, run, kept, accelerator)

    def write_predictions(self, cfg, data, run, probs, heads: dict) -> float:
        return write_mask_predictions(cfg, data, run, probs)

    def holdout_score(self, cfg, data, run):
        return mask_holdout_score(cfg, data, run)

    def epoch_floor(self, cfg, data):
        return empty_floor(cfg, data)

    def fold_score(self, part, class_map, metric: str, positive: int) -> float:
        return float(part["dice"].mean())  # each image's Dice with its fold's post-processing

    # -- inference
    def default_metric(self, schema, class_map) -> tuple:
        return self.fallback, "the run-length format's"

    def read_format(self, schema, class_map, override: str):
        if override not in ("", "run-length"):
            raise KitError(f"--submission-format {override}: column {class_map.column} holds masks; the sample's "
                           "run-length rows are written")
        column = sample_class_column(schema.sample) if schema.sample is not None else None
        return SubmissionFormat("run-length", (schema.target_column,) + ((column,) if column else ()),
                                why=schema.rows or "a row per image")

    def known_answers(self, class_map) -> set:
        return set()

    def write_submission(self, cfg, runs, comp, fmt, views, validate, record: dict):
        return write_mask_submission(cfg, runs, comp, fmt, views, record)

    def check_submit(self, cfg, runs) -> None:
        check_mask_submit(cfg)

    def answers(self, class_map, outputs):
        return outputs

    def fit_answers(self, fmt, probs, y, metric: str) -> tuple:
        return fmt, None  # the post-processing is chosen when the run ends (RUN/segmentation.json)

    def score_solution(self, frame, solution: str, schema, metric: str) -> tuple:
        raise KitError(f"--solution {solution}: a mask submission is not scored against a solution file yet; its "
                       "holdout Dice is in NAME.holdout.csv")

    def reference(self, metric: str, y_train, y, classes: int, positive: int):
        return empty_reference(y)  # y: the classes each holdout mask holds, 0/1 per image and class

    def show_predictions(self, run, paths, probs, top: int) -> list:
        raise KitError("python -m src.predict prints classes; a segmentation run writes masks: python -m src.submit "
                       "--run RUN writes them as the sample's run-length rows")

    # -- the autopilot and the stack
    def auto_steps(self, stack: bool) -> tuple:
        # not screened: screening ranks heads on pooled features, not a decoder; the U-Net is trained, then submitted
        # (TTA flips, the post-processing chosen on the holdout); "holdout": one holdout, K folds are refused
        return ("train", "submit", "holdout")

    def check_stack(self, class_map, target: str) -> None:
        raise KitError(f"python -m src.stack: column {target} holds masks; the stack fits a binary target (ISIC's "
                       "lesion is malignant or not)")

