"""The one exception type the kit raises for bad input, and how CLIs show it."""
from __future__ import annotations

import sys

from src.core.backend import choose_keras_backend
from src.core.console import quiet_native_logs


class KitError(Exception):
    """Bad input from the user: the message names the file, column or flag and what was expected."""


def run_cli(main, argv=None) -> int:
    """Run a CLI `main(argv)`; a KitError becomes one `error:` line and exit code 2, no traceback.

    Exists so every `python -m src.<module>` reports bad input the same way, and prints its own
    lines rather than TensorFlow's C++ start-up noise (src.core.console).
    """
    with quiet_native_logs():
        choose_keras_backend()  # before the job imports Keras: on Kaggle's TPU VMs only JAX reaches the TPU
        try:
            main(argv)
        except KitError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0
