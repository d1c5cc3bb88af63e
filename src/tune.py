"""Head search with keras-tuner's Hyperband on a frozen backbone's cached features.

    python -m src.tune --data data/cars --backbone efficientnet_b3 --image-size 300 300 --max-epochs 30
    python -m src.train --config runs/tune/best_config.json         # trains with what was found
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import TuneConfig


def main(argv=None):
    """Parse the flags into a TuneConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(TuneConfig, argv, prog="python -m src.tune")
    from src.training.tuning import tune

    return tune(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
