"""Pooled backbone features, computed once and cached on disk.

A frozen backbone without augmentation gives the same features every epoch, so screening in
`features` mode runs each backbone once over the training and validation images and trains
the head on the cached arrays (the Keras transfer-learning guide's feature extraction).
The cache key covers the backbone, weights, image size, resize and sharpening settings and
the exact image ids, so a changed split or setting never reuses stale features.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import PipelineOptions
from src.core.files import atomic_path
from src.models.classifier import Preprocess
from src.pipeline.images import make_eval_dataset


def features_key(spec, weights: str, opts: PipelineOptions, frame: pd.DataFrame) -> str:
    """Return a short hash naming one (backbone, weights, pipeline settings, images) combination."""
    weights_id = weights
    if Path(weights).exists():  # a file or folder: its identity is its path, size and time
        stat = Path(weights).stat()
        weights_id = f"{Path(weights).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    parts = [spec.name, weights_id, str(tuple(opts.image_size)), opts.resize, str(opts.sharpen),
             *frame["id"].astype(str)]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def extract_features(spec, frames: dict, weights: str, opts: PipelineOptions, cache_dir: str | Path,
                     strategy=None, multiple: int = 1) -> tuple[dict, float, int, int]:
    """Return ({role: features}, seconds extracting, images extracted now, backbone parameters).

    Roles already cached are read back; the backbone is built only when something is missing,
    and all missing roles go through one predict call (one trace, one pass). multiple: the last
    batch is padded to it (JAX data parallelism splits batches evenly) and the padding cut off.
    """
    import keras

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {role: cache_dir / f"{spec.layer_name}-{role}-{features_key(spec, weights, opts, frame)}.npy"
             for role, frame in frames.items()}
    params_file = cache_dir / f"{spec.layer_name}.params.json"
    result = {role: np.load(path) for role, path in paths.items() if path.is_file()}
    missing = [role for role in frames if role not in result]
    if not missing and params_file.is_file():
        return result, 0.0, 0, json.loads(params_file.read_text())["params"]
    # One pass over images that are never seen twice: no augmentation, nothing worth caching.
    plain = dataclasses.replace(opts, augment="none", mixup=0.0, cutmix=0.0, cache="none")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        inputs = keras.Input(shape=(*opts.image_size, 3))
        backbone = spec.build((*opts.image_size, 3), weights)
        extractor = keras.Model(inputs, backbone(Preprocess(spec.preprocessing)(inputs), training=False))
    params = backbone.count_params()  # convolutional backbones: the same at every input size
    params_file.write_text(json.dumps({"params": params}) + "\n")
    if not missing:
        return result, 0.0, 0, params
    frame = pd.concat([frames[role] for role in missing], ignore_index=True)
    dataset = make_eval_dataset(frame, np.zeros(len(frame), np.int32), plain, multiple).map(lambda x, _: x)
    start = time.perf_counter()
    array = extractor.predict(dataset, verbose=0).astype(np.float32)[:len(frame)]
    seconds = time.perf_counter() - start
    offset = 0
    for role in missing:
        result[role] = array[offset: offset + len(frames[role])]
        offset += len(frames[role])
        save_atomically(paths[role], result[role])
    return result, seconds, len(frame), params


def save_atomically(path: Path, array: np.ndarray) -> None:
    """Write the array so that an interrupted run never leaves a truncated cache file."""
    with atomic_path(path) as temp:
        np.save(temp, array)

