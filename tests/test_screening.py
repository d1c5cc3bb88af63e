import dataclasses
import math

import pandas as pd
import pytest

from src.models import backbones
from src.hardware.accelerator import pick_strategy
from src.core.config import parse_config
from src.core.errors import KitError
from src.training.screening import COLUMNS, screen
from src.core.settings import ScreenConfig
from tests.conftest import make_folder_competition


@pytest.fixture
def comp(tmp_path):
    return make_folder_competition(tmp_path / "c", classes=("a", "b", "c"), per_class=8)


def config(comp, tmp_path, *extra):
    return parse_config(ScreenConfig, ["--data", str(comp), "--backbones", "tiny_resnet,small_resnet",
                                       "--weights", "none", "--epochs", "2", "--image-size", "32", "32",
                                       "--batch-size", "8", "--out", str(tmp_path / "screen"),
                                       "--features-cache", str(tmp_path / "features"), *extra])


@pytest.mark.parametrize("mode, augment", [("features", "none"), ("full", "light")])
def test_screening_writes_the_table_and_the_chart(comp, tmp_path, capsys, mode, augment):
    rows = screen(config(comp, tmp_path, "--mode", mode, "--augment", augment))
    table = pd.read_csv(tmp_path / "screen" / "screening.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS and set(table["backbone"]) == {"tiny_resnet", "small_resnet"}
    assert (table["mode"] == mode).all() and (table["error"] == "").all()
    assert list(table["best_val_accuracy"]) == sorted(table["best_val_accuracy"], reverse=True)
    assert table["best_epoch"].between(1, 2).all() and (table["params"] > 0).all()
    assert (tmp_path / "screen" / "screening.png").stat().st_size > 0
    assert (tmp_path / "screen" / "config.json").exists() and (tmp_path / "screen" / "class_map.json").exists()
    out = capsys.readouterr().out
    assert "[1/2] tiny_resnet:" in out and "[2/2] small_resnet:" in out and f"winner: {rows.iloc[0]['backbone']}" in out


def test_auto_mode_uses_features_without_augmentation(comp, tmp_path):
    rows = screen(config(comp, tmp_path, "--augment", "none", "--backbones", "tiny_resnet"))
    assert list(rows["mode"]) == ["features"]


def test_resume_skips_finished_rows_and_keeps_the_others(comp, tmp_path, capsys):
    screen(config(comp, tmp_path, "--augment", "none", "--backbones", "tiny_resnet"))
    first = pd.read_csv(tmp_path / "screen" / "screening.csv")
    screen(config(comp, tmp_path, "--augment", "none", "--resume"))
    second = pd.read_csv(tmp_path / "screen" / "screening.csv")
    assert "tiny_resnet: already in screening.csv, skipped (--resume)" in capsys.readouterr().out
    assert set(second["backbone"]) == {"tiny_resnet", "small_resnet"}
    kept = second[second["backbone"] == "tiny_resnet"].iloc[0]
    assert kept["seconds"] == first.iloc[0]["seconds"]  # not run again


def test_features_are_cached_across_runs(comp, tmp_path, capsys):
    screen(config(comp, tmp_path, "--mode", "features", "--backbones", "tiny_resnet"))
    again = screen(config(comp, tmp_path, "--mode", "features", "--backbones", "tiny_resnet"))
    assert math.isnan(again.iloc[0]["images_per_second"])
    assert "features from cache" in capsys.readouterr().out
    assert len(list((tmp_path / "features").glob("tiny_resnet-*.npy"))) == 2  # train and val


def test_a_failing_backbone_is_recorded_and_the_others_run(comp, tmp_path, monkeypatch):
    def explode(self, input_shape, weights="none"):
        raise MemoryError("out of memory while building")

    broken = dataclasses.replace(backbones.REGISTRY["small_resnet"], name="broken_net")
    monkeypatch.setitem(backbones.REGISTRY, "broken_net", broken)
    monkeypatch.setattr(backbones.BackboneSpec, "build",
                        lambda self, *a, **k: explode(self, *a) if self.name == "broken_net"
                        else original_build(self, *a, **k))
    rows = screen(config(comp, tmp_path, "--augment", "none", "--backbones", "broken_net,tiny_resnet"))
    broken_row = rows[rows["backbone"] == "broken_net"].iloc[0]
    assert broken_row["error"] == "MemoryError: out of memory while building"
    assert rows.iloc[0]["backbone"] == "tiny_resnet" and rows.iloc[0]["error"] == ""
    assert rows.iloc[-1]["backbone"] == "broken_net"  # failures sort last


original_build = backbones.BackboneSpec.build


def test_unknown_backbone_stops_before_anything_runs(comp, tmp_path):
    with pytest.raises(KitError, match="unknown backbone 'resnet500'"):
        screen(config(comp, tmp_path, "--backbones", "tiny_resnet,resnet500"))
    assert not (tmp_path / "screen" / "screening.csv").exists()


def test_cpu_strategy_is_described_in_one_line(capsys):
    strategy = pick_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert capsys.readouterr().out.startswith("accelerator: CPU (")
