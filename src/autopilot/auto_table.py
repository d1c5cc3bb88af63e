"""The auto run with a table beside the images (ISIC 2024): its group column, the metadata branch, the stack.

    cfg, table = settle_table(cfg, comp, kind)     # said in one line; cfg.group_column set when one was found
    run_stack(cfg, state, run, plan, deadline)     # the stack over the folds' out-of-fold predictions, offered

A person would pass --group-column patient_id, --metadata and then run src.stack over the K-fold run; src.auto
reads the same from the data: the metadata columns the labels CSV holds beside the target (src.data.
table_features), the column that names groups of rows (patient_id: test patients are new, so a patient stays in
one fold and the within-patient features are computed), and whether the stack applies (a binary target: it ranks
one class). The stack's submission replaces the kept one only when its out-of-fold score is better.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from src.core.errors import KitError
from src.core.stack_settings import StackConfig
from src.data.table_features import fit_table, guess_group_column, read_train_table, test_side
from src.training.stacking import stack


@dataclasses.dataclass(frozen=True)
class TableChoice:
    """What the table beside the images gives the auto run."""

    group: str = ""          # the column whose rows stay in one fold ("" for none)
    metadata: bool = False   # train with the metadata branch (--metadata)
    stack: bool = False      # plan the stack over the K folds' out-of-fold predictions


def settle_table(cfg, comp, kind) -> tuple:
    """Return (cfg with its group column, the TableChoice) after saying it in one line; no table: TableChoice()."""
    if "stack" not in kind.auto_steps(True) or comp.schema is None:  # a kind the stack cannot serve: no table
        return cfg, TableChoice(cfg.group_column)
    labels = list(comp.class_maps)
    try:
        table = read_train_table(comp.root, cfg, comp.schema)
    except KitError:  # a folder layout: no labels CSV, no table
        return cfg, TableChoice(cfg.group_column)
    group, why = (cfg.group_column, "--group-column") if cfg.group_column else guess_group_column(table, labels)
    try:
        spec, _ = test_side(comp.root, comp.schema, fit_table(table, exclude=labels, group=group), table.attrs["path"])
    except KitError as err:  # no feature column, or no test side to predict with
        if group:
            print(f"group: {group} ({why}): each of its values kept in one fold")
        if "no metadata column" not in str(err):
            print(f"table: not used ({err})")
        return dataclasses.replace(cfg, group_column=group), TableChoice(group)
    binary = len(comp.class_maps[comp.target].values) == 2
    grouped = f"; group: {group} ({why}): each kept in one fold, within-{group} features" if group else ""
    print(f"table: {len(spec.columns) - bool(group)} metadata column(s) of {Path(table.attrs['path']).name} beside "
          f"the images: the metadata branch (--metadata)" + (", then the stack over the folds' out-of-fold "
                                                             "predictions (src.stack)" if binary else "") + grouped,
          flush=True)
    return dataclasses.replace(cfg, group_column=group), TableChoice(group, True, binary)


def run_stack(cfg, state, run: Path, plan, deadline: float) -> None:
    """Fit the stack on the K-fold run and offer its submission by its out-of-fold score (kept on resume)."""
    if state.done("stack"):
        print(f"stack: finished earlier, {state.steps['stack'].get('candidate')} offered")
        return
    row = next(r for r in plan.rows if r["step"] == "stack")
    if time.monotonic() + row["minutes"] * 60 > deadline:
        print(f"stack: {row['minutes']:.1f} min would pass the budget's end; the kept submission stays")
        return
    stack_cfg = StackConfig(data=cfg.data, runs=str(run), metric=cfg.metric, group_column=cfg.group_column,
                            name="auto-stack", out=str(state.path.parent / "candidates"), solution=cfg.solution,
                            overwrite=True)
    with state.step("stack", row["minutes"]) as record:
        result = stack(stack_cfg)
        record.update(score=result["kept"]["score"], candidate=result["path"], no_better=result["no_better"])
    state.offer(record["candidate"], record["score"], "stack", record.get("no_better", False))
