"""Build the embedded demo competition from scikit-learn's digits (no download).

    python -m src.demo --out data/demo
    python -m src.demo --task segmentation     # data/demo-segmentation: digits' strokes as masks
"""
from __future__ import annotations

import dataclasses
import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import DemoConfig


def main(argv=None):
    """Parse the flags into a DemoConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(DemoConfig, argv, prog="python -m src.demo")
    if cfg.task == "segmentation":  # masks: a HuBMAP-like folder, beside the classes' demo unless --out says
        from src.kinds.segmentation.demo import build_segmentation_demo

        out = "data/demo-segmentation" if cfg.out == "data/demo" else cfg.out
        return build_segmentation_demo(dataclasses.replace(cfg, out=out))
    from src.data.demo_data import build_demo

    return build_demo(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
