"""A training run's state.json, typed: which stages finished, their best scores, the stage kept, provenance.

    state = read_state(run.state_file)        # a RunState; no file yet: nothing finished
    state.record_stage("stage1", best, seconds, hardware, commit)
    state.keep("stage2", by="best")
    write_state(run.state_file, state)

Training (src.training.two_stage) writes it after each finished stage and once at the end; the
ledger, full-fit, submit's reference score and prediction read it through RunFolder.state(). Files
written by earlier kit versions read too: a key they lack takes its default (no kept stage: the last
planned one is final), and a key this version does not know is kept as it was when the file is
written again.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from src.core.errors import KitError
from src.core.files import read_json, write_json


@dataclasses.dataclass
class RunState:
    """What state.json holds; each mapping is keyed by stage name (stage1, stage2, warmup)."""

    finished: list = dataclasses.field(default_factory=list)       # stages whose weights are final, in order
    best: dict = dataclasses.field(default_factory=dict)           # the best epoch's metric value (None: full-fit)
    best_val_loss: dict = dataclasses.field(default_factory=dict)  # that epoch's val_loss
    metric: str = ""          # the metric the epochs were chosen by ("" in runs from before --metric: accuracy)
    kept: str = ""            # the stage whose weights are final, set when training ends ("": the last planned)
    kept_by: str = ""         # the --final-stage rule that chose it (best, last)
    epochs: dict = dataclasses.field(default_factory=dict)         # the best epoch (1-based); full-fit: the last
    average_top: dict = dataclasses.field(default_factory=dict)    # --average-top: the epochs, both scores, choice
    seconds: dict = dataclasses.field(default_factory=dict)        # training seconds per stage, summed over sessions
    hardware: dict = dataclasses.field(default_factory=dict)       # the accelerator each stage finished on
    git_commit: str = ""      # the kit's commit that last finished a stage
    # the kept weights' holdout --metric beside the trivial answer's (src.inference.reference): holdout_score,
    # reference_score, reference (what that answer is), no_better (True: the run learned nothing the holdout sees)
    verdict: dict = dataclasses.field(default_factory=dict)
    others: dict = dataclasses.field(default_factory=dict)         # keys of later kit versions, kept as they were

    def record_stage(self, stage: str, best: dict, seconds: float, hardware: dict, commit: str) -> None:
        """Note a finished stage: its best epoch (best_row's score, val_loss, epoch, average), time and machine."""
        self.best[stage], self.best_val_loss[stage] = best["score"], best["val_loss"]
        if "average" in best:
            self.average_top[stage] = best["average"]
        self.epochs[stage] = best["epoch"]
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 1)
        self.hardware[stage] = hardware  # a resumed run may finish its stages on other machines
        self.git_commit = commit
        if stage not in self.finished:
            self.finished.append(stage)

    def keep(self, stage: str, by: str) -> None:
        """Name the stage whose weights are the run's final ones and the rule that chose it."""
        self.kept, self.kept_by = stage, by

    def kept_score(self):
        """Return the kept stage's best metric value, or None when no stage is kept or it has no score."""
        return self.best.get(self.kept) if self.kept else None

    def as_record(self) -> dict:
        """Return the JSON object state.json holds (empty optional fields left out, as earlier versions wrote)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "others"}
        record = {k: v for k, v in record.items() if k in ("finished", "best") or v not in ("", {}, [])}
        return {**self.others, **record}


def state_from_record(record, path: Path) -> RunState:
    """Return the RunState of a state.json object; a damaged one is a KitError naming the file."""
    if not isinstance(record, dict) or not isinstance(record.get("finished", []), list):
        raise KitError(f"{path}: damaged (expected the finished stages): restore it from a copy, or train the run "
                       "again into another --out")
    names = {f.name for f in dataclasses.fields(RunState)} - {"others"}
    known = {k: v for k, v in record.items() if k in names and v is not None}  # None: the default
    try:
        state = RunState(**known, others={k: v for k, v in record.items() if k not in names})
        expected = {f.name: type(f.default_factory()) if f.default_factory is not dataclasses.MISSING
                    else type(f.default) for f in dataclasses.fields(RunState)}
        wrong = next((k for k, v in known.items() if v is not None and not isinstance(v, expected[k])), None)
    except TypeError:
        wrong = "?"
    if wrong:
        raise KitError(f"{path}: damaged ({wrong!r} is not what python -m src.train writes there): restore it from "
                       "a copy, or train the run again into another --out")
    return state


def read_state(path: Path) -> RunState:
    """Return the run's state; no file yet is a run with nothing finished."""
    path = Path(path)
    if not path.is_file():
        return RunState()
    return state_from_record(read_json(path, "which stages finished"), path)


def write_state(path: Path, state: RunState) -> None:
    """Write state.json atomically (a kill leaves the old file or the new one, never half of one)."""
    write_json(Path(path), state.as_record())
