"""Look at a competition's data: class balance, sample grid, image sizes, the split.

    python -m src.eda --data data/demo --out runs/eda
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import EdaConfig


def main(argv=None):
    """Parse the flags into a EdaConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(EdaConfig, argv, prog="python -m src.eda")
    from src.data.report import run_eda

    return run_eda(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
