"""The embedded segmentation demo: `python -m src.demo --task segmentation [--out data/demo-segmentation]`.

Writes a HuBMAP-like folder from scikit-learn's bundled digits (no download): each digit scan enlarged to a
random size (32 to 64 px a side) in colour as train/<id>.png or test/<id>.png, its mask the digit's strokes
(ink above half, enlarged with nearest); one image in eight is blank paper, an empty mask. train.csv holds
id,img_height,img_width,rle (column-major, empty for a blank image), sample_submission.csv id,rle (empty),
solution.csv the test masks, kaggle_metric.json Dice. Same seed, same files.

    python -m src.demo --task segmentation
    python -m src.train --data data/demo-segmentation --backbone small_resnet --weights none \\
        --stage1-size 32 32 --stage2-size 64 64
    python -m src.submit --data data/demo-segmentation --run runs/small_resnet --tta
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from src.core.metric_choice import write_kaggle_metric
from src.data.demo_data import build_demo
from src.kinds.segmentation.rle import encode
from src.kinds.segmentation.tiles import resize

IMAGES = 480  # digits used: enough to learn strokes on a CPU in minutes
BLANK = 8     # one image in BLANK is blank paper


def build_segmentation_demo(cfg) -> Path:
    """Write the segmentation demo into cfg.out (unless it is already there); return the folder."""
    return build_demo(cfg, write_segmentation_files, "segmentation")


def write_segmentation_files(folder: Path, cfg) -> None:
    """Write train/, test/, train.csv, sample_submission.csv, solution.csv and kaggle_metric.json."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(digits.target))[:IMAGES]
    n_test = int(round(len(order) * cfg.test_fraction))
    rows = {"train": [], "test": []}
    for number, index in enumerate(order):
        part, image_id = ("test" if number < n_test else "train"), f"{number:04d}"
        blank = number % BLANK == BLANK - 1
        image, mask = render(digits.images[index] * (0 if blank else 1), rng)
        (folder / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / part / f"{image_id}.png")
        rows[part].append({"id": image_id, "img_height": mask.shape[0], "img_width": mask.shape[1],
                           "rle": encode(mask)})
    pd.DataFrame(rows["train"]).to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame(rows["test"]).sort_values("id")
    test[["id"]].assign(rle="").to_csv(folder / "sample_submission.csv", index=False)
    test[["id", "rle"]].to_csv(folder / "solution.csv", index=False)
    write_kaggle_metric(folder, "demo-segmentation", "Dice")
    empty = sum(not r["rle"] for part in rows.values() for r in part)
    print(f"demo: wrote {len(order) - n_test} training and {n_test} test images with their digits' strokes as "
          f"masks ({empty} blank, empty masks)")


def render(pixels: np.ndarray, rng: np.random.Generator) -> tuple:
    """Return (an RGB uint8 image of one 8x8 digit scan at a random size, its (H, W) uint8 stroke mask)."""
    height, width = int(rng.integers(32, 65)), int(rng.integers(32, 65))
    ink = pixels / 16.0
    paper, pen = rng.uniform(170, 255, size=3), rng.uniform(0, 90, size=3)
    small = paper[None, None, :] * (1 - ink[..., None]) + pen[None, None, :] * ink[..., None]
    image = resize(small.astype(np.float32), (height, width))  # linear: soft edges, as a scan's
    noisy = np.clip(image + rng.normal(0, 6, size=image.shape), 0, 255).astype(np.uint8)
    return noisy, resize((ink > 0.5).astype(np.uint8), (height, width), "nearest")
