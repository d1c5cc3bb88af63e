"""Tags (multi-label): space-separated tags per image (Planet), a sigmoid per tag, thresholds fitted per tag.

    kind = TagsKind()      # registered in src.kinds

It answers as one label does where the two agree (the classes' views and runs averaged, the class map's
values) and in its own words where they differ: 0/1 rows as targets, binary losses and per-tag accuracy, the
holdout stratified by each image's rarest tag, one submission format (multi-label) and its metric f2_samples,
a threshold per tag fitted on the holdout.
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.data.class_maps import holds_tags, make_class_map
from src.data.splits import rarest_tag_strata
from src.inference.formats import SubmissionFormat
from src.inference.image_predictions import show_classes
from src.inference.references import check_full_fits
from src.inference.tag_thresholds import fit_tag_thresholds
from src.kinds.label.kind import LabelKind
from src.models.recipe import class_loss
from src.training.stages import class_datasets
from src.training.holdout import write_tags_holdout


class TagsKind(LabelKind):
    """Several tags per image, each its own yes/no."""

    name = "tags"
    answer = "tags (multi-label)"
    metrics = ("f2_samples",)
    fallback = "f2_samples"
    nouns = ("tag", "tags")
    reads_last = False
    activation = "sigmoid"  # a yes/no per tag
    held = "tags (multi-label)"

    def read_labels(self, root, opts, schema):
        return None  # read as one label's are (the catch-all); read_target tells the tags

    def read_target(self, train, target: str, opts, schema):
        if not holds_tags(train[target]):
            return None
        return train, dataclasses.replace(make_class_map(train[target], target), task=self.name)

    def claims(self, class_map) -> bool:
        return bool(getattr(class_map, "multi_label", False))

    def exclusive_classes(self, class_map) -> tuple:
        return ()  # several tags per image: no class counts, weights or both-sides check

    def report_counts(self, comp, split) -> tuple:
        return comp, split, "tag frequencies", True  # an image lists several

    def strata(self, train, target: str, opts, class_map, needed: int):
        return rarest_tag_strata(train, target, class_map, needed)

    def loss(self, cfg, reduction: str, scale):
        return class_loss(cfg, reduction, independent=True)

    def screen_loss(self, class_map):
        return "binary_crossentropy"

    def accuracy_metric(self):
        import keras  # the layers' Keras: loaded by the job that compiles, never by --help

        return keras.metrics.BinaryAccuracy(name="accuracy")  # per tag at 0.5, logged as accuracy

    def check_settings(self, cfg, data, heads: dict) -> None:
        self.check_head(cfg, data.target)
        refused = {"--class-weights": cfg.class_weights, "--targets (multi-task heads)": len(heads) > 1,
                   f"--sampling {cfg.sampling} (per-class weights)": cfg.sampling != "natural"}
        for flag, given in refused.items():
            if given:
                raise KitError(f"{flag}: column {data.target} holds tags (multi-label), which {flag.split()[0]} does "
                               "not support; leave it out")

    def check_added_images(self, cfg, target: str) -> None:
        refuse_added_images(cfg, target, self.answer)

    def datasets(self, cfg, data, opts, fixed_batches: bool, multiple: int):
        return class_datasets(cfg, data, opts, fixed_batches, multiple, rows=True)

    def write_predictions(self, cfg, data, run, probs, heads: dict) -> float:
        return write_tags_holdout(data, run, probs)

    def default_metric(self, schema, class_map) -> tuple:
        return self.fallback, "the multi-label format's"  # one format only: the tags' metric

    def read_format(self, schema, class_map, override: str):
        if override not in ("", "multi-label"):
            raise KitError(f"--submission-format {override}: column {class_map.column} holds tags (multi-label); "
                           "expected multi-label")
        return SubmissionFormat("multi-label", (schema.target_column,))

    def check_submit(self, cfg, runs) -> None:
        if cfg.tta_mean == "geometric":
            raise KitError("--tta-mean geometric: multi-label probabilities are one per tag, not a distribution to "
                           "renormalise; use arithmetic")
        check_full_fits(cfg, runs, True)  # a threshold per tag is fitted on the holdout

    def fit_answers(self, fmt, probs, y, metric: str) -> tuple:
        return fit_tag_thresholds(fmt, probs, y, metric)

    def show_predictions(self, run, paths, probs, top: int) -> list:
        return show_classes(run, paths, probs, top, tags=True)

    def check_job(self, job: str, subject: str) -> None:
        if job == "predict":
            return None  # src.predict shows the tags at 0.5 and the likeliest ones
        why = {"tune": "the head search trains one label per image",
               "prune": "pruning fine-tunes and scores one label per image"}.get(job, f"{job} serves one label per image")
        raise KitError(f"{subject} holds tags (multi-label); {why}")

    def auto_steps(self, stack: bool) -> tuple:
        return ("screen", "train", "submit")

    def check_stack(self, class_map, target: str) -> None:
        raise KitError(f"python -m src.stack: column {target} holds tags; the stack fits a binary target (ISIC's "
                       "lesion is malignant or not)")


def refuse_added_images(cfg, target: str, answer: str) -> None:
    """Refuse --extra-data, --pseudo-labels and --soft-labels for a kind whose labels they cannot add yet."""
    if cfg.extra_data or cfg.pseudo_labels or cfg.soft_labels:
        flag = "--extra-data" if cfg.extra_data else "--pseudo-labels" if cfg.pseudo_labels else "--soft-labels"
        raise KitError(f"{flag}: column {target} holds {answer}, which {flag} does not support yet; leave it out")
