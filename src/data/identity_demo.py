"""A generated identity competition in Happywhale's layout, for tests and benchmarks/identity_table.py.

    write_identity_competition("data/identity", identities=220, size=48, seed=0)

train/<hex>.jpg and train.csv (Image,Id): each identity a signature of coloured marks on its own
background, each photo of it that signature shifted, rescaled in brightness and noised; a share of the
identities has a single photo. test/<hex>.jpg: one new photo of each known identity plus photos of
identities never seen (UNSEEN of them), whose answer is 'new_individual'; sample_submission.csv rows
'new_individual w_... w_... w_... w_...' and solution.csv (Image,Id) with the true answers. With species=S,
train.csv also has a species column (Happywhale's): identity i is of species i mod S, drawn with its
species' mark shape (ellipses, boxes, triangles), unseen individuals too, so an auxiliary head can learn it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from src.core.files import write_csv

NEW = "new_individual"
SHAPES = ("ellipse", "rectangle", "triangle")  # a species' marks (species i: SHAPES[i % 3])


def signature(rng) -> dict:
    """Return one identity's look: a background colour and four marks (position, radius, colour)."""
    return {"background": rng.integers(40, 215, 3),
            "marks": [(rng.uniform(0.2, 0.8, 2), rng.uniform(0.08, 0.18), rng.integers(0, 256, 3)) for _ in range(4)]}


def draw(look: dict, size: int, rng) -> Image.Image:
    """Return one photo of an identity: its marks jittered in place, its brightness and pixels noised."""
    image = Image.new("RGB", (size, size), tuple(int(v) for v in look["background"]))
    pen = ImageDraw.Draw(image)
    shift = rng.uniform(-0.08, 0.08, 2)
    shape = SHAPES[look.get("species", 0) % len(SHAPES)]
    for centre, radius, colour in look["marks"]:
        x, y = (centre + shift + rng.normal(0, 0.02, 2)) * size
        r, fill = radius * size, tuple(int(v) for v in colour)
        if shape == "triangle":
            pen.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
        else:
            getattr(pen, shape)([x - r, y - r, x + r, y + r], fill=fill)
    pixels = np.asarray(image, np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photo_counts(identities: int, single: float, rng) -> np.ndarray:
    """Return photos per identity: `single` of them one photo, the rest 2 to 8 (fewer more often)."""
    counts = rng.choice(np.arange(2, 9), identities, p=np.array([6, 5, 4, 3, 2, 1, 1]) / 22)
    counts[rng.permutation(identities)[:round(single * identities)]] = 1
    return counts


def write_identity_competition(root, identities: int = 220, size: int = 48, seed: int = 0, single: float = 0.47,
                               unseen: float = 0.15, species: int = 0) -> Path:
    """Write the competition into root (see the module docstring); return root.

    species: 0, no species column (the images as before); S > 0, S species, a column of train.csv.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    names = [f"w_{i:05x}" for i in range(identities)]
    looks = {name: signature(rng) for name in names}
    for i, name in enumerate(names if species else ()):  # no draw from rng: the same images' colours and marks
        looks[name]["species"] = i % species
    rows = []
    for name, count in zip(names, photo_counts(identities, single, rng)):
        for _ in range(count):
            rows.append({"Image": f"{rng.bytes(4).hex()}.jpg", "Id": name,
                         **({"species": f"species_{looks[name]['species']}"} if species else {})})
            draw(looks[name], size, rng).save(root / "train" / rows[-1]["Image"], quality=95)
    write_csv(root / "train.csv", pd.DataFrame(rows))
    strangers = {f"x_{i:05x}": signature(rng) for i in range(max(1, round(unseen * identities / (1 - unseen))))}
    for i, look in enumerate(strangers.values() if species else ()):
        look["species"] = i % species
    answers = [(name, name) for name in names] + [(name, NEW) for name in strangers]
    solution = []
    for i in rng.permutation(len(answers)):
        name, answer = answers[i]
        image = f"{rng.bytes(4).hex()}.jpg"
        draw({**looks, **strangers}[name], size, rng).save(root / "test" / image, quality=95)
        solution.append({"Image": image, "Id": answer})
    solution = pd.DataFrame(solution)
    write_csv(root / "solution.csv", solution)
    write_csv(root / "sample_submission.csv", solution.assign(Id=f"{NEW} " + " ".join(names[:4])))
    return root
