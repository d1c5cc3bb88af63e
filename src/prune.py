"""Magnitude pruning of a trained run, fine-tuned briefly, accuracy against sparsity.

    python -m src.prune --run runs/mobilenet --sparsity 0.4 --sweep 0.2,0.4,0.6,0.8 --epochs 2
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import PruneConfig


def main(argv=None):
    """Parse the flags into a PruneConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(PruneConfig, argv, prog="python -m src.prune")
    from src.training.pruning import prune

    return prune(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
