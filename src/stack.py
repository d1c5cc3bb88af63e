"""python -m src.stack: gradient-boosted trees over K-fold runs' out-of-fold predictions and the metadata table.

    python -m src.stack --data data/isic24 --runs runs/cnn,runs/cnn2 --metric pauc@0.8 \
        --group-column patient_id --name stack --seeds 3

Prints the out-of-fold score of the images alone, the table alone and the stack side by side; writes
submissions/NAME.csv (checked against the sample), its scores, feature importance (CSV and PNG) and
NAME.json (python -m src.ledger lists it).
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
