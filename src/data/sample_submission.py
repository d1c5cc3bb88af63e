"""The sample submission: the schema a submission must follow, and the test images it names.

    schema = read_sample_submission(root)          # id column, target column, ids in row order
    test = find_test_images(root, opts, schema)    # id, path, width, height, orientation
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.files import read_user_csv
from src.core.task_kind import reading_order
from src.data.imagefiles import describe_bad, list_folder, scan_images
from src.data.label_tables import sniff_separator
from src.data.layout import image_folder_for, resolve_image_paths
from src.data.pixels import pixel_columns, write_pixel_images

TEST_FOLDERS = ("test_upload", "test", "test_images", "testing", "test_data")


@dataclasses.dataclass(frozen=True)
class SubmissionSchema:
    """What the sample submission says a submission must look like."""

    path: Path
    id_column: str
    target_column: str
    ids: tuple          # ids exactly as the sample writes them, in its row order (each image once)
    sample: pd.DataFrame = dataclasses.field(repr=False, compare=False, default=None)  # the file, as text
    rows: str = ""      # why an id repeats (a row per image and class), the kind's words; "": a row per id


def read_sample_submission(root: Path, need_rows: bool = True) -> SubmissionSchema | None:
    """Return the schema of root's sample submission CSV, or None when there is none.

    need_rows: a job that predicts the test set needs its rows (training reads only the columns).
    """
    found = [p for p in sorted(root.glob("*.csv"))
             if re.sub(r"[^a-z]", "", p.stem.lower()).startswith("samplesubmission")]
    if not found:
        return None
    path = found[0]
    frame = read_user_csv(path, dtype=str, keep_default_na=False)
    if frame.shape[1] < 2:
        raise KitError(f"{path}: expected an id column and a target column, found {list(frame.columns)}")
    if frame.empty and need_rows:
        raise KitError(f"{path}: only a header, no rows: expected one row per test image")
    id_column, target_column = frame.columns[0], frame.columns[1]
    rows = ""
    dup = frame[id_column].duplicated()
    if dup.any():  # a kind may ask for several rows per image (a row per image and class): the kinds are asked
        rows = next((why for kind in reading_order() if (why := kind.repeated_ids(frame))), "")
    if dup.any() and not rows:
        row = int(np.argmax(dup.to_numpy()))
        raise KitError(f"{path}: duplicate id {frame[id_column].iloc[row]!r} in column {id_column} "
                       f"(row {row + 2} of the file): expected each id once")
    ids = tuple(dict.fromkeys(frame[id_column]))  # each image once, in the sample's order
    return SubmissionSchema(path, id_column, target_column, ids, frame, rows)


def find_test_images(root: Path, opts: DataOptions, schema) -> pd.DataFrame | None:
    """Return the test images (id, path, size, orientation) in the sample submission's order.

    Every test image must decode: a submission needs every row, so a bad one is fatal.
    """
    if opts.test_dir and not Path(opts.test_dir).is_dir():
        raise KitError(f"--test-dir {opts.test_dir}: no such folder")
    folder = Path(opts.test_dir) if opts.test_dir else next(
        (root / n for n in TEST_FOLDERS if (root / n).is_dir()), None)
    if (folder is None or not folder.is_dir()) and schema is not None and schema.ids:
        # Train and test images in one folder (Plant Pathology 2020's images/): where the sample's ids are;
        # or rows of pixels in test.csv (Digit Recognizer).
        folder = image_folder_for(root, "", pd.Series(schema.ids, dtype=str)) or pixel_test_images(root, schema)
    if folder is None or not folder.is_dir():
        if schema is None:
            return None
        raise KitError(f"{schema.path} lists test ids but no test folder was found in {root} "
                       f"(looked for {', '.join(TEST_FOLDERS)} and the folders holding its ids): pass --test-dir")
    if schema is None:
        images, _ = list_folder(folder)
        frame = pd.DataFrame({"id": [p.name for p in images], "path": [str(p) for p in images]})
    else:
        ids = pd.Series(schema.ids, dtype=str)
        frame = pd.DataFrame({"id": ids, "path": resolve_image_paths(folder, ids, schema.path)})
    scan = scan_images(frame["path"].tolist())
    bad = scan[scan["error"] != ""]
    if not bad.empty:
        raise KitError(f"bad test images (a submission needs every row): {describe_bad(bad)}")
    for column in ("width", "height", "orientation"):
        frame[column] = scan[column].to_numpy()
    return frame


def pixel_test_images(root: Path, schema) -> Path | None:
    """Return the folder of test images written from a pixel CSV (test.csv), named by the sample's ids, or None.

    Digit Recognizer's sample ImageId 1..N numbers test.csv's rows in order.
    """
    found = [p for p in sorted(root.glob("*.csv")) if "test" in p.stem.lower() and p != schema.path]
    for path in found:
        raw = read_user_csv(path, dtype=str, keep_default_na=False, sep=sniff_separator(path))
        if pixel_columns(raw.columns):
            if len(raw) != len(schema.ids):
                raise KitError(f"{path}: {len(raw)} rows of pixels, but {schema.path} lists {len(schema.ids)} ids")
            return Path(write_pixel_images(path, raw, list(schema.ids), "test")[0]).parent
    return None
