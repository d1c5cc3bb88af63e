"""A user's own albumentations pipeline as the training augmentation: `--augment albumentations:FILE`.

    import albumentations as A
    A.save(A.Compose([A.HorizontalFlip(), A.CoarseDropout(), ...]), "aug.json")   # or aug.yaml
    python -m src.train ... --augment albumentations:aug.json

The Compose is read with albumentations' own `A.load` and applied to each image inside tf.data
through tf.numpy_function. It runs in Python, per image, on the CPU, so it is slower than the
built-in policies (benchmarks/pipeline.py prints both) and cannot be compiled by XLA; it is the
way to use a transform the kit does not have (CoarseDropout, GridDistortion, CLAHE, ...).
albumentations is imported only when such a policy is used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from src.core.errors import KitError

PREFIX = "albumentations:"


def is_albumentations(policy: str) -> bool:
    """Return True for an `albumentations:FILE` policy."""
    return policy.startswith(PREFIX)


def policy_file(policy: str) -> Path:
    """Return the file an `albumentations:FILE` policy names; a missing file is an error naming it."""
    path = Path(policy[len(PREFIX):])
    if not path.is_file():
        raise KitError(f"--augment {policy}: no such file {path}; expected a Compose saved with albumentations' "
                       "A.save(transform, 'aug.json') (or .yaml)")
    return path


def load_compose(policy: str):
    """Return the albumentations Compose saved in the policy's file (JSON or YAML, by its extension)."""
    import albumentations as A

    path = policy_file(policy)
    data_format = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        return A.load(str(path), data_format=data_format)
    except Exception as err:  # albumentations raises KeyError/ValueError/YAMLError for a foreign file
        raise KitError(f"--augment {policy}: {path} is not a Compose saved by albumentations' A.save "
                       f"({type(err).__name__}: {err})") from None


def make_albumentations_augmenter(policy: str):
    """Return image -> image applying the saved Compose; float32 HxWx3 in [0, 255] in and out, same size.

    A transform that changes the size (a crop) is resized back, so batches keep one static shape.
    """
    import cv2  # albumentations' own dependency (opencv-python-headless)

    transform = load_compose(policy)

    def apply(image: np.ndarray) -> np.ndarray:
        pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        out = transform(image=pixels)["image"]
        if out.shape[:2] != pixels.shape[:2]:
            out = cv2.resize(out, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_LINEAR)
        if out.ndim == 2:
            out = np.repeat(out[..., None], 3, axis=2)
        return out.astype(np.float32)

    def augment(image: tf.Tensor) -> tf.Tensor:
        result = tf.numpy_function(apply, [image], tf.float32, stateful=True)
        result.set_shape(image.shape)
        return result

    return augment
