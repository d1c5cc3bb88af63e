"""Issue 34: defects found by probing the kit, each a sentence now (or no noise at all).

Most checks need no model; the one that trains uses a tiny run (16x16 tiny_resnet, few steps).
"""
from __future__ import annotations

import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.data.competition import load_competition


# ---------------------------------------------------------------- 1. --targets names an auxiliary target
def test_1_a_column_targets_names_is_a_target_not_metadata(csv_comp, capsys):
    from src.training.multitask import task_columns

    cfg = parse_config(TrainConfig, ["--data", str(csv_comp), "--targets", "make_id,model_id"])
    comp = load_competition(cfg)
    assert task_columns(cfg, comp) == ["make_id", "model_id"]
    assert comp.label_columns == ["make_id", "model_id"] and comp.target == "model_id"
    assert comp.class_maps["make_id"].values == (0, 1)
    assert ("metadata: car of train.csv (not named by sample_submission.csv: not labels; --targets or "
            "--label-column names labels") in capsys.readouterr().out
    # without --targets the sample decides: make_id is metadata, and --targets is refused by name
    plain = load_competition(parse_config(TrainConfig, ["--data", str(csv_comp)]))
    assert plain.label_columns == ["model_id"]
    with pytest.raises(KitError, match=r"^--targets: 'colour' is not a label column of .* \(label columns: "
                                       r"make_id, model_id\)"):
        bad = parse_config(TrainConfig, ["--data", str(csv_comp), "--targets", "make_id,model_id,colour"])
        task_columns(bad, load_competition(bad))
