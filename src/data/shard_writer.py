"""Write a competition's saved split and test images into TFRecord shards (`python -m src.tfrecords`).

    python -m src.tfrecords --data data/cars --out data/cars-tfrec     # then train with --data data/cars-tfrec

Writes the saved split (the one every job reuses, runs/splits/...) into shards of about
--shard-mb MB of image bytes: train-f<fold>-<nnn>-<count>.tfrec per fold (so any --fold of a
K-fold split is whole shards) and test-<nnn>-<count>.tfrec in the sample submission's order,
the record count in each name as is Kaggle's habit. Each record holds the image file's bytes
untouched, its id and every label column.

Why: a TPU reads large sequential files well and many small ones badly; on a Kaggle TPU VM
the shards are read straight from /kaggle/input.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from src.core.config import save_config
from src.core.errors import KitError
from src.core.files import write_csv, write_json
from src.core.settings import TfrecordsConfig
from src.data.competition import load_competition
from src.data.shards import INDEX, MANIFEST, make_example
from src.data.splits import load_or_make_split


def write_shards(cfg: TfrecordsConfig) -> Path:
    """Write the shards, index.csv, the sample submission and tfrecords.json; return the folder."""
    comp = load_competition(cfg)
    out = Path(cfg.out or Path("runs") / "tfrecords" / comp.root.resolve().name)
    if out.resolve() == comp.root.resolve():
        raise KitError(f"--out {out}: must not be the data folder itself")
    if (out / MANIFEST).is_file() and not cfg.overwrite:
        raise KitError(f"{out} holds shards already: pass --overwrite to replace them, or another --out")
    if not (out / MANIFEST).is_file() and out.is_dir() and any(out.iterdir()):
        raise KitError(f"--out {out} holds files this kit did not write (no {MANIFEST}): choose an empty or "
                       "new folder; nothing was changed")
    for old in out.glob("*.tfrec"):  # only shards of ours, with --overwrite
        old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    split = load_or_make_split(comp, cfg)
    rows = []
    for fold in sorted(split["fold"].unique()):
        rows += write_role(split[split["fold"] == fold], out, f"train-f{fold}", comp.label_columns,
                           cfg.shard_mb, comp.root)
    if comp.test is not None:
        rows += write_role(comp.test, out, "test", [], cfg.shard_mb, comp.root)
    write_csv(out / INDEX, pd.DataFrame(rows).fillna(""))  # test rows have no labels
    if comp.schema is not None:
        shutil.copy2(comp.schema.path, out / comp.schema.path.name)
    manifest = {"source": str(comp.root), "target": comp.target, "label_columns": comp.label_columns,
                "label_types": {c: "int" if pd.api.types.is_integer_dtype(split[c]) else "str"
                                for c in comp.label_columns},
                "folds": cfg.folds, "seed": cfg.seed, "val_fraction": cfg.val_fraction,
                "shards": {r["shard"]: r["record"] + 1 for r in rows}}
    write_json(out / MANIFEST, manifest)
    save_config(cfg, out)
    print(f"wrote {len(manifest['shards'])} shard(s), {len(rows)} record(s) into {out}")
    return out


def write_role(frame: pd.DataFrame, out: Path, prefix: str, label_columns: list, shard_mb: float,
               root: Path) -> list:
    """Write frame's images into shards named <prefix>-<nnn>-<count>.tfrec; return one index row per record."""
    import tensorflow as tf

    rows = []
    for number, part in enumerate(chunk_by_size(frame, shard_mb * 1e6)):
        temp = out / f"{prefix}-{number:03d}.tfrec.partial"
        with tf.io.TFRecordWriter(str(temp)) as writer:
            for record, row in enumerate(part.itertuples(index=False)):
                row = row._asdict()
                writer.write(make_example(Path(row["path"]).read_bytes(), str(row["id"]),
                                          {c: str(row[c]) for c in label_columns}))
                rows.append({"shard": "", "record": record, "id": row["id"],
                             "role": "test" if prefix == "test" else "train",
                             "fold": row.get("fold", -1), **{c: str(row[c]) for c in label_columns},
                             "path": relative_path(row["path"], root), "width": row["width"],
                             "height": row["height"], "orientation": row["orientation"]})
        name = f"{prefix}-{number:03d}-{len(part)}.tfrec"
        temp.rename(out / name)  # complete shards only: a killed run leaves no shard that looks whole
        for row in rows[-len(part):]:
            row["shard"] = name
        print(f"{name}: {len(part)} images", flush=True)
    return rows


def chunk_by_size(frame: pd.DataFrame, limit: float):
    """Yield consecutive slices of frame whose files add up to about `limit` bytes (at least one row)."""
    sizes = [Path(p).stat().st_size for p in frame["path"]]
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if total and total + size > limit:
            yield frame.iloc[start:i]
            start, total = i, 0
        total += size
    if start < len(frame):
        yield frame.iloc[start:]


def relative_path(path: str, root: Path) -> str:
    """Return the image's path relative to the data folder (kept for its extension and for reports)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return Path(path).name
