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


def plan_stages(cfg) -> list:
    """Return the stages of a TrainConfig in order: warm-up if asked, stage 1, stage 2 unless --stages 1."""
    stages = []
    if cfg.warmup_epochs > 0:
        stages.append(Stage("warmup", tuple(cfg.stage1_size), cfg.warmup_epochs, cfg.warmup_lr,
                            cfg.warmup_epochs, False))
    stages.append(Stage("stage1", tuple(cfg.stage1_size), cfg.stage1_epochs, cfg.stage1_lr,
                        cfg.stage1_patience, True))
    if cfg.stages == 2:
        stages.append(Stage("stage2", tuple(cfg.stage2_size), cfg.stage2_epochs, cfg.stage2_lr,
                            cfg.stage2_patience, True))
    return stages
