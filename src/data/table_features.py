"""The metadata beside the target as features: numbers, categories, and each lesion against its own group.

    table = read_train_table(root, opts, schema)            # the labels CSV, every column, by id
    spec = fit_table(table, exclude=("target",), group="patient_id")
    X = table_features(table, spec)                         # one float row per id, named columns
    X_test = table_features(read_test_table(root, schema, spec), spec)

Numbers are standardised (training mean and spread), missing cells 0 with a `<col>_missing` indicator;
a number column's inf cells and its few text tokens ("unknown", at most MISSING_TOKENS of them, under
half the filled cells) are missing cells too, each said in one line naming the column; a column left
out (one value, or too many text levels) is said with why;
categories are one-hot, levels under 1% (at least 5 rows) grouped as `<col>=other`, empty cells as
`<col>=missing`. With a group column (ISIC 2024's patient_id) each number also gets its z-score,
rank (0..1) and ratio to the mean within its group, and each row its group's size: a lesion unlike
its patient's others (the "ugly duckling") stands out though the raw column, spread over patients,
does not. Group features come from the rows given, so the test side's groups are the test table's.
The test side is test-metadata.csv (or any other CSV holding the sample's ids); a training-only column
it lacks (ISIC 2024's mel_thick_mm, iddx_1 ...) is left out of a fresh fit and said (test_side), and is an
error naming it when a saved spec needs it. An id listed twice in the training table with different
cells is an error naming the file, the column and the id.
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
MISSING_TOKENS = 3   # a number column may spell missing cells in up to this many words: unknown, NA, ?


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
    """Return the training labels CSV with every column, indexed by its id column (as text).

    An id repeated with the same cells is kept once (the labels loader said it); with different cells it is
    an error naming the file, the id column, the id and a column where the rows differ.
    """
    path = find_labels_csv(root, opts.labels_csv, schema, opts.label_column)
    frame = read_csv_text(path)
    id_column = opts.id_column or (schema.id_column if schema is not None and schema.id_column in frame else
                                   frame.columns[0])
    frame = frame.drop_duplicates()
    repeated = frame[id_column].duplicated(keep=False)
    if repeated.any():
        twice = frame[frame[id_column] == frame.loc[repeated, id_column].iloc[0]]
        differ = next(c for c in twice.columns if twice[c].nunique() > 1)
        raise KitError(f"{path}: id {twice[id_column].iloc[0]!r} (column {id_column}) is listed {len(twice)} times "
                       f"with different cells (column {differ}: {' / '.join(twice[differ])}): expected one row per "
                       "image; remove or merge the repeats")
    frame.attrs["path"], frame.attrs["id_column"] = str(path), id_column
    return frame.set_index(id_column, drop=False)


def read_test_table(root: Path, schema, spec: TableSpec, train_path: str = "", leave_out: bool = False) -> pd.DataFrame:
    """Return the test side's table in the sample's order: test-metadata.csv, or another CSV with the sample's ids.

    A column the features need and the table lacks is an error naming the column and the file; with leave_out
    (a spec fitted just now, not a run's saved one) it is listed in attrs["lacks"] instead (test_side drops it).
    The group column is always needed: the test rows' within-group features come from it.
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
        missing = [c for c in spec.columns if c not in frame and (not leave_out or c == spec.group)]
        if missing:
            raise KitError(f"{path}: no column {missing[0]!r} for the test side's table features: the training "
                           f"table has it; expected the columns {', '.join(spec.columns)}")
        frame = frame.drop_duplicates(spec.id_column).set_index(spec.id_column, drop=False)
        absent = wanted.difference(frame.index)
        if len(absent):
            raise KitError(f"{path}: no row for test id {absent[0]!r} of {schema.path.name}")
        frame = frame.loc[wanted]
        frame.attrs["path"], frame.attrs["lacks"] = str(path), [c for c in spec.columns if c not in frame]
        return frame
    raise KitError(f"{root}: no CSV holds the test ids of {schema.path.name} in a column {spec.id_column!r}: "
                   "expected test-metadata.csv (the training table's columns, without the target)")


def test_side(root: Path, schema, spec: TableSpec, train_path: str) -> tuple:
    """Return (the spec without the training-only columns the test table lacks, the test table); say what was left
    out in one line. Why: ISIC 2024's train-metadata.csv holds diagnoses (iddx_1, mel_thick_mm ...) that
    test-metadata.csv does not; features the test rows cannot have are useless to a model that predicts them."""
    frame = read_test_table(root, schema, spec, train_path, leave_out=True)
    lacks = frame.attrs["lacks"]
    for line in (line for n in spec.numbers if n[0] not in lacks for line in number_notes(frame, n[0])[1]):
        print(line)
    if lacks:
        print(f"table: left out {', '.join(lacks)}: not in {Path(frame.attrs['path']).name} (training-only columns)")
        spec = dataclasses.replace(spec, numbers=tuple(n for n in spec.numbers if n[0] not in lacks),
                                   categories=tuple(c for c in spec.categories if c[0] not in lacks))
        if not spec.numbers and not spec.categories:
            raise KitError(f"{frame.attrs['path']}: no column of the training table's features ({', '.join(lacks)}):"
                           " the test rows have no metadata to use")
    return spec, frame


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
    """Return the column as floats (empty, unreadable or infinite cells NaN)."""
    return pd.to_numeric(values.replace("", np.nan), errors="coerce").replace([np.inf, -np.inf], np.nan)


def number_notes(table: pd.DataFrame, column: str) -> tuple:
    """Return (whether the column is a number column, the lines saying which of its cells were read as missing).

    A number column: every filled cell a number but for at most 5%, or but for at most MISSING_TOKENS distinct
    words filling under half of them (age_approx's "unknown"). Why said: a cell read as missing changes what
    the model sees (a 0 after standardising, and a <col>_missing indicator).
    """
    text = table[column].astype(str).str.strip()
    filled = text[text != ""]
    raw = pd.to_numeric(filled, errors="coerce")
    words = filled[raw.isna()]
    share = len(words) / max(len(filled), 1)
    if not len(filled) or not (share <= 0.05 or (share < 0.5 and words.nunique() <= MISSING_TOKENS)):
        return False, []
    where, lines = table.attrs.get("path", "the table"), []
    if len(words):
        kinds = words.value_counts().index
        tokens = ", ".join(repr(w) for w in kinds[:MISSING_TOKENS]) + (" ..." if len(kinds) > MISSING_TOKENS else "")
        lines.append(f"table: {where}: column {column}: {len(words)} cell(s) {tokens} read as missing (a number "
                     "column)")
    infinite = raw[np.isinf(raw)]
    if len(infinite):
        lines.append(f"table: {where}: column {column}: {len(infinite)} infinite cell(s) (first: row "
                     f"{infinite.index[0]}) read as missing")
    return True, lines


def fit_table(table: pd.DataFrame, exclude=(), group: str = "") -> TableSpec:
    """Return the TableSpec of the training table: which columns are numbers, which categories (and levels).

    exclude: the id is left out always; the targets and anything else named here too. Says the cells read as
    missing and the columns left out (one line, with why): a column that silently vanishes looks like a bug.
    """
    id_column = table.attrs.get("id_column", table.index.name or table.columns[0])
    if group and group not in table:
        raise KitError(f"--group-column {group}: no such column in {table.attrs.get('path', 'the table')}")
    numbers, categories, dropped = [], [], []
    for column in (c for c in table.columns if c not in (id_column, group, *exclude)):
        is_number, lines = number_notes(table, column)
        if is_number:
            for line in lines:
                print(line)
            values = as_numbers(table[column].astype(str))
            mean, std = float(values.mean()), float(values.std(ddof=0))
            numbers.append((column, mean, std if std > 0 else 1.0, bool(values.isna().any())))
            continue
        text = table[column].astype(str)
        counts = text[text.str.strip() != ""].value_counts()
        if 1 < len(counts) <= MAX_LEVELS:
            kept = counts[counts >= max(5, RARE_SHARE * len(text))].index
            categories.append((column, tuple(sorted(map(str, kept)))))
        else:
            why = {0: "empty", 1: "one value"}.get(len(counts), f"{len(counts)} text levels: an id or free text")
            dropped.append(f"{column} ({why})")
    if dropped:
        print(f"table: left out of the features: {', '.join(dropped)}")
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
    found = []
    if schema is not None and schema.ids:
        try:
            if record:  # a run's saved spec: the test table must hold every column it reads
                found.append(read_test_table(Path(root), schema, spec, table.attrs["path"]))
            else:
                spec, test = test_side(Path(root), schema, spec, table.attrs["path"])
                found.append(test)
        except KitError as err:
            if "no column" in str(err):
                raise
            print(f"note: no test table for the metadata branch ({err})")
    parts = [table_features(part, spec) for part in (table, *found)]
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
