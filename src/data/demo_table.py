"""Writes an ISIC-2024-like competition where the images and the table each hold part of the answer.

    write_table_competition(Path("data/isic24"), patients=60, test_patients=20, seed=0)

Laid out as ISIC 2024 was: train-image/image/<isic_id>.jpg, train-metadata.csv (isic_id, patient_id,
age_approx, sex, anatom_site_general, tbp_lv_color, tbp_lv_area, target), test-image/image/,
test-metadata.csv (no target), sample_submission.csv (isic_id,target = 0.3), and solution.csv (the
held-back test labels, for --solution and the benchmark; a file ISIC 2024 did not give).

Each lesion has two hidden parts of its risk: one shows as the image's brightness, the other as its
tbp_lv_color relative to the same patient's other lesions (patients' colours differ a lot, so the raw
column says little: the "ugly duckling"). About 8% are positive; test patients are not in training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from src.core.files import write_csv

SITES = ("torso", "lower extremity", "upper extremity", "head/neck", "palms/soles")
SITE_SHARE = (0.45, 0.25, 0.2, 0.08, 0.02)  # palms/soles rare: grouped as "other" by the table features


def lesions(rng, patients: int, first_patient: int, first_id: int) -> pd.DataFrame:
    """Return one row per lesion: metadata, the two hidden parts of the risk, and the target."""
    rows = []
    for p in range(patients):
        count = int(rng.integers(6, 16))
        base = rng.normal(0, 2.0)  # the patient's own skin colour: large between patients
        age = float(rng.integers(6, 17) * 5) if rng.random() > 0.05 else np.nan
        sex = rng.choice(["male", "female", ""], p=[0.48, 0.48, 0.04])
        for _ in range(count):
            image_part, table_part = rng.normal(size=2)
            rows.append({"patient_id": f"IP_{first_patient + p:05d}", "age_approx": age, "sex": sex,
                         "anatom_site_general": rng.choice(SITES, p=SITE_SHARE),
                         "tbp_lv_area": float(np.round(rng.gamma(2.0, 3.0), 3)),
                         "image_part": image_part, "table_part": table_part,
                         "tbp_lv_color": float(np.round(base + 0.7 * table_part, 4))})
    frame = pd.DataFrame(rows)
    frame.insert(0, "isic_id", [f"ISIC_{first_id + i:07d}" for i in range(len(frame))])
    risk = frame["image_part"] + frame["table_part"] + 0.4 * rng.normal(size=len(frame))
    frame["target"] = (risk > np.quantile(risk, 0.92)).astype(int)
    return frame


def write_images(folder: Path, frame: pd.DataFrame, rng, size: int = 16) -> None:
    """Write one small JPEG per lesion: brightness follows the image part of its risk, under pixel noise."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, part in zip(frame["isic_id"], frame["image_part"]):
        level = 120 + 28 * part
        pixels = np.array([level + 20, level - 10, level - 30]) + rng.normal(0, 18, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"{image_id}.jpg", quality=95)


def write_table_competition(root: Path, patients: int = 60, test_patients: int = 20, seed: int = 0,
                            size: int = 16) -> dict:
    """Write the competition under root; return {"train": rows, "test": rows, "positives": share}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    train = lesions(rng, patients, 0, 0)
    test = lesions(rng, test_patients, patients, len(train))
    write_images(root / "train-image" / "image", train, rng, size)
    write_images(root / "test-image" / "image", test, rng, size)
    columns = ["isic_id", "patient_id", "age_approx", "sex", "anatom_site_general", "tbp_lv_color", "tbp_lv_area"]
    write_csv(root / "train-metadata.csv", train[columns + ["target"]])
    write_csv(root / "test-metadata.csv", test[columns])
    write_csv(root / "sample_submission.csv", pd.DataFrame({"isic_id": test["isic_id"], "target": 0.3}))
    write_csv(root / "solution.csv", test[["isic_id", "target"]])
    return {"train": len(train), "test": len(test), "positives": float(train["target"].mean())}
