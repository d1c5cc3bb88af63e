"""What src.submit checks besides the submission's own rows: the classes the runs can predict, a --solution file.

    missing = never_predicted(comp, class_map)      # said, and recorded in NAME.json
    check_solution(cfg.solution, comp.schema)       # before anything is predicted or written
    accuracy = score_against(frame, cfg.solution, comp.schema)
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.core.errors import KitError
from src.inference.metrics import score


def never_predicted(comp, class_map) -> list:
    """Return the competition's training classes the run's class map lacks (said: they can never be predicted).

    A run trained on fewer classes (--min-class-count, an older data folder) still writes a valid file.
    """
    known = comp.class_maps.get(comp.target)
    if known is None or not class_map.kind.exclusive_classes(class_map):  # tags, numbers: no classes to miss
        return []
    missing = [v for v in known.values if v not in set(class_map.values)]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        print(f"warning: class(es) {shown} of {comp.root} are not among the {len(class_map.values)} classes the "
              f"run(s) learned: they can never be predicted (the report lists them under never_predicted)")
    return [str(v) for v in missing]


def check_solution(solution: str, schema) -> None:
    """Refuse a --solution CSV without the sample's id and target columns, before anything is predicted or written."""
    path = Path(solution)
    if not path.is_file():
        raise KitError(f"--solution {solution}: no such file")
    columns = list(pd.read_csv(path, nrows=0).columns)
    wanted = [schema.id_column, schema.target_column]
    if not set(wanted) <= set(columns):
        raise KitError(f"--solution {solution}: expected columns {' and '.join(wanted)} (as in {schema.path.name}), "
                       f"found {', '.join(map(str, columns)) or 'none'}")


def score_against(frame: pd.DataFrame, solution: str, schema) -> float:
    """Return the share of rows whose label matches a solution CSV (id, true label)."""
    truth = pd.read_csv(solution, dtype={schema.id_column: str})
    merged = frame.astype({schema.id_column: str}).merge(truth, on=schema.id_column, suffixes=("", "_true"))
    if len(merged) != len(frame):
        raise KitError(f"--solution {solution}: its ids do not match the submission's")
    return float((merged[schema.target_column].astype(str) == merged[f"{schema.target_column}_true"].astype(str)).mean())


def score_numbers_against(frame: pd.DataFrame, solution: str, schema, metric: str) -> float:
    """Return --metric (rmse, mae, r2) of a number submission against a solution CSV (id, true number)."""
    truth = pd.read_csv(solution, dtype={schema.id_column: str})
    merged = frame.astype({schema.id_column: str}).merge(truth, on=schema.id_column, suffixes=("", "_true"))
    if len(merged) != len(frame):
        raise KitError(f"--solution {solution}: its ids do not match the submission's")
    column = schema.target_column
    return score(merged[column].to_numpy(float), merged[f"{column}_true"].to_numpy(float), metric)
