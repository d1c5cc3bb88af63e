"""The one command that talks to Kaggle: data, submissions, the kit as a dataset, kernels.

    python -m src.kaggle_api download dogs-vs-cats [--data data/dogs-vs-cats]
    python -m src.kaggle_api submit dogs-vs-cats submissions/blend.csv -m "effb3 tta" --wait
    python -m src.kaggle_api upload-src me/image-kit-src
    python -m src.kaggle_api upload-weights me/backbone-weights --backbones efficientnet_b3,convnext_tiny
    python -m src.kaggle_api push train --competition dogs-vs-cats --src-dataset me/image-kit-src \
        --accelerator tpu --param BACKBONE=efficientnet_b3
    python -m src.kaggle_api status me/dogs-vs-cats-train
    python -m src.kaggle_api output me/dogs-vs-cats-train [--out runs/kernels/dogs-vs-cats-train/output]

Credentials: KAGGLE_API_TOKEN, ~/.kaggle/access_token or ~/.kaggle/kaggle.json (src.kaggle.client).
"""
from __future__ import annotations

import sys

from src.core import kaggle_settings as settings
from src.core.config import parse_config
from src.core.errors import KitError, run_cli

COMMANDS = {"download": (settings.DownloadConfig, "src.kaggle.client", "download"),
            "submit": (settings.SubmitFileConfig, "src.kaggle.client", "submit_file"),
            "upload-src": (settings.UploadSrcConfig, "src.kaggle.kernels", "upload_src"),
            "upload-weights": (settings.UploadWeightsConfig, "src.kaggle.weights_dataset", "upload_weights"),
            "push": (settings.PushConfig, "src.kaggle.kernels", "push"),
            "status": (settings.StatusConfig, "src.kaggle.kernels", "kernel_status"),
            "output": (settings.OutputConfig, "src.kaggle.kernels", "kernel_output")}
USAGE = f"python -m src.kaggle_api {{{','.join(COMMANDS)}}} ... (COMMAND --help says more)"


def main(argv=None):
    """Run one subcommand: download, submit, upload-src, push, status or output; return its result."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"usage: {USAGE}")
        return None
    if not argv or argv[0] not in COMMANDS:
        given = repr(argv[0]) if argv else "nothing"
        raise KitError(f"expected a command ({', '.join(COMMANDS)}), got {given}; "
                       "python -m src.kaggle_api COMMAND --help says more")
    cls, module, function = COMMANDS[argv[0]]
    cfg = parse_config(cls, argv[1:], prog=f"python -m src.kaggle_api {argv[0]}")
    return getattr(importlib.import_module(module), function)(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
