"""The stages a training config asks for: warm-up (optional), stage 1, stage 2 (unless --stages 1).

Training runs them; prediction asks which one is final. Both read this one plan, so a run
is predicted at the size and with the weights of the stage that training really ended with.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Stage:
    """One fit: its name, size, epochs, learning rate, patience and whether the backbone trains."""

    name: str
    size: tuple
    epochs: int
    lr: float
    patience: int
    train_backbone: bool
    schedule_epochs: int | None = None  # what the rate schedule spans when the fit stops sooner (--full-fit)


# The stage rates when --stage1-lr / --stage2-lr are 0 (their defaults). Pretrained weights: the reference
# fine-tuning recipe, stage 2 barely moving what stage 1 found. Random weights: still learning at the end of
# stage 1 (a from-scratch number run's val_rmse fell every epoch to the last), so stage 2 keeps a real rate;
# 1e-6 there changed nothing in the runs measured. Stage 1 from scratch at 1e-3, not 3e-3: on a generated
# two-class competition (benchmarks/matrix.py binary-b) small_resnet at 3e-3 sat near chance for 12 epochs
# (train accuracy 0.52-0.55) where 1e-3 reached holdout log loss 0.02 by epoch 4.
RATES = {"pretrained": (1e-3, 1e-6), "random": (1e-3, 3e-4)}


def stage_rates(cfg) -> tuple:
    """Return (stage 1's rate, stage 2's rate, why): the flags', or for a 0 flag the recipe's for the weights."""
    start = "random" if getattr(cfg, "weights", "") == "none" else "pretrained"
    first, second = (given or default for given, default in zip((cfg.stage1_lr, cfg.stage2_lr), RATES[start]))
    auto = [flag for flag, given in (("--stage1-lr", cfg.stage1_lr), ("--stage2-lr", cfg.stage2_lr)) if not given]
    why = (f"{' and '.join(auto)} 0: the rates for {start} weights" + (" (--weights none)" if start == "random" else "")
           if auto else "the rates given")
    return first, second, why


def plan_stages(cfg) -> list:
    """Return the stages of a TrainConfig in order: warm-up if asked, stage 1, stage 2 unless --stages 1."""
    stages = []
    if cfg.warmup_epochs > 0:
        stages.append(Stage("warmup", tuple(cfg.stage1_size), cfg.warmup_epochs, cfg.warmup_lr,
                            cfg.warmup_epochs, False))
    first, second, _ = stage_rates(cfg)
    stages.append(Stage("stage1", tuple(cfg.stage1_size), cfg.stage1_epochs, first,
                        cfg.stage1_patience, True))
    if cfg.stages == 2:
        stages.append(Stage("stage2", tuple(cfg.stage2_size), cfg.stage2_epochs, second,
                            cfg.stage2_patience, True))
    return stages


def effective(cfg, name: str):
    """Return the value a setting trains with: a stage's rate left at 0 is the recipe's for the weights
    (stage_rates), so a run saved with those rates written out resumes with 0 and back."""
    if name in ("stage1_lr", "stage2_lr") and hasattr(cfg, "stage2_lr"):
        return stage_rates(cfg)[0 if name == "stage1_lr" else 1]
    return getattr(cfg, name)
