"""Input-pipeline speed, as ratios measured in one run: `python benchmarks/pipeline.py`.

Makes ~2,000 photo-like JPEGs of about 500x400 (the reference competition's mean is 607x445)
and prints images/second at 224x224 for:
  (a) bare decode + resize in tf.data;
  (b) the kit's training pipeline, `light` policy, no cache (first-epoch cost);
  (c) keras.utils.image_dataset_from_directory + equivalent Keras augmentation layers;
  (d) the kit's training pipeline in its second epoch with --cache memory;
  (e) the kit's evaluation pipeline in its second epoch with --cache memory;
  (f) the kit's training pipeline with `--augment albumentations:FILE`, a Compose equivalent to
      `light` (HorizontalFlip, Affine, RandomBrightnessContrast, each p=0.5) saved with A.save.
Variants are timed in interleaved rounds and each keeps its best pass: on this 2-vCPU VM the
whole process sometimes runs at about one vCPU's speed for a while (the bare pipeline, which
uses nothing of the kit, was seen at 785 and at 1,536 images/s in the same process), so
back-to-back passes of one variant would share one state of the machine.
The last line is one JSON object with the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SIZE = (224, 224)
BATCH = 32


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` smooth, noisy 'photos' around 500x400 into folder/<class>/; reuse them if present."""
    from PIL import Image

    existing = sorted(folder.rglob("*.jpg"))
    if len(existing) == count:
        return existing
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        width, height = int(rng.integers(450, 551)), int(rng.integers(350, 451))
        low = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
        image = np.asarray(Image.fromarray(low).resize((width, height), Image.BICUBIC), dtype=np.float32)
        image += rng.normal(0, 12, size=image.shape)
        path = folder / str(i % 10) / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def one_pass(ds: tf.data.Dataset) -> float:
    """Return images/second of one full pass over ds."""
    start, count = time.perf_counter(), 0
    for x, _ in ds:
        count += int(x.shape[0])
    return count / (time.perf_counter() - start)


def best_rates(variants: dict, rounds: int) -> dict:
    """Return each variant's best images/second over `rounds` interleaved passes (one per variant per round)."""
    best = {name: 0.0 for name in variants}
    for round_number in range(rounds):
        for name, ds in variants.items():
            best[name] = max(best[name], one_pass(ds))
        print(f"round {round_number + 1}/{rounds}: " + ", ".join(f"{k} {v:.0f}" for k, v in best.items()))
    return best


def bare_dataset(paths: list[Path]) -> tf.data.Dataset:
    """(a): read, decode, resize, batch: the least a pipeline can do."""
    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, SIZE), 0

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(tf.data.AUTOTUNE)


def keras_dataset(folder: Path) -> tf.data.Dataset:
    """(c): the Keras-tutorial way: image_dataset_from_directory, then augmentation layers on batches."""
    import keras

    augment = keras.Sequential([
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomZoom(0.1),
        keras.layers.RandomTranslation(0.0625, 0.0625),
        keras.layers.RandomRotation(15 / 360),
        keras.layers.RandomBrightness(0.2),
        keras.layers.RandomContrast(0.2),
    ])
    ds = keras.utils.image_dataset_from_directory(folder, image_size=SIZE, batch_size=BATCH, verbose=False)
    ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def albumentations_file(folder: Path) -> Path:
    """Save albumentations' equivalent of the `light` policy with A.save; return the file."""
    import albumentations as A

    path = folder / "light.json"
    A.save(A.Compose([A.HorizontalFlip(p=0.5),
                      A.Affine(scale=(0.9, 1.1), translate_percent=(-0.0625, 0.0625), rotate=(-15, 15), p=0.5),
                      A.RandomBrightnessContrast(0.2, 0.2, p=0.5)]), str(path))
    return path


def main() -> None:
    from src.core.config import PipelineOptions
    from src.data.imagefiles import scan_images
    from src.pipeline.images import make_eval_dataset, make_train_dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--folder", default="runs/bench/pipeline-images")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(args.folder)
    paths = make_images(folder, args.images)
    start = time.perf_counter()
    frame = scan_images(paths)
    scan_s = time.perf_counter() - start
    labels = np.array([int(p.parent.name) for p in paths])
    print(f"{len(paths)} JPEGs, mean {frame.width.mean():.0f}x{frame.height.mean():.0f}; "
          f"header scan (once per run, not in the figures): {scan_s:.2f} s")
    kit = PipelineOptions(image_size=SIZE, batch_size=BATCH, augment="light", cache="none")
    cached = PipelineOptions(image_size=SIZE, batch_size=BATCH, augment="light", cache="memory")
    albu = PipelineOptions(image_size=SIZE, batch_size=BATCH, cache="none",
                           augment=f"albumentations:{albumentations_file(folder.parent)}")
    variants = {"bare_ips": bare_dataset(paths), "kit_ips": make_train_dataset(frame, labels, kit),
                "keras_ips": keras_dataset(folder),
                "cached_ips": make_train_dataset(frame, labels, cached),
                "cached_eval_ips": make_eval_dataset(frame, labels, cached),
                "albumentations_ips": make_train_dataset(frame, labels, albu)}
    for name in ("cached_ips", "cached_eval_ips"):  # epoch 1 fills the cache; only later epochs count
        one_pass(variants[name])
    result = best_rates(variants, args.rounds)
    result.update(kit_over_bare=result["kit_ips"] / result["bare_ips"],
                  kit_over_keras=result["kit_ips"] / result["keras_ips"],
                  cached_over_bare=result["cached_ips"] / result["bare_ips"],
                  cached_eval_over_bare=result["cached_eval_ips"] / result["bare_ips"],
                  albumentations_over_bare=result["albumentations_ips"] / result["bare_ips"])
    for key, value in result.items():
        print(f"{key:>24}: {value:8.2f}")
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
