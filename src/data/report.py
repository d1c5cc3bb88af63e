"""Look at a competition's data: `python -m src.eda --data data/demo --out runs/eda`.

Writes class_distribution.png, samples.png (a labelled grid), image_sizes.png,
image_sizes.csv, split_report.csv and config.json, and prints class counts, imbalance,
mean width and height, files skipped and images per class per split. A number target (regression)
is said with its range, mean and sd and counted in ten quantile bins of its values (its "classes" here).
"""
from __future__ import annotations

from pathlib import Path

import dataclasses

import pandas as pd

from src.data.competition import Competition, load_competition
from src.core.config import save_config
from src.core.plots import plot_class_distribution, plot_image_sizes, plot_samples
from src.core.settings import EdaConfig
from src.data.numbers import BINS, as_numbers
from src.data.splits import load_or_make_split, split_report


def run_eda(cfg: EdaConfig) -> dict:
    """Write the report into cfg.out and return its numbers (counts, imbalance, mean size)."""
    out = Path(cfg.out)
    comp = load_competition(cfg)
    save_config(cfg, out)
    split = load_or_make_split(comp, cfg)
    kind = comp.class_maps[comp.target].kind
    # the target as the kind counts it (a number: its bins); several: an answer lists several of them (tags)
    comp, split, what, several = kind.report_counts(comp, split)
    counts = label_counts(comp, several)
    plot_class_distribution(counts, out / "class_distribution.png",
                            f"{comp.root.name}: {what}, {len(comp.train)} training images")
    plot_samples(pick_samples(comp, cfg, several), out / "samples.png", cfg.samples_per_class)
    sizes = image_sizes(comp)
    sizes.to_csv(out / "image_sizes.csv", index=False)
    plot_image_sizes(sizes, out / "image_sizes.png")
    report = split_report(split, comp.target, several)
    report.to_csv(out / "split_report.csv")
    summary = summarize(comp, counts, sizes)
    print_summary(comp, counts, summary, report, out)
    return summary


def binned(comp: Competition, split: pd.DataFrame) -> tuple:
    """Return (the competition, the split) with a number target's values replaced by their quantile bin's range."""
    values = as_numbers(comp.train[comp.target], comp.target)
    edges = sorted(set(pd.Series(values).quantile([i / BINS for i in range(BINS + 1)]).tolist()))
    if len(edges) < 2:
        edges = [values.min(), values.max() + 1]

    def ranges(column):
        cut = pd.cut(as_numbers(column, comp.target), bins=edges, include_lowest=True, duplicates="drop")
        return [f"{c.left:g} to {c.right:g}" for c in cut]

    train = comp.train.assign(**{comp.target: ranges(comp.train[comp.target])})
    return dataclasses.replace(comp, train=train), split.assign(**{comp.target: ranges(split[comp.target])})


def label_counts(comp: Competition, multi_label: bool) -> pd.Series:
    """Return images per class, most common first; multi-label: images per tag (a row counts for each tag)."""
    labels = comp.train[comp.target]
    return (labels.astype(str).str.split().explode() if multi_label else labels).value_counts()


def holds_label(comp: Competition, label, several: bool) -> pd.Series:
    """Return which training rows carry `label`: equal to it, or (several: multi-label) holding it among their
    tags."""
    labels = comp.train[comp.target]
    if several:
        return labels.astype(str).str.split().map(lambda tags: label in tags)
    return labels == label


def pick_samples(comp: Competition, cfg: EdaConfig, several: bool) -> list:
    """Return (label, upright PIL image) pairs: the first images of the most common classes (or tags)."""
    from PIL import Image, ImageOps

    samples = []
    counts = label_counts(comp, several)
    for label in counts.index[: cfg.max_classes_shown]:
        rows = comp.train[holds_label(comp, label, several)].head(cfg.samples_per_class)
        for path in rows["path"]:
            with Image.open(path) as img:
                samples.append((label, ImageOps.exif_transpose(img).convert("RGB")))
        samples += [("", Image.new("RGB", (1, 1), "white"))] * (cfg.samples_per_class - len(rows))
    return samples


def image_sizes(comp: Competition) -> pd.DataFrame:
    """Return id, split (train/test), width, height and orientation of every image, as displayed."""
    columns = ["id", "width", "height", "orientation"]
    parts = [comp.train[columns].assign(split="train")]
    if comp.test is not None:
        parts.append(comp.test[columns].assign(split="test"))
    return pd.concat(parts, ignore_index=True)[["id", "split", "width", "height", "orientation"]]


def summarize(comp: Competition, counts: pd.Series, sizes: pd.DataFrame) -> dict:
    """Return the report's headline numbers."""
    return {"classes": int(len(counts)), "train_images": int(len(comp.train)),
            "test_images": 0 if comp.test is None else int(len(comp.test)),
            "imbalance": float(counts.max() / counts.min()),
            "mean_width": float(sizes["width"].mean()), "mean_height": float(sizes["height"].mean()),
            "skipped": int(len(comp.skipped))}


def print_summary(comp: Competition, counts: pd.Series, summary: dict, report: pd.DataFrame, out: Path):
    """Print the class counts, the headline numbers and the split report."""
    print(f"{comp.root}: {comp.layout} layout, target column {comp.target!r}")
    noun, nouns = comp.class_maps[comp.target].kind.nouns
    print(f"{noun} counts ({summary['classes']} {nouns if summary['classes'] != 1 else noun}):")
    print(counts.to_string())
    print(f"imbalance (largest / smallest class): {summary['imbalance']:.2f}")
    print(f"mean image size: {summary['mean_width']:.0f} x {summary['mean_height']:.0f} (width x height)")
    print(f"training images: {summary['train_images']}, test images: {summary['test_images']}, "
          f"skipped files: {summary['skipped']}")
    print("images per class per split:")
    print(report.T.to_string())
    print(f"report written to {out}/")
