"""The backbones' pretrained files as a private Kaggle dataset: `python -m src.kaggle_api upload-weights`.

Kept apart from src.kaggle.kernels: it needs the backbone registry (and so Keras), which the
other Kaggle commands do not load.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from src.core.errors import KitError
from src.core.kaggle_settings import UploadWeightsConfig
from src.kaggle.client import connect, split_ref
from src.kaggle.kernels import publish_dataset
from src.models.backbones import parse_backbones
from src.models.weights import ensure_cached


def upload_weights(cfg: UploadWeightsConfig) -> dict:
    """Publish the backbones' pretrained files as a private dataset, for kernels with the internet off.

    Each file comes through its library's own download and cache (where the internet is on), so
    it is the file the library expects; in a kernel with the dataset attached, --weights imagenet
    finds it under /kaggle/input.
    """
    owner, slug = split_ref(cfg.dataset, "upload-weights DATASET")
    specs = parse_backbones(cfg.backbones)
    files = []
    for spec in specs:  # before Kaggle is asked: a backbone without pretrained weights, or offline, fails here
        if not spec.pretrained:
            raise KitError(f"upload-weights: {spec.name} has no pretrained weights to upload")
        files.append(ensure_cached(spec))
    api = connect()
    with tempfile.TemporaryDirectory() as staging:
        folder = Path(staging) / slug
        folder.mkdir()
        for path in files:
            shutil.copy2(path, folder / path.name)
        meta = {"id": f"{owner}/{slug}", "title": cfg.title, "licenses": [{"name": "other"}],
                "subtitle": "pretrained backbone weights for the image classification kit"}
        (folder / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        result = publish_dataset(api, cfg.dataset, folder, cfg.notes or f"weights of {cfg.backbones}", "upload-weights")
    return {**result, "files": [p.name for p in files]}
