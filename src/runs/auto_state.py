"""An auto run's state, OUT/auto_state.json: its measurements, plan, steps and the submission it keeps.

    state = AutoState.load(out, cfg)          # a new state, or the one a killed session left (said in one line)
    with state.step("train", planned) as record: ...   # planned and actual minutes, status, score; saved
    state.offer(csv, score, "submit")         # becomes OUT/submission.csv only when better on the holdout

Written atomically after every change, so a kill loses at most the step under way; the ledger reads it
(AutoState.read) for the auto run's row (src.reports.run_rows).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from pathlib import Path

from src.core.errors import KitError
from src.core.files import atomic_path, read_json, write_json
from src.core.metric_choice import higher_is_better

STATE = "auto_state.json"
SUBMISSION = "submission.csv"


def is_auto_folder(path: Path) -> bool:
    """Return True when a folder holds an auto run (its auto_state.json)."""
    return (Path(path) / STATE).is_file()


def candidate_score(rows: list) -> float:
    """Return a submission's holdout score: its ensemble row's (calibrated when it was), else its last row's.

    Runs that held out different images (a cut K-fold run's finished folds) have no ensemble score: the mean of
    each run's own last score, as a K-fold CV reports.
    """
    scored = [r for r in rows if str(r.get("run", "")).startswith("ensemble")] or rows
    value = scored[-1].get("score") if scored else None
    if (value is None or math.isnan(float(value))) and len(scored) < len(rows):
        last = {str(r.get("run")): r.get("score") for r in rows if not str(r.get("run", "")).startswith("ensemble")}
        own = [float(v) for v in last.values() if v is not None and not math.isnan(float(v))]
        value = sum(own) / len(own) if own else None
    return float(value) if value is not None else math.nan


def better(new: float, old: float | None, metric: str) -> bool:
    """Return True when new beats old in the metric's direction (nothing kept yet: any score; nan never)."""
    if new is None or math.isnan(new):
        return old is None
    if old is None or math.isnan(old):
        return True
    return new > old if higher_is_better(metric) else new < old


def check_own_folder(out: Path) -> None:
    """Raise when out, holding no auto run, holds files: the auto run writes submission.csv, plan.csv and its runs
    there, replacing what has those names, and the user's own files (notes, a submission) are never overwritten."""
    found = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise KitError(f"--out {out}: holds files the kit did not write ({shown}) and no {STATE}: an auto run "
                       "writes submission.csv, plan.csv and its runs into its own folder: pick a new or empty --out")


def same_folder(kept: str, given: str) -> bool:
    """Return True when two spellings name one folder (data/demo, data/demo/, ./data/demo, its absolute path)."""
    if kept == given:
        return True
    try:
        return Path(kept).resolve() == Path(given).resolve() or os.path.samefile(kept, given)
    except OSError:  # a folder gone or moved: the spellings alone decide
        return False


@dataclasses.dataclass
class AutoState:
    """What an auto run has measured, planned and kept."""

    path: Path
    metric: str = ""
    data: str = ""
    speeds: dict = dataclasses.field(default_factory=dict)   # backbone -> Speed's fields (seconds per image)
    plan: list = dataclasses.field(default_factory=list)     # the latest plan's rows
    steps: dict = dataclasses.field(default_factory=dict)    # step -> status, planned/actual minutes, score ...
    best: dict = dataclasses.field(default_factory=dict)     # file, score, step, candidate of the kept submission
    seconds: float = 0.0                                     # wall time over every session

    @classmethod
    def load(cls, out: Path, cfg) -> "AutoState":
        """Return the state in out (saying what is kept), else a new one; another data folder or metric is refused."""
        path = Path(out) / STATE
        if not path.is_file():
            check_own_folder(Path(out))
            state = cls(path, cfg.metric, str(cfg.data))
            state.save()
            return state
        state = cls.read(out)
        if state.metric != cfg.metric or not same_folder(state.data, str(cfg.data)):
            raise KitError(f"{path}: an auto run of {state.data} by {state.metric}, not of --data {cfg.data} by "
                           f"{cfg.metric}: pick another --out")
        kept = [f"{n} ({s.get('status')})" for n, s in state.steps.items()] or ["the measurements"]
        print(f"resuming the auto run in {path.parent}: kept {', '.join(kept)}" +
              (f"; the submission {state.best['file']} ({state.best['score']:.4f})" if state.best else ""))
        return state

    @classmethod
    def read(cls, out: Path) -> "AutoState":
        """Return the state in out as its file holds it, checking and saying nothing (the ledger's auto row reads it);
        a key it lacks, or holds as null, takes its default."""
        path = Path(out) / STATE
        values = read_json(path, "the auto run's state")
        if not isinstance(values, dict):
            raise KitError(f"{path}: damaged (expected the auto run's steps): restore it from a copy, or run src.auto "
                           "again into another --out")
        names = {f.name for f in dataclasses.fields(cls)} - {"path"}
        return cls(path, **{k: v for k, v in values.items() if k in names and v is not None})

    def save(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}
        write_json(self.path, values)

    def done(self, name: str) -> bool:
        return self.steps.get(name, {}).get("status") == "done"

    def set_plan(self, rows: list) -> None:
        self.plan = rows
        self.save()

    @contextlib.contextmanager
    def step(self, name: str, planned_minutes: float):
        """Yield the step's record; its actual minutes (summed over sessions) and status are saved around it."""
        record = self.steps.setdefault(name, {})
        record.update(status="running", planned_minutes=planned_minutes)
        before, started = record.get("minutes", 0.0), time.monotonic()
        self.save()
        try:
            yield record
        except BaseException:  # a kill, an error: the next session runs the step again (its jobs resume)
            record["status"] = "stopped"
            raise
        else:
            if record["status"] == "running":
                record["status"] = "done"
        finally:
            record["minutes"] = round(before + (time.monotonic() - started) / 60, 3)
            self.save()

    def offer(self, candidate: str, score: float, step: str, no_better: bool = False) -> bool:
        """Make candidate OUT/submission.csv when it scores better on the holdout than the kept one; return whether.

        A candidate no better than the trivial answer (src.inference.reference) is never kept, whatever else was.
        The copy is atomic: a kill leaves the old file or the new one, never half of one.
        """
        if no_better:
            print(f"{candidate}: NOT KEPT: its holdout {self.metric} {score:.4f} is no better than the trivial "
                  "answer's" + (f"; {self.best['file']} stays" if self.best else "; no submission is kept yet"))
            return False
        kept = self.best.get("score") if self.best else None
        if not better(score, kept, self.metric):
            print(f"{candidate}: holdout {self.metric} {score:.4f} is not better than the kept {kept:.4f}; "
                  f"{self.best['file']} stays")
            return False
        target = self.path.parent / SUBMISSION
        with atomic_path(target) as staged:
            shutil.copyfile(candidate, staged)
        self.best = {"file": str(target), "score": float(score), "step": step, "candidate": str(candidate)}
        self.save()
        print(f"{target}: now {candidate} (holdout {self.metric} {score:.4f})")
        return True

    def sessions_seconds(self, seconds: float) -> None:
        self.seconds = round(self.seconds + seconds, 1)
        self.save()
