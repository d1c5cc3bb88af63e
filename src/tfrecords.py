"""TFRecord shards of a competition's saved split and test images, for TPUs.

    python -m src.tfrecords --data data/cars --out data/cars-tfrec     # then train with --data data/cars-tfrec
"""
from __future__ import annotations

import sys

from src.core.config import parse_config
from src.core.errors import run_cli
from src.core.settings import TfrecordsConfig


def main(argv=None):
    """Parse the flags into a TfrecordsConfig, then run the job; return its result (notebooks show it).

    The library is imported after parsing: `--help` and a bad flag never load TensorFlow.
    """
    cfg = parse_config(TfrecordsConfig, argv, prog="python -m src.tfrecords")
    from src.data.shard_writer import write_shards

    return write_shards(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
