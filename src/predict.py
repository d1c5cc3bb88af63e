"""The most probable classes of a few images for a trained run.

    python -m src.predict --run runs/effb0 photo1.jpg photo2.jpg [--tta]
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.submit_settings import PredictConfig


def main(argv=None):
    """Parse the flags into a PredictConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(PredictConfig, argv, prog="python -m src.predict")
    from src.inference.image_predictions import print_predictions

    return print_predictions(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
