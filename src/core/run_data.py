"""A later job's data settings: what it was not told is taken from the run's own config.json.

    cfg, line = inherit_data_settings(cfg, run.config)   # --images-dir, --labels-csv ... of the run

A run trained with --images-dir or --labels-csv names where its competition's files are; src.submit
and src.stack reuse those instead of failing on the same guess the training job needed help with.
A flag given to the later job wins.
"""
from __future__ import annotations

import dataclasses

# where the files are and how the labels table is read: the same for every job on one competition
INHERITED = ("labels_csv", "id_column", "label_column", "images_dir", "test_dir", "group_column")


def inherit_data_settings(cfg, run_config) -> tuple:
    """Return (cfg with the run's data settings where cfg leaves them empty, a line naming them or '')."""
    names = {f.name for f in dataclasses.fields(cfg)}
    taken = {name: getattr(run_config, name) for name in INHERITED
             if name in names and not getattr(cfg, name) and getattr(run_config, name, "")}
    if not taken:
        return cfg, ""
    flags = ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in taken.items())
    return dataclasses.replace(cfg, **taken), f"data settings from the run's config: {flags}"
