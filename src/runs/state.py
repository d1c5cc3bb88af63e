"""A training run's state.json, typed: which stages finished, each one's record, the stage kept, provenance.

    state = read_state(run.state_file)        # a RunState; no file yet: nothing finished
    state.record_stage("stage1", best, seconds, hardware, commit)
    state.stages["stage1"].best               # a StageRecord: best, best_val_loss, epoch, average_top, seconds ...
    state.keep("stage2", by="best")
    write_state(run.state_file, state)

Training (src.training.two_stage) writes it after each finished stage and once at the end; the
ledger, full-fit, submit's reference score and prediction read it through RunFolder.state(). Files
written by earlier kit versions read too: a key they lack takes its default (no kept stage: the last
planned one is final), and a key this version does not know is kept as it was when the file is
written again.

On disk a stage's record is spread over one map per field, keyed by stage name ("best": {"stage1": 0.8},
"epochs": {"stage1": 3} ...), as every kit version wrote it: read_state gathers them into one StageRecord per
stage and write_state spreads them back, each map holding the stages it held (an earlier version's file may
lack best_val_loss or seconds for a stage; a full-fit's best is null).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from src.core.errors import KitError
from src.core.files import read_json, write_json

# StageRecord field -> the state.json map that holds it, in the file's order
STAGE_MAPS = {"best": "best", "best_val_loss": "best_val_loss", "epoch": "epochs", "average_top": "average_top",
              "seconds": "seconds", "hardware": "hardware"}
# state.json's keys in the order the file has always had them (the stage maps among RunState's own fields)
FILE_ORDER = ("finished", "best", "best_val_loss", "metric", "kept", "kept_by", "epochs", "average_top", "seconds",
              "hardware", "git_commit", "verdict")


@dataclasses.dataclass
class StageRecord:
    """One finished stage: what record_stage notes (None: state.json holds nothing for it, as in earlier versions)."""

    best: float | None = None             # the best epoch's metric value (None: full-fit, no holdout)
    best_val_loss: float | None = None    # that epoch's val_loss
    epoch: int | None = None              # the best epoch (1-based); full-fit: the last
    average_top: dict | None = None       # --average-top: the epochs, both scores, choice
    seconds: float | None = None          # training seconds, summed over sessions
    hardware: dict | None = None          # the accelerator the stage finished on
    nulls: frozenset = dataclasses.field(default=frozenset(), repr=False)  # fields state.json holds as null


@dataclasses.dataclass
class RunState:
    """What state.json holds; stages is keyed by stage name (stage1, stage2, warmup)."""

    finished: list = dataclasses.field(default_factory=list)       # stages whose weights are final, in order
    stages: dict = dataclasses.field(default_factory=dict)         # {stage: StageRecord}
    metric: str = ""          # the metric the epochs were chosen by ("" in runs from before --metric: accuracy)
    kept: str = ""            # the stage whose weights are final, set when training ends ("": the last planned)
    kept_by: str = ""         # the --final-stage rule that chose it (best, last)
    git_commit: str = ""      # the kit's commit that last finished a stage
    # the kept weights' holdout --metric beside the trivial answer's (src.inference.reference): holdout_score,
    # reference_score, reference (what that answer is), no_better (True: the run learned nothing the holdout sees)
    verdict: dict = dataclasses.field(default_factory=dict)
    others: dict = dataclasses.field(default_factory=dict)         # keys of later kit versions, kept as they were

    def record_stage(self, stage: str, best: dict, seconds: float, hardware: dict, commit: str) -> None:
        """Note a finished stage: its best epoch (best_row's score, val_loss, epoch, average), time and machine."""
        before = self.stages.get(stage, StageRecord())
        noted = {"best": best["score"], "best_val_loss": best["val_loss"], "epoch": best["epoch"],
                 "seconds": round((before.seconds or 0.0) + seconds, 1),
                 "hardware": hardware}  # a resumed run may finish its stages on other machines
        if "average" in best:  # else the stage's earlier average, if any, stays
            noted["average_top"] = best["average"]
        nulls = (before.nulls - noted.keys()) | {k for k, v in noted.items() if v is None}
        self.stages[stage] = dataclasses.replace(before, **noted, nulls=frozenset(nulls))
        self.git_commit = commit
        if stage not in self.finished:
            self.finished.append(stage)

    def keep(self, stage: str, by: str) -> None:
        """Name the stage whose weights are the run's final ones and the rule that chose it."""
        self.kept, self.kept_by = stage, by

    def kept_score(self):
        """Return the kept stage's best metric value, or None when no stage is kept or it has no score."""
        return self.stages[self.kept].best if self.kept in self.stages else None

    def by_stage(self, field: str) -> dict:
        """Return one StageRecord field as state.json's map holds it: {stage: value} (field: best, epoch ...)."""
        return {name: getattr(record, field) for name, record in self.stages.items()
                if getattr(record, field) is not None or field in record.nulls}

    def as_record(self) -> dict:
        """Return the JSON object state.json holds (empty optional fields left out, as earlier versions wrote)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("others", "stages")}
        fields.update({key: self.by_stage(field) for field, key in STAGE_MAPS.items()})
        record = {k: fields[k] for k in FILE_ORDER if k in ("finished", "best") or fields[k] not in ("", {}, [])}
        return {**self.others, **record}


def state_from_record(record, path: Path) -> RunState:
    """Return the RunState of a state.json object; a damaged one is a KitError naming the file."""
    if not isinstance(record, dict) or not isinstance(record.get("finished", []), list):
        raise KitError(f"{path}: damaged (expected the finished stages): restore it from a copy, or train the run "
                       "again into another --out")
    known = {k: v for k, v in record.items() if k in FILE_ORDER and v is not None}  # None: the default
    expected = {k: str if k in ("metric", "kept", "kept_by", "git_commit") else list if k == "finished" else dict
                for k in FILE_ORDER}
    wrong = next((k for k, v in known.items() if not isinstance(v, expected[k])), None)
    if wrong:
        raise KitError(f"{path}: damaged ({wrong!r} is not what python -m src.train writes there): restore it from "
                       "a copy, or train the run again into another --out")
    maps = {field: known.get(key, {}) for field, key in STAGE_MAPS.items()}
    stages = {}
    for field, values in maps.items():
        for name, value in values.items():
            stage = stages.setdefault(name, StageRecord())
            setattr(stage, field, value)
            if value is None:
                stage.nulls |= {field}
    own = {k: v for k, v in known.items() if k not in STAGE_MAPS.values()}
    return RunState(**own, stages=stages, others={k: v for k, v in record.items() if k not in FILE_ORDER})


def read_state(path: Path) -> RunState:
    """Return the run's state; no file yet is a run with nothing finished."""
    path = Path(path)
    if not path.is_file():
        return RunState()
    return state_from_record(read_json(path, "which stages finished"), path)


def write_state(path: Path, state: RunState) -> None:
    """Write state.json atomically (a kill leaves the old file or the new one, never half of one)."""
    write_json(Path(path), state.as_record())
