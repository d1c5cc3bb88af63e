"""Class maps: a label column's values in the network's output order, and class_map.json.

Submissions write the competition's own label values back through them: ints stay ints,
strings stay strings, and space-separated tags (Planet) make a multi-label map.

    cmap = make_class_map(train["label"], "label")
    save_class_maps(run / "class_map.json", "label", {"label": cmap})
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import write_json
from src.core.task_kind import TaskKind, kind_of
from src.data.numbers import TargetScale, as_numbers, number_bins, scale_of


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """Competition label values in index order: index i of the network's output means values[i]."""

    column: str
    values: tuple
    multi_label: bool = False   # values are tags; a row's label is several of them, space-separated
    new_label: str = ""         # identities: the answer for one never seen in training (new_whale), not a class
    # where new_label was found, or (no new_label) why the sample's ids absent from training are none (said once)
    new_from: str = dataclasses.field(default="", compare=False)
    scale: TargetScale | None = None  # a number target (regression): values is (column,), one output
    # the task kind that read the column (src.kinds); "" in class maps of older kits: the kind that claims it
    task: str = dataclasses.field(default="", compare=False)

    @property
    def kind(self) -> TaskKind:
        """Return the task kind that read these labels (src.core.task_kind.kind_of): what every later step asks."""
        return kind_of(self)

    def encode(self, labels) -> np.ndarray:
        """Return the index of each competition label value (multi-label: a 0/1 row per image, a column per tag).

        Unknown values raise naming them. A number target: the numbers themselves, float32, one column.
        """
        if self.scale is not None:
            return as_numbers(labels, self.column).astype(np.float32).reshape(-1, 1)
        lookup = {value: i for i, value in enumerate(self.values)}
        if self.multi_label:
            rows = [str(v).split() for v in labels]
            missing = [t for tags in rows for t in tags if t not in lookup]
            if missing:
                raise KitError(f"column {self.column}: tag {missing[0]!r} is not a known tag")
            hot = np.zeros((len(rows), len(self.values)), dtype=np.float32)
            for i, tags in enumerate(rows):
                hot[i, [lookup[t] for t in tags]] = 1.0
            return hot
        missing = [v for v in labels if v not in lookup]
        if missing:
            raise KitError(f"column {self.column}: label {missing[0]!r} is not a known class")
        return np.array([lookup[v] for v in labels], dtype=np.int32)

    def decode_tags(self, hot) -> list:
        """Return each row's tags, space-separated, from a 0/1 (or boolean) matrix."""
        return [" ".join(str(self.values[i]) for i in np.flatnonzero(row)) for row in np.asarray(hot)]

    def stratify_key(self, labels) -> np.ndarray:
        """Return one stratification label per row: the label itself, or a row's rarest tag (multi-label)."""
        if self.scale is not None:  # a number: its quantile bin, so every side sees the whole range
            return number_bins(labels, self.column)
        if not self.multi_label:
            return np.asarray([str(v) for v in labels])
        rows = [str(v).split() for v in labels]
        counts = pd.Series([t for tags in rows for t in tags]).value_counts()
        return np.asarray([min(tags, key=lambda t: (counts[t], t)) for tags in rows])

    def decode(self, indices) -> list:
        """Return the competition's own label values for network output indices (a number target: the numbers)."""
        if self.scale is not None:
            return [float(v) for v in np.asarray(indices, dtype=np.float64).reshape(-1)]
        return [self.values[int(i)] for i in indices]

    def to_json(self) -> dict:
        return {"column": self.column, "values": list(self.values), **({"multi_label": True} if self.multi_label else {}),
                **({"new_label": self.new_label, "new_from": self.new_from} if self.new_label else {}),
                **({"number": self.scale.to_json()} if self.scale is not None else {}),
                **({"task": self.task} if self.task else {})}

    @classmethod
    def from_json(cls, data: dict) -> "ClassMap":
        scale = TargetScale.from_json(data["number"]) if data.get("number") else None
        return cls(column=data["column"], values=tuple(data["values"]), multi_label=bool(data.get("multi_label")),
                   new_label=str(data.get("new_label") or ""), new_from=str(data.get("new_from") or ""),
                   scale=scale, task=str(data.get("task") or ""))


def save_class_maps(path: str | Path, target: str, maps: dict) -> Path:
    """Write class_map.json: the target column and every label column's classes in index order."""
    return write_json(path, {"target": target, "maps": [m.to_json() for m in maps.values()]})


def load_class_maps(path: str | Path) -> tuple[str, dict]:
    """Return (target column, {column: ClassMap}) from a run's class_map.json."""
    payload = json.loads(Path(path).read_text())
    maps = {m["column"]: ClassMap.from_json(m) for m in payload["maps"]}
    return payload["target"], maps


def make_class_map(values: pd.Series, column: str) -> ClassMap:
    """Return the ClassMap of a label column: sorted values as plain Python ints or strings.

    Space-separated tags (Planet's "clear primary road") make a multi-label map: its values are the tags.
    """
    if holds_tags(values):
        tags = sorted({t for v in values.astype(str) for t in v.split()})
        print(f"labels: column {column} holds space-separated tags: multi-label, {len(tags)} tags")
        return ClassMap(column, tuple(tags), multi_label=True)
    unique = sorted(set(values.tolist()))
    return ClassMap(column, tuple(v.item() if hasattr(v, "item") else v for v in unique))


def make_number_map(values: pd.Series, column: str) -> ClassMap:
    """Return the map of a number target (regression): one output named by the column, and its TargetScale."""
    return ClassMap(column, (column,), scale=scale_of(values, column))


def holds_tags(values: pd.Series) -> bool:
    """Return True when a label column holds space-separated tags (multi-label), not one class per image."""
    return not pd.api.types.is_numeric_dtype(values) and looks_multi_label(values.astype(str))


def looks_multi_label(text: pd.Series) -> bool:
    """Return True for tags: many values hold several words, from fewer distinct words than distinct values.

    "audi a4", "audi a6", "bmw x5" are class names (5 words for 3 values); Planet's "clear primary
    road" is a set of tags (17 words over hundreds of combinations).
    """
    tokens = text.str.split()
    several = (tokens.str.len() > 1).mean()
    vocabulary = {word for words in tokens for word in words}
    return several >= 0.3 and text.nunique() >= 4 and len(vocabulary) < text.nunique()


def order_classes(cmap: ClassMap, order: str) -> ClassMap:
    """Return the class map in --class-order's order; refuse an order that does not name each class once.

    Why: qwk weighs a mistake by how far apart two classes are in the output order, and sorted text grades
    (Mild, No_DR, Severe) are not in grade order.
    """
    names = [name.strip() for name in order.split(",") if name.strip()]
    by_text = {str(v): v for v in cmap.values}
    unknown = [n for n in names if n not in by_text]
    missing = [str(v) for v in cmap.values if str(v) not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise KitError(f"--class-order {order}: expected each class of column {cmap.column} once ("
                       f"{', '.join(by_text)})" + (f"; not a class: {', '.join(unknown)}" if unknown else "") +
                       (f"; missing: {', '.join(missing)}" if missing else ""))
    return dataclasses.replace(cmap, values=tuple(by_text[n] for n in names))


def grade_order(metric: str, cmap: ClassMap, order: str) -> str:
    """Return the line naming the grade order qwk weighs by ('' when no line is due); refuse text grades unordered.

    Numbers (0..4, as strings or ints) sort as grades; text grades need --class-order.
    """
    if metric != "qwk" or not cmap.kind.scores_with(metric):
        return ""
    if order:
        return f"qwk: classes weighed in the order {' < '.join(map(str, cmap.values))} (--class-order)"
    numbers = [float(v) if isinstance(v, (int, float)) or str(v).lstrip("-").isdigit() else None for v in cmap.values]
    if None not in numbers and numbers == sorted(numbers):
        return ""
    raise KitError(f"--metric qwk weighs how far apart two classes are in their order; the classes of column "
                   f"{cmap.column} are not numbers ({', '.join(map(str, cmap.values))}, sorted as text): give their "
                   f"grade order with --class-order, e.g. --class-order {','.join(map(str, cmap.values))}")
