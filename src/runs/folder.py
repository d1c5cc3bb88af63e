"""The run folder: every path a training run writes, its typed config read back, its lock.

    run = RunFolder("runs/effb0")
    cfg = run.load_config()              # a TrainConfig, checked like flags are
    stage = run.final_stage()            # the stage prediction uses, its size and weights
    with run.lock(): ...                 # one process writes into a run at a time

Layout: config.json (the resolved TrainConfig), class_map.json, split.csv, state.json (finished
stages and their best scores), <stage>.weights.h5 (best weights per stage), history-<stage>.csv,
backup/<stage>/ (Keras BackupAndRestore while a stage runs), history.csv, curves.png,
holdout_predictions.csv, .lock. Nothing else in the kit spells these names.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

from src.core.config import make_config, save_config
from src.core.errors import KitError
from src.core.files import write_csv, write_json
from src.core.settings import TrainConfig
from src.data.class_maps import load_class_maps, save_class_maps
from src.runs.stages import Stage, plan_stages

LOCK = ".lock"
# Settings a resumed run may change: how long it trains, where the data sits now, how images are cached.
MAY_CHANGE_ON_RESUME = {"resume", "stage1_epochs", "stage2_epochs", "time_limit", "data", "split_file", "out",
                        "cache", "min_batch_size", "strict_images", "accelerator"}


class RunFolder:
    """One training run's folder; see the module docstring for its layout."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __str__(self) -> str:  # messages name the folder as the user typed it
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------ paths
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def class_map_file(self) -> Path:
        return self.path / "class_map.json"

    @property
    def split_file(self) -> Path:
        return self.path / "split.csv"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def history_file(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves_file(self) -> Path:
        return self.path / "curves.png"

    @property
    def holdout_file(self) -> Path:
        return self.path / "holdout_predictions.csv"

    def weights(self, stage: str) -> Path:
        """Return the path of a stage's best weights."""
        return self.path / f"{stage}.weights.h5"

    def stage_history(self, stage: str) -> Path:
        """Return the path of a stage's per-epoch log (Keras CSVLogger)."""
        return self.path / f"history-{stage}.csv"

    def backup(self, stage: str) -> Path:
        """Return the folder of a running stage's BackupAndRestore state."""
        return self.path / "backup" / stage

    # ------------------------------------------------------------ config, classes, split, state
    def is_run(self) -> bool:
        """Return True when the folder holds a training run (its config.json)."""
        return self.config_file.is_file()

    def require_run(self, flag: str = "--run") -> None:
        """Raise naming the folder when it holds no training run."""
        if not self.is_run():
            raise KitError(f"{flag} {self.path}: not a training run (no config.json); python -m src.train makes one")

    def save_config(self, cfg) -> Path:
        """Write the resolved TrainConfig as config.json."""
        return save_config(cfg, self.path)

    def load_config(self):
        """Return config.json as a TrainConfig, each value checked as flags are."""
        self.require_run()
        data = json.loads(self.config_file.read_text())
        data = {k: v for k, v in data.items() if k not in getattr(TrainConfig, "CLI_HIDDEN", ())}
        return make_config(TrainConfig, data, source=str(self.config_file))

    def save_class_maps(self, target: str, maps: dict) -> Path:
        """Write class_map.json: the target column and every label column's classes in index order."""
        return save_class_maps(self.class_map_file, target, maps)

    def class_maps(self) -> tuple[str, dict]:
        """Return (target column, {column: ClassMap}) from class_map.json."""
        return load_class_maps(self.class_map_file)

    def save_split(self, split) -> Path:
        """Write split.csv: the images this run trained and validated on."""
        return write_csv(self.split_file, split.drop(columns=["width", "height", "orientation"], errors="ignore"))

    def split(self):
        """Return split.csv (ids as text, so '007' stays '007')."""
        import pandas as pd

        return pd.read_csv(self.split_file, dtype={"id": str}, keep_default_na=False)

    def state(self) -> dict:
        """Return which stages finished and their best val_accuracy (state.json)."""
        if not self.state_file.is_file():
            return {"finished": [], "best": {}}
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict) -> None:
        write_json(self.state_file, state)

    def clear_stage(self, name: str) -> None:
        """Remove one stage's backup, history and checkpoint, so it starts again from its beginning."""
        shutil.rmtree(self.backup(name), ignore_errors=True)
        for path in (self.stage_history(name), self.weights(name)):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ what prediction uses
    def final_stage(self) -> Stage:
        """Return the run's last planned stage, checked finished and with its weights in place.

        Never another stage's weights instead: a missing stage2.weights.h5 is an error, not stage 1.
        """
        stage = plan_stages(self.load_config())[-1]
        if stage.name not in self.state()["finished"]:
            raise KitError(f"--run {self.path}: {stage.name} has not finished; continue it with "
                           f"python -m src.train --config {self.config_file} --resume")
        if not self.weights(stage.name).is_file():
            raise KitError(f"--run {self.path}: {self.weights(stage.name).name} is missing, though {stage.name} "
                           "finished: the run's final weights are gone")
        return stage

    # ------------------------------------------------------------ starting and resuming
    def check_resume(self, cfg) -> None:
        """Refuse to continue a run with settings that would change its data, model or recipe."""
        saved = self.load_config()
        changed = [f.name for f in dataclasses.fields(cfg)
                   if f.name not in MAY_CHANGE_ON_RESUME and f.name not in getattr(cfg, "CLI_HIDDEN", ())
                   and getattr(cfg, f.name) != getattr(saved, f.name)]
        if changed:
            name = changed[0]
            raise KitError(f"--resume: --{name.replace('_', '-')} is {getattr(cfg, name)!r} but {self.path} was "
                           f"trained with {getattr(saved, name)!r}; resume with the run's own settings "
                           f"(--config {self.config_file} --resume) or train into another --out")

    @contextlib.contextmanager
    def lock(self):
        """Hold the folder's lock file (this process's id) while training writes into it.

        A second process is refused, naming the holder; a lock left by a dead process is taken
        over, saying so. A folder this call made and left with nothing but the lock is removed,
        so a run that failed on bad input does not block the corrected rerun.
        """
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK
        take_lock(lock)
        try:
            yield self
        finally:
            lock.unlink(missing_ok=True)
            if created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    def holds_files(self) -> bool:
        """Return True when the folder holds anything besides the lock."""
        return self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir())


def take_lock(lock: Path) -> None:
    """Create the lock file holding this process's id; raise when a live process holds it."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = read_pid(lock)
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise KitError(f"{lock.parent} is in use by process {holder} (its {LOCK} file): wait for it to "
                               f"finish, or train into another --out") from None
            print(f"{lock.parent}: taking over the lock of process {holder}, which is no longer running")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return
    raise KitError(f"{lock}: could not take the lock")


def read_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Return True when a process with this id is running (signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
