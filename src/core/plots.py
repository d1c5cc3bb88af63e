"""Every figure the kit draws. matplotlib is imported inside each function (Agg, no screen)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.files import atomic_path


def pyplot():
    """Return matplotlib.pyplot on the file-only Agg backend (works on servers and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_class_distribution(counts: pd.Series, path: Path, title: str) -> Path:
    """Save a bar chart of images per class, most common first; return the PNG path."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, min(24, 0.35 * len(counts) + 3)), 4))
    ax.bar([str(c) for c in counts.index], counts.to_numpy(), color="#4C72B0")
    ax.axhline(counts.mean(), color="grey", linestyle="--", linewidth=1, label=f"mean {counts.mean():.0f}")
    ax.set(title=title, xlabel="class", ylabel="images")
    ax.legend()
    if len(counts) > 30:
        ax.tick_params(axis="x", labelrotation=90, labelsize=6)
    return save(fig, path)


def plot_samples(samples: list, path: Path, columns: int) -> Path:
    """Save a grid of (label, PIL image) pairs, one class per row, each titled; return the PNG path."""
    plt = pyplot()
    rows = max(1, -(-len(samples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, image) in zip(axes.flat, samples):
        ax.imshow(image)
        ax.set_title(str(label), fontsize=9)
    return save(fig, path)


def plot_image_sizes(sizes: pd.DataFrame, path: Path) -> Path:
    """Save width-vs-height scatter and aspect-ratio histogram per split; return the PNG path."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for split, part in sizes.groupby("split"):
        left.scatter(part["width"], part["height"], s=6, alpha=0.4, label=f"{split} ({len(part)})")
        right.hist(part["width"] / part["height"], bins=40, alpha=0.5, label=split)
    left.set(title="image sizes", xlabel="width (px)", ylabel="height (px)")
    right.set(title="aspect ratio (width / height)", xlabel="width / height", ylabel="images")
    left.legend()
    right.legend()
    return save(fig, path)


def save(fig, path: Path) -> Path:
    """Write the figure as PNG (atomically: a full disk leaves the previous figure), close it, return the path."""
    path = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(path) as temp:
            fig.savefig(temp, dpi=110, format="png")
    finally:
        pyplot().close(fig)
    return path


def plot_tags(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Save per-tag precision and recall (bars) with each tag's fitted threshold (dots); return the PNG path."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, min(24, 0.5 * len(table) + 3)), 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["precision"], width=0.4, label="precision", color="#4C72B0")
    ax.bar(x + 0.2, table["recall"], width=0.4, label="recall", color="#DD8452")
    ax.plot(x, table["threshold"], "ko", label="threshold")
    ax.set_xticks(x, [str(t) for t in table["tag"]], rotation=90 if len(table) > 10 else 0)
    ax.set(title=title, ylim=(0, 1.05), ylabel="holdout")
    ax.legend()
    return save(fig, path)


def plot_cv(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Save the metric per fold as bars with the mean as a line (and +- one standard deviation); return the path."""
    plt = pyplot()
    folds = table[~table["fold"].isin(["mean", "std"])]
    mean = float(table.loc[table["fold"] == "mean", "score"].iloc[0])
    std = float(table.loc[table["fold"] == "std", "score"].iloc[0])
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(folds) + 2), 4))
    ax.bar([f"fold {f}" for f in folds["fold"]], folds["score"].astype(float), color="#4C72B0")
    ax.axhline(mean, color="black", linewidth=1, label=f"mean {mean:.4f}")
    ax.axhspan(mean - std, mean + std, color="grey", alpha=0.2, label=f"+- std {std:.4f}")
    ax.set(title=title, ylabel="holdout score of the fold")
    ax.legend()
    return save(fig, path)


def plot_cv_vs_lb(local, public, names: list, path: Path, title: str) -> Path:
    """Save local (holdout or out-of-fold) score against public leaderboard score, one labelled dot per submission."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(local, public, color="#4C72B0")
    labels = {}
    for x, y, name in zip(local, public, names):  # equal scores share one label, not overprinted ones
        labels.setdefault((float(x), float(y)), []).append(str(name))
    for (x, y), shared in labels.items():
        ax.annotate(", ".join(shared), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(title=title, xlabel="local score (holdout or out-of-fold)", ylabel="public leaderboard score")
    return save(fig, path)


def plot_screening(rows: pd.DataFrame, path: Path, title: str, column: str = "best_val_accuracy",
                   label: str = "best validation accuracy") -> Path:
    """Save a horizontal bar chart of each backbone's best validation score in `column` (failures marked)."""
    plt = pyplot()
    rows = rows.iloc[::-1]  # best at the top
    accuracy = rows[column].fillna(0).astype(float).to_numpy()
    failed = (rows["error"].fillna("") != "").to_numpy()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    colours = ["#C44E52" if f else "#4C72B0" for f in failed]
    ax.barh(rows["backbone"].astype(str), accuracy, color=colours)
    for y, (value, fail) in enumerate(zip(accuracy, failed)):
        ax.text(value + 0.01, y, "failed" if fail else f"{value:.3f}", va="center", fontsize=9)
    ax.set(title=title, xlabel=label, xlim=(min(0, accuracy.min()), max(1, accuracy.max()) * 1.08))
    return save(fig, path)


def plot_curves(history: pd.DataFrame, path: Path, title: str, metric: str = "accuracy") -> Path:
    """Save accuracy, loss and the competition's metric (its log name, when not accuracy) per epoch across stages,
    each stage boundary marked; return the path."""
    plt = pyplot()
    names = ["accuracy", "loss"] + ([metric] if metric != "accuracy" and f"val_{metric}" in history else [])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5))
    step = range(1, len(history) + 1)
    for ax, metric in zip(axes, names):
        ax.plot(step, history[metric], marker="o", markersize=3, label=f"training {metric}")
        ax.plot(step, history[f"val_{metric}"], marker="o", markersize=3, label=f"validation {metric}")
        starts = history.index[history["stage"] != history["stage"].shift()].tolist()
        for start, name in zip(starts, history["stage"].iloc[starts]):
            ax.axvline(start + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(start + 0.6, ax.get_ylim()[1], name, va="top", fontsize=8, color="grey")
        ax.set(xlabel="epoch (all stages)", ylabel=metric)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return save(fig, path)


def plot_confusion(y_true, y_pred, labels: list, path: Path) -> Path:
    """Save the holdout confusion matrix (rows: true class, columns: predicted); return the path."""
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    size = max(5, min(20, 0.45 * len(labels) + 3))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    if len(labels) <= 30:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels], rotation=90)
        ax.set_yticks(range(len(labels)), [str(v) for v in labels])
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if count > matrix.max() / 2 else "black")
    ax.set(title="holdout confusion matrix", xlabel="predicted", ylabel="true")
    return save(fig, path)


def plot_wrong(open_images, y_true, probs, labels: list, path: Path, count: int = 16) -> Path:
    """Save a grid of the most confidently wrong holdout images (true, predicted, confidence); return the path.

    open_images(indices) returns what PIL can open (paths or in-memory files) for those holdout rows.
    """
    from PIL import Image, ImageOps

    plt = pyplot()
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:count]
    columns = 4
    rows = max(1, -(-len(wrong) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    sources = open_images(wrong) if len(wrong) else []
    for ax, i, source in zip(axes.flat, wrong, sources):
        with Image.open(source) as img:
            ax.imshow(ImageOps.exif_transpose(img).convert("RGB"))
        ax.set_title(f"true {labels[y_true[i]]}, said {labels[predicted[i]]}\n{probs[i, predicted[i]]:.0%}", fontsize=8)
    if len(wrong) == 0:
        axes.flat[0].text(0.5, 0.5, "no holdout image is wrong", ha="center", va="center")
    return save(fig, path)


def plot_pruning(table: pd.DataFrame, path: Path, title: str, metric: str = "accuracy") -> Path:
    """Save the holdout metric against sparsity, right after pruning and after fine-tuning; return the path."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table["sparsity"], table[f"{metric}_pruned"], "o--", label="pruned")
    ax.plot(table["sparsity"], table[f"{metric}_finetuned"], "o-", label="pruned + fine-tuned")
    ax.set(title=title, xlabel="share of each pruned kernel's weights at zero", ylabel=f"holdout {metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_importance(importance: pd.Series, path: Path, title: str, count: int = 25) -> Path:
    """Save a horizontal bar chart of the largest feature importances (gain), largest at the top."""
    plt = pyplot()
    top = importance.sort_values(ascending=False).head(count).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(top) + 1.5))
    ax.barh(top.index.astype(str), top.to_numpy(), color="#4C72B0")
    ax.set(title=title, xlabel="total gain over folds and seeds")
    return save(fig, path)


def plot_plan(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Save the auto run's plan: one bar per step, its estimated minutes, labelled with its share of the budget."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.5))
    rows = table.iloc[::-1]
    names = [f"{s} {b}".strip() for s, b in zip(rows["step"], rows["backbone"].fillna(""))]
    minutes = rows["minutes"].astype(float).to_numpy()
    ax.barh(names, minutes, color="#4C72B0")
    for y, (value, share) in enumerate(zip(minutes, rows["share"])):
        ax.text(value, y, f" {value:.1f} min ({float(share):.0%})", va="center", fontsize=9)
    ax.set(title=title, xlabel="estimated minutes", xlim=(0, max(minutes.max(), 1e-3) * 1.35))
    return save(fig, path)
