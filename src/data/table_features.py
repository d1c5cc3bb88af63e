"""The metadata beside the target as features: numbers, categories, and each lesion against its own group.

    table = read_train_table(root, opts, schema)            # the labels CSV, every column, by id
    spec = fit_table(table, exclude=("target",), group="patient_id")
    X = table_features(table, spec)                         # one float row per id, named columns
    X_test = table_features(read_test_table(root, schema, spec), spec)

Numbers are standardised (training mean and spread), missing cells 0 with a `<col>_missing` indicator;
categories are one-hot, levels under 1% (at least 5 rows) grouped as `<col>=other`, empty cells as
`<col>=missing`. With a group column (ISIC 2024's patient_id) each number also gets its z-score,
rank (0..1) and ratio to the mean within its group, and each row its group's size: a lesion unlike
its patient's others (the "ugly duckling") stands out though the raw column, spread over patients,
does not. Group features come from the rows given, so the test side's groups are the test table's.
The test side is test-metadata.csv (or any other CSV holding the sample's ids); a column the features
need and it lacks is an error naming it.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import read_user_csv
from src.data.label_tables import find_labels_csv, sniff_separator

TABLE_FILE = "table_features.json"  # a --metadata run's TableSpec, beside its config.json
MAX_LEVELS = 50      # a text column with more levels is an id or free text, not a category
RARE_SHARE = 0.01


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What was learned from the training table: saved as JSON beside a run or a stack, applied to test."""

    id_column: str
    numbers: tuple          # (column, mean, std, had missing cells)
    categories: tuple       # (column, kept levels)
    group: str = ""         # the group column, "" for none

    def as_record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "TableSpec":
        return cls(record["id_column"], tuple(tuple(n) for n in record["numbers"]),
                   tuple((c, tuple(levels)) for c, levels in record["categories"]), record.get("group", ""))

    @property
    def columns(self) -> list:
        """Return the table columns the features read (what the test side must hold)."""
        return [n[0] for n in self.numbers] + [c[0] for c in self.categories] + ([self.group] if self.group else [])


def read_csv_text(path: Path) -> pd.DataFrame:
    """Return a CSV as text cells ('' for empty), ids kept as written."""
    return read_user_csv(path, dtype=str, keep_default_na=False, sep=sniff_separator(path))


def read_train_table(root: Path, opts, schema) -> pd.DataFrame:
    """Return the training labels CSV with every column, indexed by its id column (as text)."""
    path = find_labels_csv(root, opts.labels_csv, schema, opts.label_column)
    frame = read_csv_text(path)
    id_column = opts.id_column or (schema.id_column if schema is not None and schema.id_column in frame else
                                   frame.columns[0])
    frame.attrs["path"], frame.attrs["id_column"] = str(path), id_column
    return frame.set_index(id_column, drop=False)


def read_test_table(root: Path, schema, spec: TableSpec, train_path: str = "") -> pd.DataFrame:
    """Return the test side's table in the sample's order: test-metadata.csv, or another CSV with the sample's ids.

    A column the features need and the table lacks is an error naming the column and the file.
    """
    skip = {str(schema.path), train_path}
    csvs = [p for p in sorted(root.glob("*.csv")) if str(p) not in skip and "solution" not in p.stem.lower()]
    csvs.sort(key=lambda p: "test" not in p.stem.lower())  # test-metadata.csv first
    if train_path:
        csvs.append(Path(train_path))  # the training table's layout may hold the test rows too
    wanted = pd.Index(schema.ids)
    for path in csvs:
        frame = read_csv_text(path)
        if spec.id_column not in frame or frame[spec.id_column].isin(wanted).sum() * 2 <= len(wanted):
            continue
        missing = [c for c in spec.columns if c not in frame]
        if missing:
            raise KitError(f"{path}: no column {missing[0]!r} for the test side's table features: the training "
                           f"table has it; expected the columns {', '.join(spec.columns)}")
        frame = frame.drop_duplicates(spec.id_column).set_index(spec.id_column, drop=False)
        absent = wanted.difference(frame.index)
        if len(absent):
            raise KitError(f"{path}: no row for test id {absent[0]!r} of {schema.path.name}")
        frame.attrs["path"] = str(path)
        return frame.loc[wanted]
    raise KitError(f"{root}: no CSV holds the test ids of {schema.path.name} in a column {spec.id_column!r}: "
                   "expected test-metadata.csv (the training table's columns, without the target)")


GROUP_NAMES = r"patient|subject|individual|person|owner|user|group|study|case|site_id|^id_|_id$"


def guess_group_column(table: pd.DataFrame, exclude=()) -> tuple:
    """Return (the column whose values name groups of rows, why) or ("", "") when none: a name such as patient_id
    (GROUP_NAMES) whose values repeat (2 to half as many groups as rows, every cell filled). Why it exists: a
    competition whose test patients are new must keep each patient in one fold, and the within-patient
    features need the column; src.auto has no person to pass --group-column."""
    id_column = table.attrs.get("id_column", table.index.name or table.columns[0])
    for column in (c for c in table.columns if c not in (id_column, *exclude)):
        text = table[column].astype(str).str.strip()
        groups = text.nunique()
        if re.search(GROUP_NAMES, str(column).lower()) and (text != "").all() and 2 <= groups <= len(text) / 2:
            return str(column), f"{groups} groups over {len(text)} rows"
    return "", ""


def as_numbers(values: pd.Series) -> pd.Series:
    """Return the column as floats (empty or unreadable cells NaN)."""
    return pd.to_numeric(values.replace("", np.nan), errors="coerce")


def fit_table(table: pd.DataFrame, exclude=(), group: str = "") -> TableSpec:
    """Return the TableSpec of the training table: which columns are numbers, which categories (and levels).

    exclude: the id is left out always; the targets and anything else named here too.
    """
    id_column = table.attrs.get("id_column", table.index.name or table.columns[0])
    if group and group not in table:
        raise KitError(f"--group-column {group}: no such column in {table.attrs.get('path', 'the table')}")
    numbers, categories = [], []
    for column in (c for c in table.columns if c not in (id_column, group, *exclude)):
        text = table[column].astype(str)
        filled = text[text.str.strip() != ""]
        values = as_numbers(text)
        if len(filled) and values.notna().sum() >= 0.95 * len(filled):
            mean, std = float(values.mean()), float(values.std(ddof=0))
            numbers.append((column, mean, std if std > 0 else 1.0, bool(values.isna().any())))
            continue
        counts = filled.value_counts()
        if 1 < len(counts) <= MAX_LEVELS:
            kept = counts[counts >= max(5, RARE_SHARE * len(text))].index
            categories.append((column, tuple(sorted(map(str, kept)))))
    if not numbers and not categories:
        raise KitError(f"{table.attrs.get('path', 'the table')}: no metadata column to use as features "
                       f"(numbers, or text of {MAX_LEVELS} levels or fewer) besides {id_column} and the target")
    return TableSpec(id_column, tuple(numbers), tuple(categories), group)


def table_features(table: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Return the features of every row of table (index kept), float32, in a fixed column order."""
    out = {}
    for column, mean, std, had_missing in spec.numbers:
        values = as_numbers(table[column].astype(str))
        out[column] = ((values - mean) / std).fillna(0.0)
        if had_missing:
            out[f"{column}_missing"] = values.isna().astype(float)
    for column, levels in spec.categories:
        text = table[column].astype(str).str.strip()
        for level in levels:
            out[f"{column}={level}"] = (text == level).astype(float)
        out[f"{column}=other"] = (~text.isin(levels) & (text != "")).astype(float)
        out[f"{column}=missing"] = (text == "").astype(float)
    frame = pd.DataFrame(out, index=table.index)
    if spec.group:
        frame = frame.join(group_features(table, spec))
    frame.columns = [re.sub(r"[^\w=.\-]", "_", str(c)) for c in frame.columns]  # LightGBM refuses some characters
    return frame.astype("float32")


def group_features(table: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Return each number's z-score, rank (0..1) and ratio to the mean within its group, and the group's size."""
    groups = table[spec.group].astype(str)
    out = {}
    for column, *_ in spec.numbers:
        values = as_numbers(table[column].astype(str))
        by = values.groupby(groups)
        mean, std = by.transform("mean"), by.transform(lambda v: v.std(ddof=0))
        out[f"{column}_group_z"] = ((values - mean) / std.where(std > 0)).fillna(0.0)
        out[f"{column}_group_rank"] = by.rank(pct=True).fillna(0.5)
        out[f"{column}_group_ratio"] = (values / mean.where(mean.abs() > 1e-12)).fillna(1.0)
    out["group_size"] = groups.map(groups.value_counts()).astype(float)
    return pd.DataFrame(out, index=table.index)


def features_by_id(root: Path, opts, schema, label_columns, record: dict | None = None) -> tuple:
    """Return (the TableSpec, features of every training id and, when a test table is found, every test id).

    record: a saved spec (a run's table_features.json) to apply; None: fitted on the training table.
    The training and test rows' group features each come from their own table (test patients are new).
    """
    table = read_train_table(Path(root), opts, schema)
    spec = TableSpec.from_record(record) if record else fit_table(table, exclude=label_columns,
                                                                   group=opts.group_column)
    parts, found = [table_features(table, spec)], []
    if schema is not None and schema.ids:
        try:
            found.append(read_test_table(Path(root), schema, spec, table.attrs["path"]))
            parts.append(table_features(found[0], spec))
        except KitError as err:
            if "no column" in str(err):
                raise
            print(f"note: no test table for the metadata branch ({err})")
    frame = pd.concat(parts)
    frame.index = frame.index.astype(str)
    frame = frame[~frame.index.duplicated()].copy()
    # what a missing row's error names (src.predict looks images up by their file names)
    frame.attrs = {"tables": [table.attrs["path"]] + [p.attrs.get("path", "the test table") for p in found], "id_column": spec.id_column}
    return spec, frame


def rows_for(features: pd.DataFrame, ids) -> np.ndarray:
    """Return the feature rows of ids (float32), in their order; an id with no row is an error naming it."""
    ids = pd.Index(pd.Series(ids).astype(str))
    absent = ids.difference(features.index)
    if len(absent):
        raise KitError(f"no metadata row for image {absent[0]!r} ({len(absent)} without one): --metadata needs a "
                       "table row per image (train-metadata.csv, test-metadata.csv)")
    return features.loc[ids].to_numpy(np.float32)
