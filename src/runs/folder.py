"""The run folder: every path a training run writes, its typed config read back, its lock.

    run = RunFolder("runs/effb0")
    cfg = run.load_config()              # a TrainConfig, checked like flags are
    stage = run.final_stage()            # the stage prediction uses, its size and weights
    with run.lock(): ...                 # one process writes into a run at a time

Layout: config.json (the resolved TrainConfig), class_map.json, split.csv, state.json (finished
stages and their best scores), <stage>.weights.h5 (best weights per stage), history-<stage>.csv,
backup/<stage>/ (Keras BackupAndRestore while a stage runs), <stage>.top/ (--average-top's best epochs
while a stage runs), history.csv, curves.png,
holdout_predictions.csv, tensorboard/<stage>/ (--tensorboard), .lock. A K-fold run holds fold-<i>/
run folders, config.json, oof_predictions.csv, cv.csv and cv.png. Other modules reach these files through
RunFolder's paths; state.json's content is src.runs.state's, the lock's src.runs.lock's.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path

from src.core.config import make_config, save_config
from src.core.errors import KitError, disk_errors
from src.core.files import read_json, read_log, write_csv
from src.core.roles import names_where
from src.core.settings import TrainConfig
from src.data.class_maps import load_class_maps, save_class_maps
from src.runs.lock import LOCK, take_lock
from src.runs.stages import Stage, effective, plan_stages
from src.runs.state import RunState, read_state, write_state

FOLD_PREFIX = "fold-"


def writable(path: Path) -> bool:
    """Return True when files can be made in path (False on a read-only mount, as /kaggle/input is)."""
    return os.access(path, os.W_OK)


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

    @property
    def cv_file(self) -> Path:
        return self.path / "cv.csv"

    @property
    def oof_file(self) -> Path:
        return self.path / "oof_predictions.csv"

    @property
    def cv_plot_file(self) -> Path:
        return self.path / "cv.png"

    def fold(self, index: int) -> "RunFolder":
        """Return the run folder of one fold of a K-fold run."""
        return RunFolder(self.path / f"{FOLD_PREFIX}{index}")

    def folds(self) -> list:
        """Return a K-fold run's fold run folders in fold order (empty for a one-split run)."""
        found = [p for p in self.path.glob(f"{FOLD_PREFIX}*") if p.is_dir() and p.name[len(FOLD_PREFIX):].isdigit()]
        return [RunFolder(p) for p in sorted(found, key=lambda p: int(p.name[len(FOLD_PREFIX):]))]

    def tensorboard(self, stage: str) -> Path:
        """Return the folder of a stage's TensorBoard logs (--tensorboard)."""
        return self.path / "tensorboard" / stage

    def weights(self, stage: str) -> Path:
        """Return the path of a stage's best weights."""
        return self.path / f"{stage}.weights.h5"

    def stage_history(self, stage: str) -> Path:
        """Return the path of a stage's per-epoch log (Keras CSVLogger)."""
        return self.path / f"history-{stage}.csv"

    def top_epochs(self, stage: str) -> Path:
        """Return the folder of a running stage's N best epochs' weights (--average-top)."""
        return self.path / f"{stage}.top"

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
        data = read_json(self.config_file, "the run's settings")
        if not isinstance(data, dict):
            raise KitError(f"{self.config_file}: damaged (expected a mapping of settings): restore it from a copy, "
                           "or train the run again into another --out")
        data = {k: v for k, v in data.items() if k not in getattr(TrainConfig, "CLI_HIDDEN", ())}
        return make_config(TrainConfig, data, source=str(self.config_file))

    def config_values(self) -> dict:
        """Return config.json as written, unchecked: what a ledger lists, whichever kit version wrote it.

        Raises KitError naming the file when it is missing, not JSON or not a mapping.
        """
        if not self.config_file.is_file():
            raise KitError(f"{self.path}: no config.json (the run's settings)")
        data = read_json(self.config_file, "the run's settings")
        if not isinstance(data, dict):
            raise KitError(f"{self.config_file}: expected a mapping of settings, got {type(data).__name__}")
        return data

    def planned_stages(self, values: dict) -> list:
        """Return the stages config values plan; keys this kit version does not know are left to the caller."""
        known = {f.name for f in dataclasses.fields(TrainConfig)} - set(getattr(TrainConfig, "CLI_HIDDEN", ()))
        return plan_stages(make_config(TrainConfig, {k: v for k, v in values.items() if k in known},
                                       source=str(self.config_file)))

    def save_class_maps(self, target: str, maps: dict) -> Path:
        """Write class_map.json: the target column and every label column's classes in index order."""
        return save_class_maps(self.class_map_file, target, maps)

    def class_maps(self) -> tuple[str, dict]:
        """Return (target column, {column: ClassMap}) from class_map.json; a damaged file is named."""
        if not self.class_map_file.is_file():
            raise KitError(f"--run {self.path}: {self.class_map_file.name} is missing: the run's classes are gone; "
                           "train the run again")
        try:
            return load_class_maps(self.class_map_file)
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSON or its content
            detail = f"no {err} entry" if isinstance(err, KeyError) else str(err).splitlines()[0]
            raise KitError(f"{self.class_map_file}: damaged ({detail}): it should hold the classes python -m "
                           "src.train wrote; restore it from a copy, or train the run again") from None

    def save_split(self, split) -> Path:
        """Write split.csv: the images this run trained and validated on."""
        return write_csv(self.split_file, split.drop(columns=["width", "height", "orientation"], errors="ignore"))

    def split(self):
        """Return split.csv (ids as text, so '007' stays '007')."""
        import pandas as pd

        return pd.read_csv(self.split_file, dtype={"id": str}, keep_default_na=False)

    def state(self) -> RunState:
        """Return state.json as a RunState (src.runs.state): finished stages, best scores, the stage kept."""
        return read_state(self.state_file)

    def save_state(self, state: RunState) -> None:
        write_state(self.state_file, state)

    def kept_stage(self, planned: list) -> str:
        """Return the name of the stage whose weights the run keeps: state.json's choice, else the last planned."""
        return self.state().kept or planned[-1].name

    def history(self):
        """Return history.csv (one row per epoch of every stage), or None when the run has not written it."""
        return read_log(self.history_file)

    def stage_rows(self, stage: str):
        """Return a stage's per-epoch log rows so far (its Keras CSVLogger file), or None."""
        return read_log(self.stage_history(stage))

    def clear_stage(self, name: str) -> None:
        """Remove one stage's backup, history and checkpoint, so it starts again from its beginning."""
        shutil.rmtree(self.backup(name), ignore_errors=True)
        shutil.rmtree(self.top_epochs(name), ignore_errors=True)
        for path in (self.stage_history(name), self.weights(name)):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ what prediction uses
    def final_stage(self) -> Stage:
        """Return the stage whose weights are the run's final ones, checked finished and with its weights in place.

        The stage training kept (state.json's kept: by --final-stage, the best-scoring stage or the last);
        runs from before that choice existed: the last planned stage. Never another stage's weights
        instead: a missing kept stage's file is an error.
        """
        stages, state = plan_stages(self.load_config()), self.state()
        stage = next((s for s in stages if s.name == state.kept), stages[-1])
        if stage.name not in state.finished:
            raise KitError(f"--run {self.path}: {stage.name} has not finished; {self.how_to_resume()}")
        if not self.weights(stage.name).is_file():
            raise KitError(f"--run {self.path}: {self.weights(stage.name).name} is missing, though {stage.name} "
                           "finished: the run's final weights are gone")
        return stage

    # ------------------------------------------------------------ starting and resuming
    def check_start(self, resume: bool) -> None:
        """Refuse, in one true sentence, a folder holding a run without --resume, or holding files but no run."""
        if not self.holds_files():
            return
        if not self.is_run():
            names = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise KitError(f"{self.path} holds {shown} but no training run (no config.json): train into an empty "
                           "or new --out; nothing was changed")
        if not resume:
            raise KitError(f"{self.path} already holds a run: pass --resume to continue it, or another --out; "
                           "nothing was changed")

    def how_to_resume(self) -> str:
        """Return how to continue this run: the command, or, for a read-only folder, a writable copy first.

        An attached Kaggle input (/kaggle/input/...) is read-only, and --resume writes into the run.
        """
        if writable(self.path):
            return f"continue it with python -m src.train --config {self.config_file} --resume"
        copy = (Path("/kaggle/working") if Path("/kaggle/working").is_dir() else Path.cwd()) / "runs" / self.path.name
        return (f"{self.path} is read-only (an attached Kaggle input is), so continue it in a writable copy: "
                f"cp -r {self.path} {copy} && python -m src.train --config {copy / 'config.json'} --out {copy} "
                "--resume")

    def check_resume(self, cfg) -> None:
        """Refuse to continue a run with settings that would change its data, model or recipe."""
        saved = self.load_config()  # each setting's role says whether it may change (src.core.roles)
        fixed = names_where(type(cfg), lambda role: not role.on_resume)
        changed = [f.name for f in dataclasses.fields(cfg)
                   if f.name in fixed and f.name not in getattr(cfg, "CLI_HIDDEN", ())
                   and effective(cfg, f.name) != effective(saved, f.name)]
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
        lock = self.path / LOCK
        with disk_errors(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
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
