"""The backbone registry as a table.

    python -m src.backbones [--no-params]
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import BackbonesConfig


def main(argv=None):
    """Parse the flags into a BackbonesConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(BackbonesConfig, argv, prog="python -m src.backbones")
    from src.models.backbones import print_table

    return print_table(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
