"""python -m src.stack: a second stage over runs' out-of-fold predictions and the table, best out of fold.

    python -m src.stack --data data/isic24 --runs runs/cnn,runs/cnn2 --metric pauc@0.8 \
        --group-column patient_id --name stack --seeds 3

Fits LightGBM, a logistic regression and their blend on K-fold runs' out-of-fold predictions plus the
metadata table; prints each one's out-of-fold score (and the images alone, the table alone) in one line,
keeps the best (the runs alone when nothing beats them); writes submissions/NAME.csv (checked against the
sample), its scores, feature importance (CSV and PNG) and NAME.json (the choice; python -m src.ledger lists it).
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.stack_settings import StackConfig


def main(argv=None):
    """Parse the flags into a StackConfig, then run the stack; return its result (notebooks show it)."""
    cfg = parse_config(StackConfig, argv, prog="python -m src.stack")
    from src.training.stacking import stack

    return stack(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
