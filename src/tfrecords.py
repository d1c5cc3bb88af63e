"""TFRecord shards of a competition, for TPUs: `python -m src.tfrecords --data DIR --out DIR`.

    python -m src.tfrecords --data data/cars --out data/cars-tfrec     # then train with --data data/cars-tfrec

Writes the saved split (the one every job reuses, runs/splits/...) into shards of about
--shard-mb MB of image bytes: train-f<fold>-<nnn>-<count>.tfrec per fold (so any --fold of a
K-fold split is whole shards) and test-<nnn>-<count>.tfrec in the sample submission's order,
the record count in each name as is Kaggle's habit. Each record holds the image file's bytes
untouched, its id and every label column. Beside them: index.csv (one row per record: shard,
record, id, labels, original path, width, height, EXIF orientation), the sample submission
and tfrecords.json. Any job given `--data DIR` of shards reads images from them and labels
from the index, with the split fixed by the shards.

Why: a TPU reads large sequential files well and many small ones badly; on a Kaggle TPU VM
the shards are read straight from /kaggle/input.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from src.config import DataOptions, opt, parse_config, save_config
from src.errors import KitError, run_cli

MANIFEST = "tfrecords.json"
INDEX = "index.csv"


@dataclasses.dataclass
class TfrecordsConfig(DataOptions):
    """Write a competition's saved split and test images into TFRecord shards."""

    out: str = opt("", "folder for the shards; empty: runs/tfrecords/<data folder name>")
    shard_mb: float = opt(100.0, "image bytes per shard, in MB (Kaggle TPU notebooks use 100-200)")
    overwrite: bool = opt(False, "replace shards already in --out")


def write_shards(cfg: TfrecordsConfig) -> Path:
    """Write the shards, index.csv, the sample submission and tfrecords.json; return the folder."""
    from src.competition import load_competition
    from src.splits import load_or_make_split

    comp = load_competition(cfg)
    out = Path(cfg.out or Path("runs") / "tfrecords" / comp.root.resolve().name)
    if out.resolve() == comp.root.resolve():
        raise KitError(f"--out {out}: must not be the data folder itself")
    if (out / MANIFEST).is_file() and not cfg.overwrite:
        raise KitError(f"{out} holds shards already: pass --overwrite to replace them, or another --out")
    if not (out / MANIFEST).is_file() and any(out.glob("*.tfrec")):
        raise KitError(f"{out} holds .tfrec files this kit did not write: choose another --out")
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
    pd.DataFrame(rows).fillna("").to_csv(out / INDEX, index=False)  # test rows have no labels
    if comp.schema is not None:
        shutil.copy2(comp.schema.path, out / comp.schema.path.name)
    manifest = {"source": str(comp.root), "target": comp.target, "label_columns": comp.label_columns,
                "label_types": {c: "int" if pd.api.types.is_integer_dtype(split[c]) else "str"
                                for c in comp.label_columns},
                "folds": cfg.folds, "seed": cfg.seed, "val_fraction": cfg.val_fraction,
                "shards": {r["shard"]: r["record"] + 1 for r in rows}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
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


def make_example(image: bytes, image_id: str, labels: dict) -> bytes:
    """Return one serialized tf.train.Example: the file's bytes, its id and its labels as text."""
    import tensorflow as tf

    def text(value: str | bytes):
        raw = value if isinstance(value, bytes) else value.encode()
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))

    features = {"image": text(image), "id": text(image_id), **{f"label/{k}": text(v) for k, v in labels.items()}}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_record(serialized, label_columns=()):
    """Return {'image': bytes, 'id': text, 'label/<column>': text} from one record."""
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string), "id": tf.io.FixedLenFeature([], tf.string)}
    spec.update({f"label/{c}": tf.io.FixedLenFeature([], tf.string) for c in label_columns})
    return tf.io.parse_single_example(serialized, spec)


def is_shard_folder(root: str | Path) -> bool:
    """Return True when the folder holds shards written by this module."""
    return (Path(root) / MANIFEST).is_file()


def load_shard_competition(root: Path, opts: DataOptions, with_test: bool = True):
    """Return a Competition whose frames point into the shards (columns shard, record), split fixed."""
    from src.competition import Competition, make_class_map, read_sample_submission

    manifest = json.loads((root / MANIFEST).read_text())
    if opts.folds != manifest["folds"]:
        raise KitError(f"--folds {opts.folds}: the shards in {root} were written with --folds "
                       f"{manifest['folds']}; write them again with the split you want")
    index = pd.read_csv(root / INDEX, dtype=str, keep_default_na=False)
    for column in ("record", "fold", "width", "height", "orientation"):
        index[column] = index[column].astype(int)
    index["shard"] = [str(root / name) for name in index["shard"]]
    train = index[index["role"] == "train"].drop(columns="role").reset_index(drop=True)
    for column, kind in manifest["label_types"].items():  # as the folders gave them: 7 stays an int
        if kind == "int":
            train[column] = train[column].astype(int)
    test = index[index["role"] == "test"][["id", "path", "width", "height", "orientation", "shard", "record"]]
    columns = manifest["label_columns"]
    class_maps = {c: make_class_map(train[c], c) for c in columns}
    return Competition(root, "tfrecords", train, columns, manifest["target"], class_maps,
                       test.reset_index(drop=True) if with_test and len(test) else None,
                       read_sample_submission(root), pd.DataFrame(columns=["path", "why"]), {})


def shard_count(path: str) -> int:
    """Return the record count a shard's name carries (train-f0-003-1437.tfrec -> 1437)."""
    return int(Path(path).name.rsplit("-", 1)[1].split(".")[0])


def check_whole_shards(frame: pd.DataFrame) -> list:
    """Return the frame's shard files in order; raise unless the frame is whole shards, records in order.

    Shards are streamed, not indexed: labels line up with images only when every shard is read
    from its first record to its last, in the frame's order.
    """
    files = list(dict.fromkeys(frame["shard"]))
    expected = [(f, r) for f in files for r in range(shard_count(f))]
    if list(zip(frame["shard"], frame["record"])) != expected:
        raise ValueError("a TFRecord frame must list whole shards with their records in order "
                         f"({len(frame)} rows over {len(files)} shard(s) holding {len(expected)} records)")
    return files


def read_image_bytes(frame: pd.DataFrame) -> list:
    """Return the image file bytes of a few shard rows, in the frame's order (for figures)."""
    import tensorflow as tf

    wanted = {}
    for shard, record in zip(frame["shard"], frame["record"]):
        wanted.setdefault(shard, set()).add(int(record))
    found = {}
    for shard, records in wanted.items():
        for number, raw in enumerate(tf.data.TFRecordDataset(shard).take(max(records) + 1)):
            if number in records:
                found[(shard, number)] = parse_record(raw)["image"].numpy()
    return [found[(s, int(r))] for s, r in zip(frame["shard"], frame["record"])]


def main(argv=None) -> Path:
    """Run the job from command-line flags; return the shard folder."""
    return write_shards(parse_config(TfrecordsConfig, argv))


if __name__ == "__main__":
    sys.exit(run_cli(main))
