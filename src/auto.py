"""python -m src.auto: one command from a competition's folder to its best submission within a time budget.

    python -m src.auto --data data/demo --budget 6m --weights none
    python -m src.auto --data data/siim-isic-melanoma-classification --budget 8h

Measures each candidate backbone on this hardware, prints and draws the plan (OUT/plan.csv, plan.png),
screens, trains (K folds when the budget allows), predicts with --tta auto and keeps the submission that
scores best on the holdout; its last line names the file. The same command continues a killed run.
"""
from __future__ import annotations

import sys

from src.core.auto_settings import AutoConfig
from src.core.config import parse_config
from src.core.errors import Interrupted, run_cli


def main(argv=None):
    """Parse the flags into an AutoConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(AutoConfig, argv, prog="python -m src.auto")
    from src.autopilot.autopilot import run_auto

    try:
        return run_auto(cfg)
    except KeyboardInterrupt:  # Ctrl-C: the folder keeps what finished; say how to go on, not a traceback
        raise Interrupted(how_to_continue(cfg)) from None


def how_to_continue(cfg) -> str:
    """Return what an interrupted auto run left in its folder and how to continue it."""
    from src.runs.auto_state import is_auto_folder

    if not is_auto_folder(cfg.out):
        return f"{cfg.out} holds no auto run yet: run the command again"
    return f"the auto run in {cfg.out} keeps its measurements and finished steps; the same command continues it"


if __name__ == "__main__":
    sys.exit(run_cli(main))
