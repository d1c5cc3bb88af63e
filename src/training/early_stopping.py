"""Early stopping on the competition's metric that survives a resume and a noisy first epoch.

    stopper = ResumableEarlyStopping(patience, metric, *stop_state(rows, metric)[:3], min_epochs=...)

Keras's EarlyStopping starts again from nothing after BackupAndRestore brings a stage back: the first
resumed epoch would count as "best" and the wait would be forgotten. The state here is read from the
stage's history rows instead (resume_state, stop_state). Best is also what the checkpoint offers epochs to.
"""
from __future__ import annotations

import keras
import numpy as np

from src.core.errors import KitError
from src.core.metric_choice import is_better, monitor, rank_key


def resume_state(rows, metric: str = "accuracy") -> tuple[float | None, float | None, int]:
    """Return (best metric value, its val_loss, epochs since it) from a stage's finished history rows.

    The best row is chosen as during the fit: the metric in its direction, ties to the lower val_loss.
    """
    if rows is None or len(rows) == 0:
        return None, None, 0
    column = monitor(metric)
    if column not in rows:
        raise KitError(f"--resume: the stage's history has no {column} column: it was trained for another "
                       "metric; resume with the run's own --metric")
    values, losses = np.asarray(rows[column], dtype=float), np.asarray(rows["val_loss"], dtype=float)
    best = min(range(len(values)), key=lambda i: (rank_key(values[i], losses[i], metric), i))
    return float(values[best]), float(losses[best]), len(values) - 1 - best


def stop_state(rows, metric: str = "accuracy") -> tuple:
    """Return what a resumed ResumableEarlyStopping starts from: (best metric value, its val_loss, epochs waited
    since the later of that epoch and the lowest val_loss, the lowest val_loss), as the fit would have them."""
    best, loss, wait = resume_state(rows, metric)
    if best is None:
        return best, loss, wait, None
    losses = np.asarray(rows["val_loss"], dtype=float)
    finite = [i for i in range(len(losses)) if np.isfinite(losses[i])]
    if not finite:
        return best, loss, wait, None
    lowest = min(finite, key=lambda i: (losses[i], i))
    return best, loss, min(wait, len(losses) - 1 - lowest), float(losses[lowest])


class Best:
    """The best (metric value, val_loss) so far and whether a new epoch beats it (src.core.metric_choice.is_better)."""

    def __init__(self, metric: str, value: float | None = None, loss: float | None = None):
        self.metric, self.monitor = metric, monitor(metric)
        self.value, self.loss = value, loss

    def offer(self, logs) -> bool:
        """Return True, and keep the epoch as the best, when its logs beat the best so far."""
        if self.monitor not in (logs or {}):
            raise KitError(f"the epoch's logs have no {self.monitor} (they hold {', '.join(sorted(logs or {}))}): "
                           "the model was compiled without the run's metric")
        value, loss = float(logs[self.monitor]), logs.get("val_loss")
        if not is_better(value, loss, self.value, self.loss, self.metric):
            return False
        self.value, self.loss = value, None if loss is None else float(loss)
        return True


# Early stopping waits for this share of a stage's planned epochs before its patience may end the stage: from
# random weights the first epoch's near-constant answer can score a log loss or a QWK that the next few,
# still overconfident or noisy, do not beat (seen: stage 1 ended at epoch 5 of 8 and kept epoch 1's constant
# answer). The checkpoint still keeps the best epoch by the metric.
STOP_NOT_BEFORE = 1 / 3


def earliest_stop(planned: int, patience: int) -> int:
    """Return the first epoch (1-based) after which patience may end a stage of `planned` epochs."""
    return max(patience, int(np.ceil(planned * STOP_NOT_BEFORE)))


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Early stopping on the run's metric (ties to the lower val_loss) that resumes with its best, wait and weights.

    Keras's EarlyStopping keeps the first of equal values: on a rare-positive holdout val_accuracy
    ties at every epoch, so it would keep epoch 1 whatever val_loss said. Best weights are put
    back when the fit ends, as Keras does with restore_best_weights. Two guards against a noisy metric on a
    small holdout: patience ends nothing before `min_epochs` (earliest_stop), and an epoch that lowers the
    best val_loss so far resets the wait too (a loss-backed stop: the network is still learning), while only
    the metric chooses the weights kept. And with a `floor` (the trivial answer's score on the holdout,
    src.training.holdout.epoch_floor), patience counts only once an epoch beats it: from random weights the
    first epoch's near-constant answer was the best for four epochs of BatchNorm settling and ended the stage
    (a number run kept epoch 1's RMSE 31.5, worse than the training mean's 26.9, where the same command
    reached 12.1 when it went on).
    """

    def __init__(self, patience: int, metric: str = "accuracy", best: float | None = None,
                 best_loss: float | None = None, wait: int = 0, best_weights_file=None, min_epochs: int = 1,
                 lowest_loss: float | None = None, floor: float | None = None):
        super().__init__()
        self.patience, self.metric, self.min_epochs, self.floor = patience, metric, min_epochs, floor
        self.resume = (best, best_loss, wait, lowest_loss)
        self.best_weights_file = best_weights_file

    def on_train_begin(self, logs=None):
        best, loss, self.wait, self.lowest_loss = self.resume
        self.best, self.stopped_epoch, self.best_weights = Best(self.metric, best, loss), 0, None
        if best is not None and self.best_weights_file is not None:
            self.best_weights = weights_of(self.model, self.best_weights_file)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        lower = loss is not None and np.isfinite(loss) and (self.lowest_loss is None or loss < self.lowest_loss)
        if lower:
            self.lowest_loss = float(loss)
        if self.best.offer(logs):
            self.wait, self.best_weights = 0, self.model.get_weights()
            return
        self.wait = 0 if lower else self.wait + 1
        if not self.learnt():  # no epoch beats the trivial answer yet: there is nothing to be patient about
            return
        if self.wait >= self.patience and epoch > 0 and epoch + 1 >= self.min_epochs:
            self.stopped_epoch, self.model.stop_training = epoch, True

    def learnt(self) -> bool:
        """Return True when the best epoch beats the floor (the trivial answer's score), or there is no floor."""
        return self.floor is None or self.best.value is None or is_better(self.best.value, None, self.floor, None,
                                                                          self.metric)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def weights_of(model, path) -> list:
    """Return the weights stored in a checkpoint, leaving the model's weights and optimizer state as they were.

    The checkpoint holds the optimizer's state too: loading it would rewind the step counter (and so
    the learning-rate schedule) to the best epoch. Both are put back.
    """
    current = model.get_weights()
    optimizer = model.optimizer
    state = [v.numpy() for v in optimizer.variables] if optimizer is not None else []
    model.load_weights(str(path))
    found = model.get_weights()
    model.set_weights(current)
    for variable, value in zip(optimizer.variables if optimizer is not None else [], state):
        variable.assign(value)
    return found
