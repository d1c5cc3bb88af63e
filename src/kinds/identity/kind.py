"""One identity per image, or a new one (Humpback Whale, Happywhale): an embedding, nearest neighbours, MAP@k.

    kind = IdentityKind()  # registered in src.kinds

Read when the sample submission (or --new-label) names an answer for an individual the training set never
shows (src.kinds.identity.reading); trained as GeM + an embedding + an ArcFace margin head (--head dense: a softmax
there); the holdout keeps every identity on the training side and holds some out whole; the submission ranks
the gallery's identities by cosine and inserts the new answer at a threshold chosen on the holdout.
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.data.class_maps import make_class_map
from src.data.competition import check_learnable, drop_sparse_classes
from src.kinds.identity.reading import describe_identity_split, drop_new_label_rows, find_new_label, make_identity_split
from src.kinds.identity.neighbours import map_of_answers
from src.kinds.identity.submission import write_identity_submission
from src.kinds.identity.outputs import auxiliary_heads, identity_floor, identity_holdout_score, write_identity_holdout
from src.kinds.label.kind import LabelKind, refuse_regressor
from src.kinds.tags.kind import refuse_added_images
from src.models.embedding import margin_loss


class IdentityKind(LabelKind):
    """Many identities with few images each, and an answer for one never seen."""

    name = "identity"
    answer = "one identity per image, or a new one"
    metrics = ("map@K",)
    fallback = "map@5"
    nouns = ("identity", "identities")
    reads_last = False

    # -- data
    def read_labels(self, root, opts, schema):
        return None  # read as one label's are (the catch-all); read_target tells the identities

    def read_target(self, train, target: str, opts, schema):
        new_label, new_from = find_new_label(schema, train[target], getattr(opts, "new_label", ""))
        if not new_label:
            return None
        train = drop_new_label_rows(train, target, new_label)  # the new answer is no identity of its own
        train = drop_sparse_classes(train, target, opts.min_class_count)
        check_learnable(train, target, opts.min_class_count)
        cmap = make_class_map(train[target], target)
        return train, dataclasses.replace(cmap, new_label=new_label, new_from=new_from, task=self.name)

    def claims(self, class_map) -> bool:
        return bool(getattr(class_map, "new_label", ""))

    def task_line(self, class_map, source: str, counts) -> str:
        single = "" if counts is None else f" ({int((counts == 1).sum())} with one image)"
        return (f"task: identity, {len(class_map.values)} identities in column {class_map.column}{single}, new answer "
                f"{class_map.new_label!r} ({getattr(class_map, 'new_from', '') or source})")

    def split_settings(self, class_map) -> str:
        return f"-identity-{class_map.new_label}"

    def draw_folds(self, train, target: str, opts, class_map):
        return make_identity_split(train, target, opts.folds, opts.val_fraction, opts.seed)  # identities whole

    # -- models
    def head_spec(self, cfg, head, class_map):
        head = dataclasses.replace(head, activation="softmax", embedding_dim=getattr(cfg, "embedding_dim", 512),
                                   margin_head=getattr(cfg, "head", "auto") != "dense",
                                   subcenters=getattr(cfg, "subcenters", 1), scale=getattr(cfg, "scale", 30.0))
        # which of several heads (--targets) is the margin head's
        return head if class_map is None else dataclasses.replace(head, target=class_map.column)

    def loss(self, cfg, reduction: str, scale):
        if getattr(cfg, "head", "auto") != "dense":  # the ArcFace margin, in the loss
            return margin_loss(cfg)
        return super().loss(cfg, reduction, scale)

    # -- training
    def check_head(self, cfg, target: str) -> None:
        refuse_regressor(cfg, target, self.answer, self.answer, "arcface")  # a margin head is this kind's own

    def check_settings(self, cfg, data, heads: dict) -> None:
        self.check_head(cfg, data.target)
        print(describe_identity_split(data.split, data.target, data.class_map.new_label))
        if line := auxiliary_heads(cfg, data.target, heads):
            print(line)

    def check_added_images(self, cfg, target: str) -> None:
        refuse_added_images(cfg, target, self.answer)

    def write_holdout(self, cfg, spec, data, run, kept, accelerator) -> dict:
        return {"holdout_accuracy": write_identity_holdout(cfg, spec, data, run, kept, accelerator)}

    def holdout_score(self, cfg, data, run):
        return identity_holdout_score(cfg, data, run)

    def epoch_floor(self, cfg, data):
        return identity_floor(cfg, data)

    def fold_score(self, part, class_map, metric: str, positive: int) -> float:
        if "top" in part:  # each fold's written answers
            return map_of_answers(part["top"], part["label"])
        return super().fold_score(part, class_map, metric, positive)

    # -- inference
    def known_answers(self, class_map) -> set:
        return {class_map.new_label}  # the answer for one never seen

    def read_format(self, schema, class_map, override: str):
        return super().read_format(schema, class_map, override or "top-k")  # the sample's top-k rows

    def write_submission(self, cfg, runs, comp, fmt, views, validate, record: dict):
        return write_identity_submission(cfg, runs, comp, fmt, views, validate, record)

    # -- the autopilot and the stack
    def auto_steps(self, stack: bool) -> tuple:
        # not screened: screening ranks softmax heads on frozen features, not embeddings
        return ("train", "submit")

    def check_stack(self, class_map, target: str) -> None:
        raise KitError(f"python -m src.stack: column {target} holds identities; the stack fits a binary target "
                       "(ISIC's lesion is malignant or not)")
