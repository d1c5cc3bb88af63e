"""Frozen-backbone screening: each backbone frozen under a fresh head, one table.

    python -m src.screen_backbones --data data/demo --backbones efficientnet_b0,resnet50,small_resnet \
        --epochs 3 --image-size 180 240 --mode features --weights imagenet --out runs/screen

Writes screening.csv (best first), screening.png and config.json into --out.
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import ScreenConfig


def main(argv=None):
    """Parse the flags into a ScreenConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(ScreenConfig, argv, prog="python -m src.screen_backbones")
    from src.training.screening import screen

    return screen(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
