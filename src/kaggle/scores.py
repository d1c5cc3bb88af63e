"""Kaggle's scores of the kit's submissions, kept beside them: submissions/kaggle_scores.csv.

    [blend] effb3 tta            the description an upload carries: the submission's name first

Kaggle's submissions list knows a submission by its description, so every upload's description
starts with the submission's name in brackets (`name_in_description` reads it back). The file
holds one row per Kaggle submission (its ref), updated whenever the kit uploads, waits for a
score or fetches the list (`python -m src.ledger --competition SLUG`), so the ledger shows the
public and private scores offline later.
"""
from __future__ import annotations

import re
from pathlib import Path

from src.core.errors import KitError
from src.core.files import write_csv

SCORES_FILE = "kaggle_scores.csv"
COLUMNS = ["name", "competition", "ref", "date", "status", "public_score", "private_score", "description",
           "error", "file_name"]
TAG = re.compile(r"^\[([^\]\n]+)\]")


def tagged_description(name: str, message: str = "") -> str:
    """Return the description an upload carries: '[NAME] message' (or '[NAME]')."""
    return f"[{name}] {message}".strip()


def name_in_description(description) -> str:
    """Return the submission name a kit upload's description starts with, or '' for any other description."""
    found = TAG.match(str(description or ""))
    return found.group(1).strip() if found else ""


def scores_file(folder) -> Path:
    return Path(folder) / SCORES_FILE


def read_scores(folder):
    """Return the scores kept in FOLDER/kaggle_scores.csv (empty table when there is none yet).

    A file without the kit's columns is an error naming it (it is never overwritten either).
    """
    import pandas as pd

    path = scores_file(folder)
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        frame = pd.read_csv(path, dtype={"name": str, "description": str, "status": str, "error": str,
                                         "file_name": str, "competition": str, "date": str},
                            keep_default_na=False, na_values={"public_score": [""], "private_score": [""]})
    except ValueError as err:
        raise KitError(f"{path}: not readable as the kit's scores file ({err})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise KitError(f"{path}: not the kit's scores file (no column {missing[0]}); move it away")
    return frame[COLUMNS]


def record_scores(folder, rows: list) -> Path:
    """Merge rows (dicts with COLUMNS) into FOLDER/kaggle_scores.csv by Kaggle ref; return the file.

    A later row for the same ref replaces the earlier one (a pending submission becomes scored).
    """
    import pandas as pd

    kept = read_scores(folder)
    new = pd.DataFrame(rows, columns=COLUMNS)
    merged = pd.concat([kept[~kept["ref"].isin(new["ref"])], new], ignore_index=True) if len(kept) else new
    merged = merged.sort_values(["date", "ref"], kind="stable").reset_index(drop=True)
    return write_csv(scores_file(folder), merged)


def submission_row(sub, competition: str) -> dict:
    """Return a scores-file row from the Kaggle client's ApiSubmission."""
    status = getattr(sub.status, "name", str(sub.status)).lower()
    date = sub.date.isoformat(timespec="seconds") if sub.date is not None else ""
    return {"name": name_in_description(sub.description), "competition": competition, "ref": int(sub.ref),
            "date": date, "status": status, "public_score": as_score(sub.public_score),
            "private_score": as_score(sub.private_score), "description": sub.description or "",
            "error": sub.error_description or "", "file_name": sub.file_name or ""}


def as_score(text):
    """Return Kaggle's score text as a float; None when there is none yet (pending, or private before the end)."""
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise KitError(f"Kaggle sent a score that is not a number: {text!r}") from None
