"""A submission's NAME.json (what src.submit wrote beside NAME.csv), named and read back in one place.

NAME.json holds the runs and their ensemble weights, the TTA views, the holdout scores per run and
for the ensemble, the metric, the date, versions and the git commit; the ledger (python -m src.ledger)
reads it back.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from src.core.errors import KitError


def manifest_file(out, name: str) -> Path:
    return Path(out) / f"{name}.json"


def now_text() -> str:
    """Return the time now as ISO text in UTC, seconds only (the date a submission was written)."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def find_manifests(folder) -> list:
    """Return the NAME.json files in a folder that sit beside a NAME.csv (the kit's submissions), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.with_suffix(".csv").is_file())


def read_manifest(path) -> dict:
    """Return a submission's NAME.json; one that is not JSON or not the kit's raises KitError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise KitError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(data, dict) or "runs" not in data or "holdout" not in data:
        raise KitError(f"{path}: not a submission report of src.submit (no runs and holdout scores)")
    return data


def written_at(path, manifest: dict) -> str:
    """Return when the submission was written: its date, or (reports before the date was kept) the file's time."""
    if manifest.get("date"):
        return str(manifest["date"])
    stamp = Path(path).stat().st_mtime
    return datetime.fromtimestamp(stamp, timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
