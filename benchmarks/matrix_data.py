"""Generated competitions for the benchmark matrix (benchmarks/matrix.py), unlike those the kinds were built on.

    root, spec = write_matrix_competition("label", Path("runs/matrix/label-a"), train=400, size=32,
                                          difficulty=0.5, seed=1)

Every image is a scene of shapes (disc, square, triangle, cross, ring) in random colours on a noisy, shaded
background; `difficulty` (0 to 1) shrinks the shapes and adds more distractors and noise. What the answer is:
- binary: is the largest shape a disc or a square (Dogs vs Cats' layout: train/<cat|dog>.<n>.jpg, sample
  id,label with 0.5, scored by log loss);
- label: which of four shapes is the largest (train.csv id,label; accuracy);
- grades: five grades set by the largest shape's size (APTOS: id_code,diagnosis; quadratic weighted kappa);
- tags: which of five shapes appear (Planet: image_name,tags; F2 over images);
- number: 1-100 from how many small discs the scene holds (PetFinder: Id,Pawpularity; RMSE);
- identity: each individual a fixed arrangement of three shapes, seen shifted and noisy; test images of
  individuals never seen answer new_individual (Happywhale: image,individual_id; MAP@5).
solution.csv (the test answers) is written beside the data folder, never in it; kaggle_metric.json records the
metric as `python -m src.kaggle_api download` would.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

SHAPES = ("disc", "square", "triangle", "cross", "ring")
KAGGLE_METRICS = {"binary": "Log Loss", "label": "Categorization Accuracy", "grades": "Quadratic Weighted Kappa",
                  "tags": "F-Beta Score (beta=2)", "number": "Root Mean Squared Error", "identity": "MAP@{K}"}


@dataclasses.dataclass(frozen=True)
class Spec:
    """Where a generated competition's answers live: its id and answer columns and its metric (the kit's name)."""

    id_column: str
    answer: str
    metric: str


SPECS = {"binary": Spec("id", "label", "log_loss"), "label": Spec("id", "label", "accuracy"),
         "grades": Spec("id_code", "diagnosis", "qwk"), "tags": Spec("image_name", "tags", "f2_samples"),
         "number": Spec("Id", "Pawpularity", "rmse"), "identity": Spec("image", "individual_id", "map@5")}


def background(size: int, difficulty: float, rng) -> np.ndarray:
    """Return a shaded, noisy RGB background."""
    base = rng.uniform(40, 120, 3)
    ramp = np.linspace(-1, 1, size)[:, None, None] * rng.uniform(-30, 30, 3)
    noise = rng.normal(0, 6 + 30 * difficulty, (size, size, 3))
    return np.broadcast_to(base, (size, size, 3)) + ramp + noise


def shape(draw: ImageDraw.ImageDraw, kind: str, centre, radius: float, colour) -> None:
    """Draw one shape of the given kind around centre."""
    x, y, r = centre[0], centre[1], radius
    box = (x - r, y - r, x + r, y + r)
    if kind == "disc":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle((x - 0.85 * r, y - 0.85 * r, x + 0.85 * r, y + 0.85 * r), fill=colour)
    elif kind == "triangle":
        draw.polygon([(x, y - r), (x - r, y + 0.8 * r), (x + r, y + 0.8 * r)], fill=colour)
    elif kind == "cross":
        w = max(1, r / 3)
        draw.rectangle((x - r, y - w, x + r, y + w), fill=colour)
        draw.rectangle((x - w, y - r, x + w, y + r), fill=colour)
    else:  # ring
        draw.ellipse(box, outline=colour, width=max(1, int(r / 3)))


def colour(rng) -> tuple:
    """Return a bright random colour."""
    return tuple(int(v) for v in rng.uniform(140, 255, 3))


def scene(size: int, objects: list, difficulty: float, rng, distractors: bool = True) -> Image.Image:
    """Return an image of the objects [(kind, (x, y), radius, colour)] over distractors and noise."""
    image = Image.fromarray(np.clip(background(size, difficulty, rng), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 1 + round(4 * difficulty))) if distractors else 0):
        shape(draw, str(rng.choice(SHAPES)), rng.uniform(0, size, 2), size * rng.uniform(0.03, 0.07),
              tuple(int(v) for v in rng.uniform(60, 200, 3)))
    for kind, centre, radius, fill in objects:
        shape(draw, kind, centre, radius, fill)
    return image


def main_object(kind: str, size: int, scale: float, rng) -> tuple:
    """Return one object of the kind at a random place, its radius a share `scale` of the image."""
    radius = size * scale
    return kind, rng.uniform(radius, size - radius, 2), radius, colour(rng)


def label_image(label: int, shapes: tuple, size: int, difficulty: float, rng) -> Image.Image:
    """The largest shape is shapes[label]."""
    scale = rng.uniform(0.22, 0.32) * (1 - 0.35 * difficulty)
    return scene(size, [main_object(shapes[label], size, scale, rng)], difficulty, rng)


def grade_image(grade: int, size: int, difficulty: float, rng) -> Image.Image:
    """The largest shape's size follows the grade (0-4), with noise."""
    scale = 0.1 + 0.05 * grade + rng.normal(0, 0.008 + 0.02 * difficulty)
    return scene(size, [main_object(str(rng.choice(SHAPES[:3])), size, max(scale, 0.05), rng)], difficulty, rng)


def tags_image(tags: list, size: int, difficulty: float, rng) -> Image.Image:
    """Each tagged shape appears once."""
    scale = 0.16 * (1 - 0.3 * difficulty)
    return scene(size, [main_object(t, size, scale * rng.uniform(0.8, 1.2), rng) for t in tags], difficulty, rng)


def number_image(count: int, size: int, difficulty: float, rng) -> Image.Image:
    """The scene holds `count` small discs of one colour."""
    fill = colour(rng)
    objects = [("disc", rng.uniform(2, size - 2, 2), size * 0.045, fill) for _ in range(count)]
    return scene(size, objects, difficulty, rng, distractors=False)


def identity_look(rng) -> list:
    """Return an individual's arrangement: three shapes, each with its offset, radius share and colour."""
    return [(str(rng.choice(SHAPES)), rng.uniform(-0.28, 0.28, 2), rng.uniform(0.08, 0.14), colour(rng))
            for _ in range(3)]


def identity_image(look: list, size: int, difficulty: float, rng) -> Image.Image:
    """The individual's arrangement, shifted as a whole, each colour jittered."""
    shift = rng.uniform(-0.08, 0.08, 2) * size
    objects = [(kind, size / 2 + offset * size + shift, radius * size,
                tuple(int(np.clip(c + rng.normal(0, 12), 0, 255)) for c in fill))
               for kind, offset, radius, fill in look]
    return scene(size, objects, difficulty, rng)


def answers(kind: str, n: int, rng) -> list:
    """Return n answers of the kind (before identity's own drawing)."""
    if kind == "binary":
        return list(rng.integers(0, 2, n))
    if kind == "label":
        return list(rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]))
    if kind == "grades":
        return list(rng.choice(5, n, p=[0.45, 0.15, 0.2, 0.1, 0.1]))
    if kind == "tags":
        drawn = [[s for s, p in zip(SHAPES, (0.6, 0.4, 0.3, 0.2, 0.15)) if rng.random() < p] for _ in range(n)]
        return [tags or [str(rng.choice(SHAPES))] for tags in drawn]  # Planet: every image has a tag
    return list(rng.integers(0, 13, n))  # number: discs in the scene


def write_matrix_competition(kind: str, root: Path, train: int = 400, test: int = 150, size: int = 32,
                             difficulty: float = 0.5, seed: int = 0) -> tuple:
    """Write one kind's competition into root/<root name> (solution.csv into root); return (the data folder, its Spec)."""
    rng = np.random.default_rng(seed)
    data = Path(root) / Path(root).name  # named for the competition: the kit keys its saved splits by it
    for part in ("train", "test"):
        (data / part).mkdir(parents=True, exist_ok=True)
    spec = SPECS[kind]
    if kind == "identity":
        frames = write_identities(data, train, test, size, difficulty, rng)
    else:
        frames = write_images(kind, data, train, test, size, difficulty, rng)
    train_frame, solution = frames
    if kind != "binary":  # Dogs vs Cats has no labels file: the label is the training file name's first word
        train_frame.drop(columns="file").to_csv(data / "train.csv", index=False)
    train_frame.to_csv(Path(root) / "train_answers.csv", index=False)  # the benchmark's baseline reads it
    solution.to_csv(Path(root) / "solution.csv", index=False)
    sample = ("new_individual " + " ".join(pd.unique(train_frame[spec.answer].astype(str))[:4]) if kind == "identity" else
              {"binary": 0.5, "label": "disc", "grades": 0, "tags": "disc", "number": 50.0}[kind])
    solution[[spec.id_column]].assign(**{spec.answer: sample}).to_csv(data / "sample_submission.csv", index=False)
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": f"matrix-{kind}",
                                                          "evaluation_metric": KAGGLE_METRICS[kind]}))
    return data, spec


def write_images(kind: str, data: Path, train: int, test: int, size: int, difficulty: float, rng) -> tuple:
    """Write train/ and test/ images of a label, grades, tags or number competition; return (train, solution)."""
    spec, rows = SPECS[kind], []
    for i, answer in enumerate(answers(kind, train + test, rng)):
        if kind in ("binary", "label"):
            image = label_image(int(answer), ("disc", "square") if kind == "binary" else SHAPES[:4], size,
                                difficulty, rng)
            value = ("cat", "dog")[int(answer)] if kind == "binary" else SHAPES[int(answer)]
        elif kind == "grades":
            image, value = grade_image(int(answer), size, difficulty, rng), int(answer)
        elif kind == "tags":
            image, value = tags_image(answer, size, difficulty, rng), " ".join(answer)
        else:  # number: 1-100 from the count, with noise the image cannot show
            image = number_image(int(answer), size, difficulty, rng)
            value = int(np.clip(round(5 + 7.5 * int(answer) + rng.normal(0, 4)), 1, 100))
        part = "train" if i < train else "test"
        if kind == "binary":  # Dogs vs Cats: train/cat.12.jpg, test/1.jpg; the answer is P(dog)
            name = f"{value}.{i}" if part == "train" else str(i - train + 1)
            value = int(value == "dog")
        else:
            name = rng.bytes(5).hex()
        image.save(data / part / f"{name}.jpg", quality=92)
        rows.append({spec.id_column: name, spec.answer: value, "file": f"{part}/{name}.jpg"})
    frame = pd.DataFrame(rows)
    return frame.iloc[:train].reset_index(drop=True), frame.iloc[train:].reset_index(drop=True)


def write_identities(data: Path, train: int, test: int, size: int, difficulty: float, rng) -> tuple:
    """Write an identity competition: about train/3 individuals with 1-6 photos each; a fifth of the test
    images show individuals never seen (new_individual)."""
    looks, rows = {}, []
    while len(rows) < train:
        name = f"ind_{len(looks):04d}"
        looks[name] = identity_look(rng)
        for _ in range(min(int(rng.integers(1, 7)), train - len(rows))):
            rows.append({"image": f"{rng.bytes(5).hex()}.jpg", "individual_id": name})
            rows[-1]["file"] = f"train/{rows[-1]['image']}"
            identity_image(looks[name], size, difficulty, rng).save(data / rows[-1]["file"], quality=92)
    known = [r["individual_id"] for r in rows]
    solution = []
    for i in range(test):
        new = rng.random() < 0.2
        look = identity_look(rng) if new else looks[known[int(rng.integers(0, len(known)))]]
        answer = "new_individual" if new else None
        image = f"{rng.bytes(5).hex()}.jpg"
        identity_image(look, size, difficulty, rng).save(data / "test" / image, quality=92)
        if answer is None:
            answer = next(n for n, v in looks.items() if v is look)
        solution.append({"image": image, "individual_id": answer, "file": f"test/{image}"})
    return pd.DataFrame(rows), pd.DataFrame(solution)
