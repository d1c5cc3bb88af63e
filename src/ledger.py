"""Every run and submission in one table, with Kaggle's scores beside the local ones.

    python -m src.ledger                                  # runs/ and submissions/ -> runs/runs.csv
    python -m src.ledger --competition dogs-vs-cats       # fetch the public (and private) scores first
    python -m src.ledger --runs runs --runs runs/kernels/me-train/output --submissions submissions

The table is written as runs.csv in the first --runs folder (or --out) and printed, each part
sorted by score in its metric's direction; cv_vs_lb.png plots local against public score. The library lives in
src.reports.ledger.
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.submit_settings import LedgerConfig


def main(argv=None):
    """Parse the flags into a LedgerConfig, then print and write the ledger; return its table."""
    cfg = parse_config(LedgerConfig, argv, prog="python -m src.ledger")
    from src.reports.ledger import write_ledger

    return write_ledger(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
