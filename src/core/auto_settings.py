"""The settings of `python -m src.auto`: one command from a competition's folder to its best submission.

    cfg = parse_config(AutoConfig, ["--data", "data/demo", "--budget", "6m", "--weights", "none"])
    seconds = budget_seconds(cfg.budget)      # "90s", "6m", "8h" (a number alone: hours)

As src.core.settings is for the training jobs; its fields are the command's flags and the notebook's
parameters (kernels/auto.ipynb); nothing heavy is imported (`--help` loads no TensorFlow).
"""
from __future__ import annotations

import dataclasses
import math
import re

from src.core.config import DataOptions, fraction, non_negative, opt, positive
from src.core.errors import KitError
from src.core.metric_choice import metric_flag
from src.core.settings import METRIC_HELP

UNITS = {"s": 1, "m": 60, "h": 3600}
BUDGET_FORM = "a time such as 90s, 6m or 8h (seconds, minutes, hours; a number alone is hours)"


def budget_problem(value: str):
    """Return what --budget expects unless value parses to a positive time, else None (a field check)."""
    try:
        budget_seconds(value)
    except KitError:
        return BUDGET_FORM
    return None


def budget_seconds(value: str) -> float:
    """Return the seconds a budget names ("90s", "6m", "1.5h"; a bare number: hours), or raise saying the form."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(value).lower())
    seconds = float(found[1]) * UNITS[found[2] or "h"] if found else 0.0
    if seconds <= 0:
        raise KitError(f"--budget {value!r}: expected {BUDGET_FORM}")
    return seconds


def budget_text(seconds: float) -> str:
    """Return a budget of at least these seconds as --budget takes it, rounded up to a unit that reads well:
    whole seconds under 2 minutes, whole minutes under 2 hours, tenths of an hour beyond."""
    if seconds < 120:
        return f"{math.ceil(seconds)}s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)}m"
    return f"{math.ceil(seconds / 360) / 10:g}h"


@dataclasses.dataclass
class AutoConfig(DataOptions):
    """Plan, from times measured on this hardware, and run screening, training, TTA and blending within a budget."""

    budget: str = opt("8h", "wall time this session may take, as 90s, 6m or 8h (a Kaggle GPU kernel: 9h less "
                            "set-up; TPU: 3h); the last submission is written before it ends", check=budget_problem)
    out: str = opt("runs/auto", "folder of the auto run: plan.csv/png, auto_state.json, the runs, the submission; "
                                "the same command continues it after a kill or in a new session")
    backbones: str = opt("", "candidate backbones, comma separated; empty: efficientnet_b0,resnet50,mobilenetv3_large "
                             "with pretrained weights, the kit's own small_resnet with --weights none")
    weights: str = opt("imagenet", "imagenet (each backbone's weight tag), none (random: only the kit's own networks "
                                   "learn from scratch), or a weights file/folder")
    metric: str = opt("", METRIC_HELP.replace("picks the best epoch, checkpoint and early stop", "decides every step"),
                      check=metric_flag)
    max_epochs: tuple[int, int] = opt((30, 10), "most epochs of stages 1 and 2 (early stopping usually ends them "
                                                "sooner; the budget may allow fewer)", check=positive)
    max_folds: int = opt(5, "most folds of K-fold training when the budget allows (fewer, or one holdout, when not)",
                         check=lambda v: None if v == 0 or v >= 2 else "0 (always one holdout) or 2 and more")
    margin: float = opt(0.1, "share of the budget kept back for what the measurements miss (start-up, data, "
                             "slower epochs)", check=fraction)
    measure_batches: int = opt(3, "timed batches per candidate and size, after one that compiles", check=positive)
    solution: str = opt("", "CSV of true test labels to score the final submission against (the demo's)")
    accelerator: str = opt("auto", "tpu / gpu: an error when there is none; cpu; auto: the best found",
                           ("auto", "tpu", "gpu", "cpu"))
    batch_size: int = opt(32, "images per batch per replica", check=positive)
    startup_seconds: float = opt(20.0, "seconds each step loses to building models and reading images (measured "
                                       "steps replace it)", check=non_negative)

    def check(self) -> None:
        """Raise naming the flags that do not fit together."""
        super().check()
        if self.fold != -1 or self.folds:
            flag = f"--fold {self.fold}" if self.fold != -1 else f"--folds {self.folds}"
            raise KitError(f"{flag}: src.auto chooses the folds from the budget; --max-folds caps them")
