"""Finding training runs under a folder: what `python -m src.ledger --runs DIR` lists.

An auto run's folder (src.auto: its auto_state.json) is listed as one, not searched further.
A folder is a training run when its config.json is a training config (it plans stage 1), or when
it holds files only a run writes (state.json, history.csv, weights, fold-<i>/ folders) even if its
config.json is damaged or gone. The kit's other jobs' folders (EDA, screening, head search, pruning),
known by their config.json's fields, are named as theirs; any other config.json is named as skipped;
a run's own subfolders (folds, backups, TensorBoard logs) are not searched again.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from src.core.config import DataOptions, PipelineOptions
from src.core.settings import EdaConfig, PruneConfig, ScreenConfig, TuneConfig
from src.runs.auto_state import is_auto_folder
from src.runs.folder import FOLD_PREFIX, RunFolder

OTHER_JOBS = {"src.eda": EdaConfig, "src.screen_backbones": ScreenConfig, "src.tune": TuneConfig,
              "src.prune": PruneConfig}  # the kit's jobs that write a config.json and are no training run
JOB_PREFIX = "a folder of python -m "  # the reason given for those: the ledger lists them on one quiet line
NOT_SEARCHED = ("backup", "tensorboard", "splits", "features", "pixels")  # caches of many files, no runs
MAX_DEPTH = 6  # runs/kernels/<slug>/output/runs/<run>: a kernel's downloaded output


def find_runs(places) -> tuple[list, list]:
    """Return (run folders found, [(folder, why skipped)]) under each place (a run folder or a folder of runs)."""
    runs, skipped, seen = [], [], set()
    for place in map(Path, places):
        if not place.is_dir():
            skipped.append((place, "no such folder"))
            continue
        walk(place, 0, runs, skipped, seen)
    return runs, skipped


def walk(folder: Path, depth: int, runs: list, skipped: list, seen: set) -> None:
    real = folder.resolve()  # a symbolic link (a loop, a second name) leads to a folder visited once
    if real in seen:
        return
    seen.add(real)
    run = RunFolder(folder)
    if is_auto_folder(folder):  # an auto run is one row with its steps; its own runs are its steps
        runs.append(run)
        return
    kind = run_kind(run)
    if kind == "run":
        runs.append(run)
        return
    if kind:
        skipped.append((folder, kind))
    if depth >= MAX_DEPTH or not folder.is_dir():
        return
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not child.name.startswith(".") and child.name not in NOT_SEARCHED:
            walk(child, depth + 1, runs, skipped, seen)


def run_kind(run: RunFolder) -> str:
    """Return 'run' for a training run (whole or damaged), why not for another job's folder, else ''."""
    if leaves_of_a_run(run):
        return "run"
    if not run.config_file.is_file():
        return ""
    try:
        values = json.loads(run.config_file.read_text())
    except (OSError, ValueError):
        return "run"  # a damaged config.json: listed as a damaged run rather than hidden
    if isinstance(values, dict) and "stage1_size" in values:
        return "run"
    job = kit_job(values) if isinstance(values, dict) else None
    return f"{JOB_PREFIX}{job}" if job else "a config.json of no kit job (not a training run)"


def kit_job(values: dict) -> str | None:
    """Return the kit command whose own settings (fields no other job has) a config.json holds, None for none.

    Why: runs/eda and runs/screen sit beside the runs after `make demo`; they are the kit's, not faults.
    """
    shared = {f.name for cls in (DataOptions, PipelineOptions) for f in dataclasses.fields(cls)}
    fields = {job: {f.name for f in dataclasses.fields(cls)} - shared for job, cls in OTHER_JOBS.items()}
    own = {job: names - set().union(*(other for o, other in fields.items() if o != job))
           for job, names in fields.items()}
    matches = {job: len(names & set(values)) for job, names in own.items()}
    best = max(matches, key=matches.get)
    return best if matches[best] else None


def leaves_of_a_run(run: RunFolder) -> bool:
    """Return True when the folder holds a file or folder that only a training run writes."""
    path = run.path
    if not path.is_dir():
        return False
    return (run.state_file.is_file() or run.history_file.is_file() or any(path.glob("*.weights.h5"))
            or any(path.glob("history-*.csv")) or (path / f"{FOLD_PREFIX}0").is_dir())
