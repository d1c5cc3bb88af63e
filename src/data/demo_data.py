"""The embedded demo competition: `python -m src.demo [--out data/demo] [--seed 0]`.

Writes a folder in the sf-dl-car-classification layout from scikit-learn's bundled
handwritten digits (real scans, no download): RGB JPEGs of varied sizes and aspect ratios in
train/<digit>/, test_upload/, sample-submission.csv (Id,Category) and solution.csv (the true
test labels; the kit never reads it except to score the demo). Same seed, same files.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from src.core.errors import KitError
from src.core.settings import DemoConfig

MANIFEST = "demo.json"


def build_demo(cfg: DemoConfig, write_files=None, task: str = "") -> Path:
    """Write the demo competition into cfg.out (unless it is already there) and return the folder.

    write_files(folder, cfg) writes another demo's files (the segmentation demo's, src.kinds.segmentation.demo),
    its task recorded in demo.json so one demo folder is never taken for the other.
    """
    out = Path(cfg.out)
    wanted = {"seed": cfg.seed, "test_fraction": cfg.test_fraction, "version": 1, **({"task": task} if task else {})}
    if out.exists():
        manifest = out / MANIFEST
        if not manifest.is_file():
            raise KitError(f"{out} exists and is not a demo folder (no {MANIFEST}): "
                           "choose another --out; nothing was written")
        if json.loads(manifest.read_text()) == wanted and not cfg.force:
            print(f"demo: {out} already holds this demo (seed {cfg.seed}); --force rebuilds it")
            return out
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (write_files or write_demo_files)(staging, cfg)
    (staging / MANIFEST).write_text(json.dumps(wanted) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # only a finished demo ever appears under the real name
    return out


def write_demo_files(folder: Path, cfg: DemoConfig) -> None:
    """Write train/<digit>/*.jpg, test_upload/*.jpg, sample-submission.csv and solution.csv."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(digits.target))
    n_test = int(round(len(order) * cfg.test_fraction))
    test_rows = []
    for number, index in enumerate(order):
        name = f"{number:04d}.jpg"
        label = int(digits.target[index])
        if number < n_test:
            path = folder / "test_upload" / name
            test_rows.append((name, label))
        else:
            path = folder / "train" / str(label) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_digit(digits.images[index], rng))
    test_rows.sort()
    write_csv(folder / "sample-submission.csv", [(name, 0) for name, _ in test_rows])
    write_csv(folder / "solution.csv", test_rows)
    print(f"demo: wrote {len(order) - n_test} training and {n_test} test images")


def render_digit(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """Return JPEG bytes of one 8x8 digit scan, enlarged to a random size and aspect, in colour."""
    from PIL import Image

    height = int(rng.integers(40, 97))
    width = int(np.clip(height * rng.uniform(0.7, 1.4), 32, 128))
    ink = pixels / 16.0
    paper = rng.uniform(170, 255, size=3)
    pen = rng.uniform(0, 90, size=3)
    small = paper[None, None, :] * (1 - ink[..., None]) + pen[None, None, :] * ink[..., None]
    image = Image.fromarray(small.astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, size=(height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_csv(path: Path, rows) -> None:
    """Write Id,Category rows."""
    path.write_text("Id,Category\n" + "".join(f"{name},{label}\n" for name, label in rows))
