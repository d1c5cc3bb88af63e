"""The benchmark matrix's yardsticks: a plain Keras CNN written here, the trivial answer, and the test scores.

    frame = baseline_answers(kind, data, spec, solution, size, epochs, seed)   # answers in the sample's format
    frame = trivial_answers(kind, data, spec, solution)
    value = score_answers(kind, spec, frame, solution)                        # against the held-back solution

Nothing here imports the kit's training code: the baseline is what a competitor writes in a few lines.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks.matrix_data import SHAPES

NEW = "new_individual"


def load_images(data: Path, files, size: int) -> np.ndarray:
    """Return the images as floats 0-1 at size x size."""
    return np.stack([np.asarray(Image.open(data / f).convert("RGB").resize((size, size)), np.float32) / 255.0
                     for f in files])


def plain_cnn(size: int, outputs: int, activation: str):
    """Return the few-layer CNN every competitor starts from: four conv-BN-ReLU-pool blocks, pooling, one Dense.

    BatchNorm's momentum is 0.9: at Keras's 0.99 the moving statistics of a run of a few hundred steps lag so far
    behind the weights that the test answers sat at chance (tags: nothing above 0.3 for any image)."""
    import keras

    x = inputs = keras.Input((size, size, 3))
    for filters in (32, 64, 128, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)  # Keras's 0.99 lags a short run: answers at chance
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x) if x.shape[1] > 2 else x
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(x))


def targets(kind: str, answers: pd.Series, classes: list):
    """Return (training targets, the output width, its activation, its loss) for the kind."""
    if kind == "tags":
        return np.array([[t in str(v).split() for t in classes] for v in answers], np.float32), len(classes), \
            "sigmoid", "binary_crossentropy"
    if kind == "number":
        values = answers.to_numpy(np.float32)
        return (values - values.mean()) / values.std(), 1, None, "mse"
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in answers]), len(classes), "softmax", "sparse_categorical_crossentropy"


def baseline_answers(kind: str, data: Path, spec, solution: pd.DataFrame, size: int, epochs: int, seed: int):
    """Train the plain CNN on the training images for `epochs` epochs; return its test answers as the sample
    holds them."""
    import keras

    keras.utils.set_random_seed(seed)
    train = pd.read_csv(data.parent / "train_answers.csv")
    answers = train[spec.answer]
    classes = list(SHAPES) if kind == "tags" else sorted(answers.unique())
    y, width, activation, loss = targets(kind, answers, classes)
    model = plain_cnn(size, width, activation)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(load_images(data, train["file"], size), y, epochs=epochs, batch_size=32, verbose=0)
    out = model.predict(load_images(data, solution["file"], size), verbose=0)
    keras.backend.clear_session()
    return solution[[spec.id_column]].assign(**{spec.answer: answer_texts(kind, out, classes, answers)})


def answer_texts(kind: str, out: np.ndarray, classes: list, answers: pd.Series) -> list:
    """Return the submission's answer per row from the network's outputs."""
    if kind == "binary":
        return list(out[:, classes.index(1)])
    if kind in ("label", "grades"):
        return [classes[i] for i in out.argmax(axis=1)]
    if kind == "tags":
        return [" ".join(c for c, p in zip(classes, row) if p >= 0.3) for row in out]
    if kind == "number":
        values = answers.to_numpy(np.float64)
        return list(np.clip(out[:, 0] * values.std() + values.mean(), values.min(), values.max()))
    texts = []  # identities: new_individual first when unsure, else second
    for row, p in zip(np.argsort(-out, axis=1)[:, :5], out):
        names = [classes[i] for i in row]
        texts.append(" ".join(([NEW] + names if p.max() < 0.5 else names[:1] + [NEW] + names[1:])[:5]))
    return texts


def trivial_answers(kind: str, data: Path, spec, solution: pd.DataFrame) -> pd.DataFrame:
    """Return the answer that looks at no image: the prior, the majority, the best constant tags, the mean,
    new_individual then the most frequent individuals."""
    answers = pd.read_csv(data.parent / "train_answers.csv")[spec.answer]
    if kind == "binary":
        value = float(answers.mean())
    elif kind in ("label", "grades"):
        value = answers.value_counts().index[0]
    elif kind == "tags":
        value = best_constant_tags(answers)
    elif kind == "number":
        value = float(answers.mean())
    else:
        value = " ".join([NEW] + list(answers.value_counts().index[:4]))
    return solution[[spec.id_column]].assign(**{spec.answer: value})


def best_constant_tags(answers: pd.Series) -> str:
    """Return the tag set that, given to every training image, scores the best F2 there."""
    rates = {t: answers.map(lambda v, t=t: t in str(v).split()).mean() for t in SHAPES}
    ordered = sorted(rates, key=rates.get, reverse=True)
    candidates = [" ".join(ordered[:n]) for n in range(1, len(ordered) + 1)]
    return max(candidates, key=lambda c: np.mean([f2(c, v) for v in answers]))


def f2(chosen: str, truth: str) -> float:
    """Return F2 of one image's chosen tags against its true ones (both empty: 1)."""
    chosen, truth = set(str(chosen).split()) - {"nan"}, set(str(truth).split()) - {"nan"}
    if not chosen and not truth:
        return 1.0
    hits = len(chosen & truth)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(chosen), hits / len(truth)
    return 5 * precision * recall / (4 * precision + recall)


def score_answers(kind: str, spec, frame: pd.DataFrame, solution: pd.DataFrame) -> float:
    """Return the competition's metric of a submission frame against the held-back solution."""
    from sklearn.metrics import cohen_kappa_score, log_loss

    merged = solution.merge(frame, on=spec.id_column, suffixes=("_true", ""))
    truth, given = merged[f"{spec.answer}_true"], merged[spec.answer]
    if len(merged) != len(solution):
        raise ValueError(f"the submission answers {len(merged)} of {len(solution)} test rows")
    if kind == "binary":
        return float(log_loss(truth.astype(int), np.clip(given.astype(float), 1e-15, 1 - 1e-15), labels=[0, 1]))
    if kind == "label":
        return float((truth.astype(str) == given.astype(str)).mean())
    if kind == "grades":
        return float(cohen_kappa_score(truth.astype(int), given.astype(int), weights="quadratic"))
    if kind == "tags":
        return float(np.mean([f2(g, t) for g, t in zip(given, truth)]))
    if kind == "number":
        return float(np.sqrt(np.mean((given.astype(float) - truth.astype(float)) ** 2)))
    return float(np.mean([next((1 / (i + 1) for i, a in enumerate(str(g).split()[:5]) if a == t), 0.0)
                          for g, t in zip(given, truth)]))
