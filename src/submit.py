"""A validated Kaggle submission from one or more runs, with test-time augmentation.

    python -m src.submit --data data/cars --run runs/effb0 --run runs/effb3 --tta --name blend \
        --ensemble-weights fit --out submissions

Writes submissions/NAME.csv (checked against the sample submission) and its report.
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.submit_settings import SubmitConfig


def main(argv=None):
    """Parse the flags into a SubmitConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(SubmitConfig, argv, prog="python -m src.submit")
    from src.inference.submission import submit

    return submit(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
