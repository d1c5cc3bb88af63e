"""Training callbacks that survive a cut-off Kaggle session, and that follow the competition's metric.

Keras's BackupAndRestore brings back the weights, the optimizer (and so the learning-rate
schedule's step) and the epoch counter, but EarlyStopping and ModelCheckpoint start again
from nothing: after a resume, the first epoch would count as "best" and overwrite the real
best checkpoint, and early stopping would forget how long it had waited. These subclasses
take their state from the stage's history rows and best checkpoint instead.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np

from src.core.errors import KitError
from src.core.files import atomic_path
from src.core.metric_choice import log_name
from src.models.classifier import record_shape
# re-exported: the stages, screening and the tests import them from here
from src.training.early_stopping import (STOP_NOT_BEFORE, Best, ResumableEarlyStopping, earliest_stop,  # noqa: F401
                                         resume_state, stop_state, weights_of)


class ResumableCheckpoint(keras.callbacks.Callback):
    """Best-only weights checkpoint on the run's metric (ties to the lower val_loss), its best kept across a resume.

    Written to a temporary name and renamed (Keras's ModelCheckpoint writes in place): a kill
    mid-write leaves the previous best file whole.
    """

    def __init__(self, path, metric: str = "accuracy", best: float | None = None, best_loss: float | None = None):
        super().__init__()
        self.path, self.best = Path(path), Best(metric, best, best_loss)

    def on_epoch_end(self, epoch, logs=None):
        if not self.best.offer(logs):
            return
        with atomic_path(self.path) as temp:
            self.model.save_weights(str(temp))
            record_shape(temp, self.model)  # prediction checks the run's config against it


class LastCheckpoint(keras.callbacks.Callback):
    """The weights of every epoch's end, written over the last (atomically): what a full-fit keeps.

    A --full-fit has no holdout to choose an epoch by, so its stage's weights are the last epoch's;
    written each epoch, so a stage cut by --time-limit or a kill still has its latest weights.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.path) as temp:
            self.model.save_weights(str(temp))
            record_shape(temp, self.model)


def keep_callbacks(cfg, stage, metric: str, checkpoint: Path, resume: tuple, floor: float | None = None) -> list:
    """Return what keeps a stage's weights: early stopping and the best checkpoint on the holdout metric, or for a
    full-fit (no holdout) the last epoch's weights written every epoch. Every stage of every run keeps its
    weights through it."""
    if cfg.full_fit:
        return [LastCheckpoint(checkpoint)]
    best, best_loss, wait, lowest = resume
    return [ResumableEarlyStopping(stage.patience, metric, best, best_loss, wait,
                                   checkpoint if best is not None else None,
                                   min_epochs=earliest_stop(stage.epochs, stage.patience), lowest_loss=lowest,
                                   floor=floor),
            ResumableCheckpoint(checkpoint, metric, best, best_loss)]


def item_bytes(dtype) -> int:
    """Return the bytes of one value of a variable's dtype (a name or a dtype object); 4 when numpy lacks it."""
    try:
        return np.dtype(str(getattr(dtype, "name", dtype))).itemsize
    except TypeError:  # bfloat16 and other accelerator types
        return 4


class DiskSpaceGuard(keras.callbacks.Callback):
    """Stop a stage with a sentence before an epoch's files are written to a disk that cannot hold them.

    Placed first: at each epoch's end it runs before BackupAndRestore, the checkpoint and the log
    write. On a full disk h5py fails part-way (and has crashed the process), so the space is checked
    before writing: the previous epoch's files are kept whole, and the zero-byte files a writer
    opened are removed.
    """

    def __init__(self, folder, copies: int = 3):
        super().__init__()
        self.folder, self.copies = Path(folder), copies  # backup, checkpoint and its temporary name

    def needed(self) -> int:
        """Return the bytes one epoch's files may take: the weights and optimizer state, per copy, plus 1 MB."""
        variables = list(self.model.weights) + list(getattr(self.model.optimizer, "variables", []) or [])
        size = sum(int(np.prod(v.shape)) * item_bytes(v.dtype) for v in variables)
        return self.copies * size + 2**20

    def check(self) -> None:
        free, needed = shutil.disk_usage(self.folder).free, self.needed()
        if free >= needed:
            return
        for path in self.folder.iterdir():
            if path.is_file() and path.stat().st_size == 0 and not path.name.startswith("."):
                path.unlink()
        raise KitError(f"cannot write {self.folder}: {free / 2**20:.1f} MB free on its disk, and an epoch's weights "
                       f"and backup need about {needed / 2**20:.1f} MB: free some space or train into another --out, "
                       "then continue with --resume; the files of the last finished epoch were kept")

    def on_train_begin(self, logs=None):
        self.check()

    def on_epoch_end(self, epoch, logs=None):
        self.check()


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
    """Multi-task runs: copy the submission target's head metrics to accuracy / val_accuracy and val_<metric>.

    Keras logs `<column>_accuracy` per head; early stopping, the best checkpoint, resume and the
    reports follow `val_accuracy` and `val_<metric>`, which should be the column the competition scores.
    """

    def __init__(self, target: str, metric: str = "accuracy"):
        super().__init__()
        self.target, self.names = target, tuple(dict.fromkeys(("accuracy", log_name(metric))))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            for name in self.names:
                key = f"{prefix}{self.target}_{name}"
                if key in logs:
                    logs[f"{prefix}{name}"] = logs[key]


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
