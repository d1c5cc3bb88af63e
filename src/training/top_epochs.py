"""--average-top N: a stage's final weights are the mean of its N best epochs' weights, when that scores no worse.

    keeper = TopEpochs(run.top_epochs("stage1"), 3, "auc", rows)   # after the checkpoint: stage1.top/epochE.weights.h5
    best = average_top(model, keeper, val_ds, best, "auc", checkpoint, "stage1")  # after the fit: kept or not, said

The checkpoint-averaging of timm's avg_checkpoints.py (and the spirit of SWA) on the kit's own ranking of
epochs (src.core.metric_choice.rank_key: the metric in its direction, ties to the lower val_loss). The
N best epochs' weights stay on disk only while the stage runs (src.training.two_stage removes the folder
once the stage is recorded finished), so a cut stage resumes with them.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from src.core.files import atomic_path
from src.core.metric_choice import log_name, monitor, rank_key
from src.models.classifier import record_shape
from src.training.callbacks import weights_of


class TopEpochs(keras.callbacks.Callback):
    """Keeps the weights of the stage's N best epochs so far as folder/epochE.weights.h5 (E 1-based), written atomically.

    Placed where the checkpoint is (after --ema's swap): each file holds the weights that epoch was
    scored with. rows: the stage's finished history rows on --resume; the files of epochs not among
    them (run again after a cut) are removed.
    """

    def __init__(self, folder, n: int, metric: str, rows=None):
        super().__init__()
        self.folder, self.n, self.metric = Path(folder), n, metric
        self.monitor = monitor(metric)
        self.keys = {}  # epoch (1-based) -> its rank: lowest best, ties to the earlier epoch
        for _, row in (rows.iterrows() if rows is not None else ()):
            epoch = int(row["epoch"]) + 1
            if self.file(epoch).is_file():
                self.keys[epoch] = (rank_key(row[self.monitor], row["val_loss"], metric), epoch)
        self.prune()

    def file(self, epoch: int) -> Path:
        return self.folder / f"epoch{epoch}.weights.h5"

    def ranked(self) -> list:
        """Return the kept epochs (1-based), best first."""
        return sorted(self.keys, key=self.keys.get)

    def prune(self) -> None:
        """Keep the N best epochs' files; remove every other epoch file in the folder."""
        self.keys = {epoch: self.keys[epoch] for epoch in self.ranked()[:self.n]}
        for path in self.folder.glob("epoch*.weights.h5") if self.folder.is_dir() else ():
            if path not in {self.file(epoch) for epoch in self.keys}:
                path.unlink()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        key = (rank_key(logs.get(self.monitor), logs.get("val_loss"), self.metric), epoch + 1)
        if len(self.keys) >= self.n and key >= max(self.keys.values()):
            return
        with atomic_path(self.file(epoch + 1)) as temp:
            self.model.save_weights(str(temp))
        self.keys[epoch + 1] = key
        self.prune()


def mean_weights(model, files: list) -> list:
    """Return the element-wise mean of the weights saved in `files` (the model's own weights left as they were).

    Every floating-point variable is averaged, BatchNorm's moving mean and variance included (a simple mean
    of the saved statistics, not statistics recomputed for the averaged weights as SWA does); integer
    state (random seeds, counters) is the first file's.
    """
    saved = [weights_of(model, path) for path in files]
    return [np.mean(np.stack(values), axis=0).astype(values[0].dtype)
            if np.issubdtype(values[0].dtype, np.floating) else values[0] for values in zip(*saved)]


def keep_average(average: float, best: float, metric: str) -> bool:
    """Return True when the averaged weights' score is not below the best epoch's, in the metric's direction."""
    return rank_key(average, None, metric)[:2] <= rank_key(best, None, metric)[:2]


def holdout_score(model, val_ds, metric: str, target: str = "") -> tuple[float, float]:
    """Return (the metric, the loss) of the model's current weights on the validation batches, as the fit logs them."""
    logs = model.evaluate(val_ds, verbose=0, return_dict=True)
    name = log_name(metric)
    value = logs.get(f"{target}_{name}", logs.get(name)) if target else logs.get(name)
    return float(value), float(logs["loss"])


def average_top(model, keeper: TopEpochs, val_ds, best: dict, metric: str, checkpoint, stage: str,
                target: str = "") -> dict:
    """Score the mean of the kept epochs' weights; make it the stage's checkpoint when it scores no worse.

    Returns best_row's dict (score, val_loss, epoch) for the stage's final weights, with "average": the
    epochs averaged, both scores and whether the average was kept (state.json records it).
    """
    epochs = keeper.ranked()
    if len(epochs) < 2:
        print(f"{stage}: --average-top {keeper.n}: only {len(epochs)} epoch(s) scored; nothing to average")
        return best
    model.set_weights(mean_weights(model, [keeper.file(e) for e in epochs]))
    score, loss = holdout_score(model, val_ds, metric, target)
    kept = keep_average(score, best["score"], metric)
    verdict = "kept the average" if kept else f"not kept: epoch {best['epoch']}'s weights stay"
    print(f"{stage}: --average-top {keeper.n}: the mean of epochs {', '.join(map(str, epochs))} scores {monitor(metric)} "
          f"{score:.4f} on the holdout, the best single epoch ({best['epoch']}) {best['score']:.4f}: {verdict}",
          flush=True)
    record = {"epochs": epochs, "score": score, "val_loss": loss, "best_epoch_score": best["score"], "kept": kept}
    if not kept:
        return {**best, "average": record}
    with atomic_path(checkpoint) as temp:
        model.save_weights(str(temp))
        record_shape(temp, model)
    return {**best, "score": score, "val_loss": loss, "average": record}
