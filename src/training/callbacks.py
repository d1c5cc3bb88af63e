"""Training callbacks that survive a cut-off Kaggle session.

Keras's BackupAndRestore brings back the weights, the optimizer (and so the learning-rate
schedule's step) and the epoch counter, but EarlyStopping and ModelCheckpoint start again
from nothing: after a resume, the first epoch would count as "best" and overwrite the real
best checkpoint, and early stopping would forget how long it had waited. These subclasses
take their state from the stage's history rows and best checkpoint instead.
"""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from src.core.errors import KitError
from src.core.files import atomic_path


def resume_state(rows, monitor: str = "val_accuracy") -> tuple[float | None, int]:
    """Return (best value so far, epochs since it) from a stage's finished history rows."""
    if rows is None or len(rows) == 0:
        return None, 0
    values = np.asarray(rows[monitor], dtype=float)
    best = int(np.argmax(values))
    return float(values[best]), len(values) - 1 - best


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on val_accuracy that resumes with the best value, the wait and the best weights."""

    def __init__(self, patience: int, best: float | None, wait: int, best_weights_file=None):
        super().__init__(monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True)
        self.resume_best, self.resume_wait, self.best_weights_file = best, wait, best_weights_file

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume_best is None:
            return
        self.best, self.wait = self.resume_best, self.resume_wait
        if self.best_weights_file is not None:
            # The checkpoint holds the optimizer's state too: loading it would rewind the step
            # counter (and so the learning-rate schedule) to the best epoch. Put both back.
            current = self.model.get_weights()
            optimizer = self.model.optimizer
            state = [v.numpy() for v in optimizer.variables] if optimizer is not None else []
            self.model.load_weights(self.best_weights_file)
            self.best_weights = self.model.get_weights()
            self.model.set_weights(current)
            for variable, value in zip(optimizer.variables if optimizer is not None else [], state):
                variable.assign(value)


class ResumableCheckpoint(keras.callbacks.Callback):
    """Best-only weights checkpoint on val_accuracy that remembers the best value across a resume.

    Written to a temporary name and renamed (Keras's ModelCheckpoint writes in place): a kill
    mid-write leaves the previous best file whole.
    """

    def __init__(self, path, best: float | None, monitor: str = "val_accuracy"):
        super().__init__()
        self.path, self.best, self.monitor = Path(path), best, monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and not value > self.best):
            return
        self.best = float(value)
        with atomic_path(self.path) as temp:
            self.model.save_weights(str(temp))


class TimeLimit(keras.callbacks.Callback):
    """Stop after the last epoch that fits before a deadline (time.monotonic()), so a run ends cleanly.

    The next epoch is assumed to take as long as the longest so far. `stopped` says whether it
    stopped the fit: then the stage is not finished and `--resume` continues it.
    """

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline, self.longest, self.started, self.stopped = deadline, 0.0, 0.0, False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.started)
        if now + self.longest > self.deadline:
            self.stopped = True
            self.model.stop_training = True


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to each epoch's logs as `lr` (for history.csv)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["lr"] = float(keras.ops.convert_to_numpy(rate))


class TargetMetrics(keras.callbacks.Callback):
    """Multi-task runs: copy the submission target's head metrics to accuracy / val_accuracy.

    Keras logs `<column>_accuracy` per head; early stopping, the best checkpoint, resume and the
    reports all follow `val_accuracy`, which should be the column the competition scores.
    """

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            key = f"{prefix}{self.target}_accuracy"
            if key in logs:
                logs[f"{prefix}accuracy"] = logs[key]


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """End a stage with a sentence when an epoch's training loss is NaN or inf (first in the callback list).

    Raised at the epoch's end before the backup, checkpoint and history callbacks see it: the
    stage stays unfinished, its files hold the last good epoch, and nothing (no later stage, no
    holdout, no submission) is made from NaN weights. Keras's TerminateOnNaN only sets
    stop_training, after which the epoch's end still runs and keeps the NaN weights.
    """

    def __init__(self, stage: str, lr: float, policy: str, replicas: int):
        super().__init__()
        self.stage, self.lr, self.policy, self.replicas = stage, lr, policy, replicas

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise KitError(self.sentence(float(loss), epoch + 1))

    def sentence(self, loss: float, epoch: int) -> str:
        """Return what happened, where, and the likely cause for this precision and learning rate."""
        flag = f"--{self.stage}-lr"
        if self.policy == "mixed_float16":
            cause = (f"likely float16 overflow under mixed precision ({self.policy}, {self.replicas} replica(s)), "
                     f"or a learning rate too high ({flag} {self.lr:g})")
        else:
            cause = f"likely a learning rate too high ({flag} {self.lr:g}; precision {self.policy})"
        return (f"{self.stage}: the training loss is {loss} at epoch {epoch}: {cause}. The stage was stopped and "
                f"is not finished, so nothing is predicted or submitted from these weights; train again into "
                f"another --out with a lower {flag}")
