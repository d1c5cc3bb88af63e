"""A generated number-target competition (PetFinder Pawpularity's layout): the score is set by the image.

    root = write_number_competition(Path("data/number"), train=400, test=100, size=32, seed=0)

train/<hex>.jpg and test/<hex>.jpg; train.csv `Id`, two 0/1 metadata columns, `Pawpularity` an integer
1-100 (92-ish distinct values); test.csv with the metadata; sample_submission.csv `Id,Pawpularity` all
38.0; solution.csv the test scores. Each image is a grey background with a bright square whose side
and brightness grow with the score, plus pixel noise; the score itself carries noise (sd 6) the image
cannot show, so no model reaches RMSE 0. Used by tests/test_regression.py and
benchmarks/regression_table.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def draw(score: float, size: int, rng) -> Image.Image:
    """Return an RGB image whose square's side and brightness follow score (1-100)."""
    array = np.full((size, size, 3), 60, dtype=np.float64) + rng.normal(0, 12, (size, size, 3))
    side = max(2, int(round((0.15 + 0.7 * score / 100) * size)))
    top, left = rng.integers(0, size - side + 1, 2)
    array[top:top + side, left:left + side] = 90 + 1.5 * score + rng.normal(0, 8, (side, side, 3))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")


def scores(n: int, rng) -> tuple:
    """Return (the scores the images show, the integer targets 1-100 with noise): mean ~41, sd ~21."""
    shown = np.clip(rng.normal(41, 20, n), 1, 100)
    return shown, np.clip(np.round(shown + rng.normal(0, 6, n)), 1, 100).astype(int)


def write_number_competition(root: Path, train: int = 400, test: int = 100, size: int = 32, seed: int = 0) -> Path:
    """Write the competition into root (see the module docstring); return root."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    frames = {}
    for part, count in (("train", train), ("test", test)):
        (root / part).mkdir(parents=True, exist_ok=True)
        shown, target = scores(count, rng)
        ids = [f"{rng.integers(0, 2 ** 63):016x}" for _ in range(count)]
        for image_id, value in zip(ids, shown):
            draw(value, size, rng).save(root / part / f"{image_id}.jpg", quality=95)
        frames[part] = pd.DataFrame({"Id": ids, "Eyes": rng.integers(0, 2, count), "Blur": rng.integers(0, 2, count),
                                     "Pawpularity": target})
    frames["train"].to_csv(root / "train.csv", index=False)
    frames["test"].drop(columns=["Pawpularity"]).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"Id": frames["test"]["Id"], "Pawpularity": "38.0"}).to_csv(root / "sample_submission.csv",
                                                                              index=False)
    frames["test"][["Id", "Pawpularity"]].to_csv(root / "solution.csv", index=False)
    return root
