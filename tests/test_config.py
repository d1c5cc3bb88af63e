import dataclasses
import json

import pytest

from src.core.config import DataOptions, PipelineOptions, opt, parse_config, save_config
from src.core.errors import KitError


@dataclasses.dataclass
class JobConfig(DataOptions, PipelineOptions):
    """A job config made of the shared option groups plus its own field."""

    out: str = opt("runs/x", "output folder")
    epochs: int = opt(3, "epochs")


def test_flags_are_generated_from_fields():
    cfg = parse_config(JobConfig, ["--image-size", "220", "305", "--epochs", "5", "--strict-images",
                                   "--augment", "strong", "--val-fraction", "0.25"])
    assert cfg.image_size == (220, 305)
    assert cfg.epochs == 5 and cfg.strict_images is True and cfg.augment == "strong"
    assert cfg.val_fraction == 0.25
    assert cfg.batch_size == 32  # untouched fields keep their defaults


def test_unknown_flag_and_wrong_type_are_errors(capsys):
    with pytest.raises(SystemExit):
        parse_config(JobConfig, ["--epoch", "3"])
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(JobConfig, ["--epochs", "three"])
    assert "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(JobConfig, ["--resize", "squash"])


def test_config_file_json_and_yaml_with_flags_winning(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 7, "image-size": [64, 48], "cache": "none"}))
    cfg = parse_config(JobConfig, ["--config", str(tmp_path / "c.json"), "--epochs", "9"])
    assert (cfg.epochs, cfg.image_size, cfg.cache) == (9, (64, 48), "none")
    (tmp_path / "c.yaml").write_text("batch_size: 8\nmixup: 1\n")
    cfg = parse_config(JobConfig, ["--config", str(tmp_path / "c.yaml")])
    assert cfg.batch_size == 8 and cfg.mixup == 1.0 and isinstance(cfg.mixup, float)


@pytest.mark.parametrize("content, message", [
    ({"epoch": 3}, "unknown field(s) epoch"),
    ({"epochs": "3"}, "epochs (--epochs): expected int, got '3'"),
    ({"epochs": True}, "epochs (--epochs): expected int"),
    ({"image_size": [64]}, "image_size (--image-size): expected 2 values"),
    ({"cache": "gpu"}, "cache (--cache): expected one of memory, disk, none"),
    ({"batch_size": 0}, "batch_size (--batch-size): expected a number above 0, got 0"),
])
def test_config_file_errors_name_the_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(KitError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_config(JobConfig, ["--config", str(path)])
    assert str(path) in str(err.value)


def test_resolved_config_is_saved_as_json(tmp_path):
    cfg = parse_config(JobConfig, ["--image-size", "32", "40"])
    path = save_config(cfg, tmp_path / "run")
    saved = json.loads(path.read_text())
    assert path.name == "config.json" and saved["image_size"] == [32, 40] and saved["epochs"] == 3
    assert parse_config(JobConfig, ["--config", str(path)]) == cfg  # a saved config reproduces the run


@dataclasses.dataclass
class RepeatConfig:
    """A job with a repeatable flag."""

    run: tuple[str, ...] = opt((), "run folders")


def test_repeatable_flags_collect_every_value(tmp_path):
    assert parse_config(RepeatConfig, ["--run", "a", "--run", "b c"]).run == ("a", "b c")
    assert parse_config(RepeatConfig, []).run == ()
    (tmp_path / "r.json").write_text(json.dumps({"run": ["x", "y"]}))
    assert parse_config(RepeatConfig, ["--config", str(tmp_path / "r.json")]).run == ("x", "y")


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size: expected a number above 0, got 0"),
    (["--stage1-size", "0", "32"], "--stage1-size: expected a size from 1 to 4096 pixels a side"),
    (["--seed", "-1"], "--seed: expected a number of 0 or more, got -1"),
    (["--val-fraction", "1.5"], "--val-fraction: expected a number between 0 and 1, got 1.5"),
    (["--folds", "1"], "--folds: expected 0 (one split) or 2 and more, got 1"),
    (["--folds", "3", "--fold", "3"], "--fold 3: expected 0 .. 2 with --folds 3"),
    (["--augment", "albumentations:missing.json"], "--augment: expected albumentations:FILE naming an existing file"),
    (["--augment", "heavy"], "--augment: expected one of none, light, strong, or albumentations:FILE"),
])
def test_flag_values_are_checked_when_the_config_is_made(argv, message, tmp_path):
    """Bad values fail at parse time, before any folder exists (issue 12's tracebacks deep in TensorFlow)."""
    from src.core.settings import TrainConfig

    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, argv)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_setting_the_job_does_not_use_is_refused_in_a_config_file(tmp_path):
    """src.train has per-stage sizes: an image_size in its config file was silently ignored (a ghost)."""
    from src.core.settings import TrainConfig

    (tmp_path / "c.json").write_text(json.dumps({"image_size": [64, 64]}))
    with pytest.raises(KitError, match="image_size is not a setting of this job"):
        parse_config(TrainConfig, ["--config", str(tmp_path / "c.json")])
    saved = json.loads(save_config(parse_config(TrainConfig, []), tmp_path / "run").read_text())
    assert "image_size" not in saved and saved["stage1_size"] == [220, 305]
