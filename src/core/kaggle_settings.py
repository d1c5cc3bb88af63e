"""The settings of `python -m src.kaggle_api`'s commands: one dataclass per command, its fields the flags.

    python -m src.kaggle_api download COMPETITION        # DownloadConfig
    python -m src.kaggle_api push train --competition X  # PushConfig

As src.core.settings is for the kit's other jobs; nothing heavy is imported (`--help` loads no TensorFlow).
"""
from __future__ import annotations

import dataclasses

from src.core.config import opt, positive


@dataclasses.dataclass
class DownloadConfig:
    """Download and unpack a competition's files (accept its rules on the website first)."""

    competition: str = opt("", "competition slug, as in kaggle.com/competitions/<slug>", positional=True)
    data: str = opt("", "target folder; empty: data/<competition>")
    force: bool = opt(False, "download and unpack again even when the files are there")
    keep_zip: bool = opt(False, "keep the downloaded archive after unpacking")


@dataclasses.dataclass
class SubmitFileConfig:
    """Submit a CSV to a competition and optionally wait for its public score."""

    competition: str = opt("", "competition slug", positional=True)
    file: str = opt("", "submission CSV (python -m src.submit writes one)", positional=True)
    message: str = opt("", "submission message: the description is '[NAME] MESSAGE', NAME the file's name without "
                           ".csv (the ledger finds the upload's scores by it)", short="-m")
    wait: bool = opt(False, "poll the submissions list until the score or the error is back; keep it in "
                            "kaggle_scores.csv beside the file")
    poll_seconds: float = opt(10.0, "seconds between polls with --wait", check=positive)
    timeout: float = opt(1800.0, "give up waiting after this many seconds", check=positive)


@dataclasses.dataclass
class UploadSrcConfig:
    """Publish src/ and requirements.txt as a private dataset (created, or a new version)."""

    dataset: str = opt("", "dataset as owner/slug (slug 6-50 characters)", positional=True)
    title: str = opt("Image classification kit source", "dataset title when it is created (6-50 characters)")
    notes: str = opt("", "version notes; empty: the git commit")


@dataclasses.dataclass
class UploadWeightsConfig:
    """Publish backbones' pretrained weight files as a private dataset (for kernels with the internet off)."""

    dataset: str = opt("", "dataset as owner/slug (slug 6-50 characters)", positional=True)
    backbones: str = opt("efficientnet_b0", "comma-separated backbone names (python -m src.backbones lists them)")
    title: str = opt("Pretrained backbone weights", "dataset title when it is created (6-50 characters)")
    notes: str = opt("", "version notes; empty: the backbones")


@dataclasses.dataclass
class PushConfig:
    """Write kernel-metadata.json beside a notebook of kernels/ and push it as a private kernel."""

    kernel: str = opt("", "notebook: a name in kernels/ (train) or a path to an .ipynb", positional=True)
    accelerator: str = opt("auto", "hardware of the run; auto: from --machine-shape, else gpu",
                           ("auto", "gpu", "tpu", "none"))
    machine_shape: str = opt("", "exact Kaggle machine shape (NvidiaTeslaT4: two T4s; TpuV5E8); empty: from "
                                 "--accelerator")
    id: str = opt("", "kernel id owner/slug; empty: <you>/<slug of the title>")
    title: str = opt("", "kernel title; empty: '<competition> <notebook>'")
    competition: str = opt("", "competition whose data the kernel reads (competition_sources)")
    src_dataset: str = opt("", "the dataset upload-src published (owner/slug): the kernel imports the kit from it")
    weights_dataset: str = opt("", "the dataset upload-weights published (owner/slug): --weights imagenet finds its "
                                   "files with the internet off")
    dataset: tuple[str, ...] = opt((), "another dataset to attach (owner/slug); repeatable")
    model: tuple[str, ...] = opt((), "a model to attach (owner/model/framework/variation/version); repeatable")
    internet: bool = opt(False, "internet in the kernel (competitions with hidden test sets forbid it)")
    param: tuple[str, ...] = opt((), "NAME=VALUE set in the notebook's parameters (a Python literal or text)")
    out: str = opt("runs/kernels", "where the pushed folder (notebook + kernel-metadata.json) is written")


@dataclasses.dataclass
class StatusConfig:
    """Print a kernel's state (queued, running, complete, error)."""

    kernel: str = opt("", "kernel id owner/slug", positional=True)


@dataclasses.dataclass
class OutputConfig:
    """Download a finished kernel's output files and log."""

    kernel: str = opt("", "kernel id owner/slug", positional=True)
    out: str = opt("", "target folder; empty: runs/kernels/<slug>/output")


# ---------------------------------------------------------------- prediction and the registry
