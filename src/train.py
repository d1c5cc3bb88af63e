"""Two-stage progressive-resolution fine-tuning.

    python -m src.train --data data/cars --backbone efficientnet_b0 --out runs/effb0
    python -m src.train --data data/demo --backbone small_resnet --weights none \
        --stage1-size 32 32 --stage2-size 48 48 --stage1-lr 3e-3 --stage2-lr 1e-3 --out runs/demo
    python -m src.train --config runs/tune/best_config.json

Warm-up (optional), stage 1 unfrozen at a moderate size, stage 2 at a higher size from stage
1's best weights with a much lower rate; `--resume` continues a run that was cut off.
The recipe lives in src.training.two_stage; the run folder's layout in src.runs.folder.
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import Interrupted, run_cli
from src.core.settings import TrainConfig


def main(argv=None):
    """Parse the flags into a TrainConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(TrainConfig, argv, prog="python -m src.train")
    try:
        if cfg.folds > 1 and cfg.fold == -1:  # every fold in turn, then out-of-fold predictions and the CV score
            from src.training.cross_validation import train_folds

            return train_folds(cfg)
        if cfg.head in ("ridge", "svr"):  # a ridge or SVR on the backbone's pooled features: a run of its own
            from src.training.embedding_head import fit_embedding_head

            return fit_embedding_head(cfg)
        from src.training.two_stage import train

        return train(cfg)
    except KeyboardInterrupt:  # Ctrl-C: the run keeps its last finished epoch; say how to go on, not a traceback
        raise Interrupted(how_to_continue(cfg)) from None


def how_to_continue(cfg) -> str:
    """Return what an interrupted training left in its folder and the command that continues it."""
    from src.training.two_stage import run_folder_for

    run = run_folder_for(cfg)
    if not run.is_run():
        return f"{run.path} holds no run yet: run the command again"
    return f"the run in {run.path} keeps its last finished epoch; {run.how_to_resume()}"


if __name__ == "__main__":
    sys.exit(run_cli(main))
