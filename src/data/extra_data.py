"""Extra labelled images for training only (`python -m src.train --extra-data DIR`).

The split is made from the competition's images alone, so runs with and without extra data
are scored on the same holdout and src.inference.submission's holdout table shows whether it helped (the car
reference tried an extra dataset and dropped it).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from src.core.errors import KitError
from src.data.competition import load_competition


def add_extra_data(split: pd.DataFrame, comp, cfg) -> pd.DataFrame:
    """Return the split with a second labelled folder's images added to training, never to the holdout.

    The split is made from the competition's images alone, so runs with and without extra data
    are scored on the same holdout (src.inference.submission's holdout table compares them). Extra images whose
    bytes equal a holdout image's are dropped: they would leak the answer.
    """
    if comp.fixed_split:
        raise KitError(f"--extra-data with TFRecord shards ({comp.root}): train from the image folders, or write "
                       "shards of a folder that holds both")
    extra = load_competition(dataclasses.replace(cfg, data=cfg.extra_data, labels_csv="", id_column="",
                                                 label_column="", images_dir="", split_file="",
                                                 min_class_count=0), with_test=False)
    labels = extra.train[extra.target]
    known = set(comp.class_maps[comp.target].values)
    unknown = ~labels.isin(known)
    if unknown.all():
        raise KitError(f"--extra-data {cfg.extra_data}: none of its labels ({', '.join(map(str, labels.unique()[:5]))}"
                       f" ...) is a class of {comp.root}")
    holdout = {file_digest(p) for p in split.loc[split["split"] == "val", "path"]}
    leaked = extra.train["path"].map(file_digest).isin(holdout)
    keep = extra.train[~unknown & ~leaked]
    rows = pd.DataFrame({"id": "extra/" + keep["id"].astype(str), "path": keep["path"], comp.target: keep[extra.target],
                         "width": keep["width"], "height": keep["height"], "orientation": keep["orientation"],
                         "fold": -1, "split": "train", "source": "extra"})
    print(f"extra data: {len(rows)} training image(s) from {cfg.extra_data} ({int(unknown.sum())} of unknown "
          f"classes and {int((leaked & ~unknown).sum())} identical to holdout images left out)")
    return pd.concat([split.assign(source="competition"), rows], ignore_index=True)


def file_digest(path: str) -> str:
    """Return the SHA-1 of a file's bytes (finds the same image under another name)."""
    import hashlib

    return hashlib.sha1(Path(path).read_bytes()).hexdigest()
