"""The segmentation benchmark: `python benchmarks/segmentation.py [OUT] [NAMES]` (about 18 minutes here on the shared 2-core machine;
NAMES: comma-separated competitions to run, the others' rows kept from OUT/segmentation.csv).

Three generated mask competitions that differ in size, image size, difficulty and seed, each with its solution
held out of the data folder (OUT/<name>/solution.csv):
- shapes-a: HuBMAP-like (id,img_height,img_width,rle), ellipses and rectangles on a noisy background, images of
  40 to 64 px, a quarter empty; easy.
- strokes-b: the embedded demo's digits (src.kinds.segmentation.demo: strokes of scikit-learn's digits at 32 to 64
  px, one image in eight blank), another seed.
- steel-c: Severstal-like (ImageId,ClassId,EncodedPixels, a row per image and class), 40x120 px strips, two
  classes (thin scratches, faint blotches), half the images empty, low contrast; hard.

Each is measured as a new user runs the kit: `src.train --data D --backbone small_resnet --weights none` with the
stage sizes and epochs below and nothing else, then `src.submit --data D --run R` without TTA and with `--tta`;
scored on the held-back solution (mean Dice over the sample's rows: an (image, class) pair each; an empty truth
answered empty scores 1) beside
- the empty answer (every row empty), and
- a plain U-Net written here (three conv-BN-ReLU blocks down, two up with skip connections, a sigmoid per class),
  trained with Adam 1e-3 on binary cross-entropy for as many epochs as the kit's two stages together, at stage
  2's size, on all training images (the kit holds a fifth out); probabilities resized back to each image's size,
  thresholded at 0.5.
Also the kit's own holdout Dice before and after the post-processing it tunes there (RUN/segmentation.json) and
its speed: training images x epochs run / seconds of the whole src.train call, and (test + holdout) images x views
/ seconds of the whole src.submit call (both include start-up, model building and reading images).
The last line is one JSON object: per competition those numbers, and kit_no_worse (the kit's best submission,
with or without TTA, no worse than the plain U-Net on every competition).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

# name: (generator, training images, test images, stage sizes ((h, w) stage 1, (h, w) stage 2), difficulty, seed,
#        epochs (stage 1, stage 2))
COMPETITIONS = {
    "shapes-a": ("shapes", 240, 80, ((32, 32), (48, 48)), 0.3, 1, (8, 4)),
    "strokes-b": ("strokes", 384, 96, ((32, 32), (48, 48)), 0.5, 2, (8, 4)),
    "steel-c": ("steel", 300, 100, ((20, 60), (40, 120)), 0.8, 3, (8, 4)),
}


# -- the competitions
def noisy_background(rng, size, difficulty: float) -> np.ndarray:
    """Return a float (h, w, 3) background: a random tint, a gradient and noise growing with difficulty."""
    height, width = size
    base = rng.uniform(40, 110, 3)
    ramp = np.linspace(0, rng.uniform(-30, 30), width)[None, :, None]
    return base[None, None, :] + ramp + rng.normal(0, 8 + 30 * difficulty, (height, width, 3))


def ellipse(size, rng, scale: float = 1.0) -> np.ndarray:
    height, width = size
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    ry, rx = rng.uniform(0.1, 0.3) * height * scale, rng.uniform(0.1, 0.3) * width * scale
    yy, xx = np.mgrid[:height, :width]
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)


def rectangle(size, rng) -> np.ndarray:
    height, width = size
    top, left = int(rng.integers(0, height * 2 // 3)), int(rng.integers(0, width * 2 // 3))
    mask = np.zeros(size, np.uint8)
    mask[top:top + int(rng.integers(4, height // 3 + 5)), left:left + int(rng.integers(4, width // 3 + 5))] = 1
    return mask


def scratch(size, rng) -> np.ndarray:
    """A thin slanted line two or three pixels wide."""
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    x0, slope = rng.uniform(0.1, 0.9) * width, rng.uniform(-1.5, 1.5)
    return (np.abs(xx - (x0 + slope * (yy - height / 2))) < rng.uniform(1.0, 1.6)).astype(np.uint8)


def paint(image: np.ndarray, mask: np.ndarray, colour, strength: float) -> np.ndarray:
    return image + mask[..., None] * strength * (np.asarray(colour)[None, None, :] - image)


def encode_cols(mask: np.ndarray) -> str:
    """Column-major, 1-based 'start length' pairs (Kaggle's run-length text); '' for an empty mask."""
    flat = np.concatenate([[0], mask.T.reshape(-1).astype(np.uint8), [0]])
    runs = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs))


def decode_cols(text, size) -> np.ndarray:
    """Return the (h, w) 0/1 mask of column-major run-length text ('', NaN or -1: empty)."""
    mask = np.zeros(size[0] * size[1], np.uint8)
    text = "" if not isinstance(text, str) else text.strip()
    if text and text != "-1":
        values = np.asarray(text.split(), int)
        for start, length in zip(values[::2], values[1::2]):
            mask[start - 1:start - 1 + length] = 1
    return mask.reshape(size[1], size[0]).T


def write_metric(root: Path, name: str) -> None:
    (root / "kaggle_metric.json").write_text(json.dumps({"competition": root.name, "evaluation_metric": name}))


def write_shapes(root: Path, train: int, test: int, difficulty: float, seed: int) -> pd.DataFrame:
    """HuBMAP-like: one class, images of 40-64 px, a quarter empty; return the solution (id, height, width, rle)."""
    rng = np.random.default_rng(seed)
    rows = {"train": [], "test": []}
    for number in range(train + test):
        part = "train" if number < train else "test"
        size = (int(rng.integers(40, 65)), int(rng.integers(40, 65)))
        image, mask = noisy_background(rng, size, difficulty), np.zeros(size, np.uint8)
        if rng.uniform() > 0.25:
            for _ in range(int(rng.integers(1, 3))):
                shape = ellipse(size, rng) if rng.uniform() < 0.6 else rectangle(size, rng)
                mask |= shape
        # a distractor of another colour (not in the mask) makes colour, not brightness alone, the cue
        image = paint(image, ellipse(size, rng, 0.7) & (1 - mask), rng.uniform(30, 90, 3), 0.8)
        image = paint(image, mask, (200, 150, 170), 1.0 - 0.6 * difficulty)
        image_id = f"{number:05d}"
        (root / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / part / f"{image_id}.png")
        rows[part].append({"id": image_id, "img_height": size[0], "img_width": size[1], "rle": encode_cols(mask)})
    pd.DataFrame(rows["train"]).to_csv(root / "train.csv", index=False)
    solution = pd.DataFrame(rows["test"])
    solution[["id"]].assign(rle="").to_csv(root / "sample_submission.csv", index=False)
    write_metric(root, "Dice")
    return solution.rename(columns={"img_height": "height", "img_width": "width"})


def write_strokes(root: Path, train: int, test: int, difficulty: float, seed: int) -> pd.DataFrame:
    """The embedded demo's digits at another seed; its solution.csv moved out of the folder."""
    from src.kinds.segmentation.demo import write_segmentation_files

    root.mkdir(parents=True, exist_ok=True)
    write_segmentation_files(root, types.SimpleNamespace(seed=seed, test_fraction=test / (train + test)))
    solution = pd.read_csv(root / "solution.csv", dtype=str, keep_default_na=False)
    (root / "solution.csv").unlink()
    sizes = {p.stem: Image.open(p).size for p in (root / "test").glob("*.png")}
    return solution.assign(height=[sizes[i][1] for i in solution["id"]], width=[sizes[i][0] for i in solution["id"]])


def write_steel(root: Path, train: int, test: int, difficulty: float, seed: int) -> pd.DataFrame:
    """Severstal-like: 40x120 strips, class 1 scratches and class 2 blotches, half the images empty; a row per image
    and class present in train.csv; the sample a row per test image and class."""
    rng = np.random.default_rng(seed)
    size, rows, solution = (40, 120), [], []
    for number in range(train + test):
        part = "train_images" if number < train else "test_images"
        name = f"{number:05x}{'ab' if number < train else 'cd'}.jpg"
        image = noisy_background(rng, size, difficulty) * 0 + rng.uniform(90, 120) + \
            rng.normal(0, 6 + 20 * difficulty, (*size, 1))  # grey steel
        masks = [np.zeros(size, np.uint8), np.zeros(size, np.uint8)]
        kind = rng.uniform()
        if 0.5 <= kind < 0.8 or kind >= 0.95:
            masks[0] = scratch(size, rng)
        if kind >= 0.8:
            masks[1] = ellipse(size, rng, 1.2)
        image = paint(image, masks[0], (220, 220, 220), 1.0 - 0.65 * difficulty)
        image = paint(image, masks[1], (40, 40, 40), 1.0 - 0.75 * difficulty)
        (root / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / part / name, quality=95)
        for class_id, mask in enumerate(masks, start=1):
            if part == "train_images" and mask.any():
                rows.append({"ImageId": name, "ClassId": class_id, "EncodedPixels": encode_cols(mask)})
            if part == "test_images":
                solution.append({"ImageId": name, "ClassId": class_id, "rle": encode_cols(mask),
                                 "height": size[0], "width": size[1]})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    solution = pd.DataFrame(solution)
    solution[["ImageId"]].assign(EncodedPixels="1 1", ClassId=solution["ClassId"]).to_csv(
        root / "sample_submission.csv", index=False)
    write_metric(root, "Mean Dice Coefficient")
    return solution


GENERATORS = {"shapes": write_shapes, "strokes": write_strokes, "steel": write_steel}


# -- scores
def keys_of(solution: pd.DataFrame) -> list:
    return ["ImageId", "ClassId"] if "ClassId" in solution.columns else ["id"]


def score_frame(frame: pd.DataFrame, solution: pd.DataFrame) -> float:
    """Return the mean Dice over the solution's rows of a submission (its target column: the one not a key)."""
    keys = keys_of(solution)
    target = next(c for c in frame.columns if c not in keys)
    frame = frame.assign(**{k: frame[k].astype(str) for k in keys})
    answers = dict(zip(map(tuple, frame[keys].to_numpy()), frame[target]))
    scores = []
    for row in solution.to_dict("records"):
        size = (int(row["height"]), int(row["width"]))
        truth = decode_cols(row["rle"], size).astype(bool)
        answer = decode_cols(answers[tuple(str(row[k]) for k in keys)], size).astype(bool)
        total = truth.sum() + answer.sum()
        scores.append(1.0 if total == 0 else 2.0 * (truth & answer).sum() / total)
    return float(np.mean(scores))


def empty_frame(solution: pd.DataFrame) -> pd.DataFrame:
    keys = keys_of(solution)
    return solution[keys].astype(str).assign(rle="")


# -- the plain U-Net written here
def plain_unet(size, classes: int):
    """Three conv-BN-ReLU blocks down (16, 32, 64 filters, max-pooling between), two up (upsampling, the skip
    concatenated, conv-BN-ReLU), a 1x1 sigmoid per class. BatchNorm at momentum 0.9 (0.99 lags a short run)."""
    import keras

    def block(x, filters):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        return x

    inputs = keras.Input((*size, 3))
    d1 = block(inputs, 16)
    d2 = block(keras.layers.MaxPooling2D()(d1), 32)
    bottom = block(keras.layers.MaxPooling2D()(d2), 64)
    u2 = block(keras.layers.Concatenate()([keras.layers.UpSampling2D()(bottom), d2]), 32)
    u1 = block(keras.layers.Concatenate()([keras.layers.UpSampling2D()(u2), d1]), 16)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1, activation="sigmoid")(u1))


def read_training(data: Path, generator: str, size) -> tuple:
    """Return (images (n, h, w, 3) floats 0-1 at size, masks (n, h, w, classes), classes) of every training image."""
    height, width = size

    def load(path):
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((width, height), Image.BILINEAR), np.float32) / 255.0

    def shrink(mask):
        return np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))

    if generator == "steel":
        table = pd.read_csv(data / "train.csv")
        files = sorted(p.name for p in (data / "train_images").iterdir())
        images = np.stack([load(data / "train_images" / f) for f in files])
        masks = np.zeros((len(files), height, width, 2), np.float32)
        index = {f: i for i, f in enumerate(files)}
        for row in table.itertuples():
            masks[index[row.ImageId], ..., int(row.ClassId) - 1] = shrink(decode_cols(row.EncodedPixels, (40, 120)))
        return images, masks, ["1", "2"]
    table = pd.read_csv(data / "train.csv", dtype={"id": str}, keep_default_na=False)
    images = np.stack([load(data / "train" / f"{i}.png") for i in table["id"]])
    masks = np.stack([shrink(decode_cols(r, (int(h), int(w))))[..., None] for r, h, w in
                      zip(table["rle"], table["img_height"], table["img_width"])]).astype(np.float32)
    return images, masks, ["mask"]


def plain_unet_answers(data: Path, generator: str, solution: pd.DataFrame, size, epochs: int, seed: int):
    """Train the plain U-Net on every training image; return its test answers as the sample's rows."""
    import keras

    keras.utils.set_random_seed(seed)
    images, masks, classes = read_training(data, generator, size)
    model = plain_unet(size, len(classes))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(images, masks, batch_size=16, epochs=epochs, verbose=0, shuffle=True)
    keys, folder = keys_of(solution), ("test_images" if generator == "steel" else "test")
    ids = list(dict.fromkeys(solution[keys[0]].astype(str)))
    suffix = "" if generator == "steel" else ".png"
    test = np.stack([np.asarray(Image.open(data / folder / f"{i}{suffix}").convert("RGB").resize(
        (size[1], size[0]), Image.BILINEAR), np.float32) / 255.0 for i in ids])
    probs = model.predict(test, batch_size=32, verbose=0)
    sizes = dict(zip(solution[keys[0]].astype(str), zip(solution["height"].astype(int), solution["width"].astype(int))))
    rows = []
    for image_id, p in zip(ids, probs):
        h, w = sizes[image_id]
        for c, name in enumerate(classes):
            full = np.asarray(Image.fromarray(p[..., c]).resize((w, h), Image.BILINEAR))
            rows.append({keys[0]: image_id, **({"ClassId": name} if len(keys) > 1 else {}),
                         "rle": encode_cols((full > 0.5).astype(np.uint8))})
    keras.backend.clear_session()
    return pd.DataFrame(rows)


# -- the kit as a new user runs it
def run_kit(data: Path, work: Path, sizes, epochs: tuple) -> dict:
    """Train, then submit without and with --tta; return the two frames, the holdout Dice and the speeds."""
    from src.submit import main as submit_main
    from src.train import main as train_main

    run = work / "run"
    started = time.monotonic()
    train_main(["--data", str(data), "--backbone", "small_resnet", "--weights", "none",
                "--stage1-size", *map(str, sizes[0]), "--stage2-size", *map(str, sizes[1]),
                "--stage1-epochs", str(epochs[0]), "--stage2-epochs", str(epochs[1]), "--out", str(run)])
    train_seconds = time.monotonic() - started
    settings = json.loads((run / "segmentation.json").read_text())
    holdout = settings["holdout_images"]
    epochs_run = len(pd.read_csv(run / "history.csv"))
    found = {"holdout_raw": settings["holdout_before"], "holdout_tuned": settings["holdout"],
             "holdout_images": holdout, "epochs_run": epochs_run, "train_seconds": train_seconds}
    frames, speeds = {}, {}
    for name, flags in (("kit", []), ("kit_tta", ["--tta"])):
        started = time.monotonic()
        result = submit_main(["--data", str(data), "--run", str(run), *flags, "--out", str(work / "subs"),
                              "--name", name, "--overwrite"])
        seconds = time.monotonic() - started
        frames[name] = pd.read_csv(result["path"], dtype=str, keep_default_na=False)
        views = 3 if flags else 1
        speeds[name] = (len(frames[name][frames[name].columns[0]].unique()) + holdout) * views / seconds
    found.update(frames=frames, predict_images_per_s=speeds["kit"], predict_tta_images_per_s=speeds["kit_tta"])
    return found


def measure(name: str, out: Path) -> dict:
    generator, train, test, sizes, difficulty, seed, epochs = COMPETITIONS[name]
    work = out / name
    shutil.rmtree(work, ignore_errors=True)
    data = work / name  # its own name: src.train keys runs/splits/ by the folder's name
    data.mkdir(parents=True)
    solution = GENERATORS[generator](data, train, test, difficulty, seed)
    solution.to_csv(work / "solution.csv", index=False)
    solution = pd.read_csv(work / "solution.csv", dtype=str, keep_default_na=False)
    kit = run_kit(data, work, sizes, epochs)
    train_images = train - kit["holdout_images"]  # the kit trains on the rest
    started = time.monotonic()
    plain = plain_unet_answers(data, generator, solution, sizes[1], sum(epochs), seed)
    plain_seconds = time.monotonic() - started
    scores = {"empty": score_frame(empty_frame(solution), solution), "plain_unet": score_frame(plain, solution),
              "kit": score_frame(kit["frames"]["kit"], solution), "kit_tta": score_frame(kit["frames"]["kit_tta"],
                                                                                          solution)}
    return {"competition": name, "classes": 2 if generator == "steel" else 1, "train": train, "test": test,
            "size": "/".join(f"{h}x{w}" for h, w in sizes), "difficulty": difficulty, "seed": seed,
            **{k: round(v, 4) for k, v in scores.items()},
            "kit_holdout_raw": round(kit["holdout_raw"], 4), "kit_holdout_tuned": round(kit["holdout_tuned"], 4),
            "train_images_per_s": round(train_images * kit["epochs_run"] / kit["train_seconds"], 1),
            "predict_images_per_s": round(kit["predict_images_per_s"], 1),
            "predict_tta_images_per_s": round(kit["predict_tta_images_per_s"], 1),
            "kit_minutes": round(kit["train_seconds"] / 60, 2), "plain_minutes": round(plain_seconds / 60, 2),
            "kit_no_worse": bool(max(scores["kit"], scores["kit_tta"]) >= scores["plain_unet"])}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "runs/segmentation-bench")
    names = [n for n in argv[1].split(",") if n] if len(argv) > 1 else list(COMPETITIONS)  # "": the table again
    out.mkdir(parents=True, exist_ok=True)
    kept = out / "segmentation.csv"  # rows of competitions not named are kept from an earlier run
    rows = {r["competition"]: r for r in pd.read_csv(kept).to_dict("records")} if kept.is_file() else {}
    for name in names:
        print(f"== {name}", flush=True)
        rows[name] = measure(name, out)
        print(json.dumps(rows[name]), flush=True)
        pd.DataFrame([rows[n] for n in COMPETITIONS if n in rows]).to_csv(kept, index=False)
    rows = [rows[n] for n in COMPETITIONS if n in rows]
    table = pd.DataFrame(rows)
    shown = ["competition", "classes", "train", "size", "difficulty", "empty", "plain_unet", "kit", "kit_tta",
             "kit_holdout_raw", "kit_holdout_tuned", "train_images_per_s", "predict_images_per_s",
             "predict_tta_images_per_s", "kit_minutes", "plain_minutes"]
    print(table[shown].to_string(index=False))
    keys = ("empty", "plain_unet", "kit", "kit_tta", "kit_holdout_raw", "kit_holdout_tuned", "train_images_per_s",
            "predict_images_per_s", "predict_tta_images_per_s")
    result = {r["competition"]: {k: r[k] for k in keys} for r in rows}
    print(json.dumps({**result, "kit_no_worse": bool(table["kit_no_worse"].astype(bool).all())}))
    return result


if __name__ == "__main__":
    main()
