"""keras-hub presets as backbones (`--backbone hub:<preset>`), on a tiny preset the test saves (issue 14).

Kaggle Models presets cannot be downloaded here; the loading path is keras-hub's own
(Backbone.from_preset, ImageConverter.from_preset), fed a folder written by save_to_preset,
as an attached model is mounted in an offline kernel.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import ScreenConfig, TrainConfig
from src.core.submit_settings import SubmitConfig
from src.models.backbones import get_spec
from tests.conftest import make_folder_competition

keras_hub = pytest.importorskip("keras_hub", reason="hub: presets need keras-hub (requirements.txt pins it)")


@pytest.fixture
def preset(tmp_path):
    """A tiny ResNet preset with an image converter (scale 1/255), saved as keras-hub saves Kaggle Models."""
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    folder = tmp_path / "tiny_resnet_preset"
    backbone.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0).save_to_preset(str(folder))
    return folder, backbone


def test_a_preset_builds_as_a_pooled_backbone_with_its_weights_and_scaling(preset):
    folder, saved = preset
    spec = get_spec(f"hub:{folder}")
    model = spec.build((32, 32, 3), "imagenet")  # the preset's own weights
    assert model.name == spec.layer_name and ":" not in model.name and "/" not in model.name
    assert model.output_shape == (None, 16)
    inner = next(layer for layer in model.layers if isinstance(layer, keras_hub.models.Backbone))
    for mine, theirs in zip(inner.weights, saved.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert model.get_layer("hub_rescale").scale == pytest.approx(1 / 255.0)
    fresh = get_spec(f"hub:{folder}").build((32, 32, 3), "none")
    inner = next(layer for layer in fresh.layers if isinstance(layer, keras_hub.models.Backbone))
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(inner.weights, saved.weights))


def test_an_attached_kaggle_model_is_found_offline(preset, tmp_path, monkeypatch, capsys):
    folder, _ = preset
    attached = tmp_path / "inputs" / "tiny-resnet" / "keras" / "tiny" / "2"
    shutil.copytree(folder, attached)
    monkeypatch.setenv("KIT_INPUTS", str(tmp_path / "inputs"))
    model = get_spec("hub:kaggle://tester/tiny-resnet/keras/tiny").build((32, 32, 3), "imagenet")
    assert f"from the attached model {attached}" in capsys.readouterr().out
    assert model.output_shape == (None, 16)


def test_hub_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(KitError, match="hub:: name a keras-hub preset"):
        get_spec("hub:")
    with pytest.raises(KitError, match="keras-hub cannot load preset"):
        get_spec(f"hub:{tmp_path / 'nothing'}").build((32, 32, 3), "none")


def test_screening_training_and_submission_take_a_preset(preset, tmp_path):
    from src.inference.submission import submit
    from src.training.screening import screen
    from src.training.two_stage import train

    folder, _ = preset
    comp = make_folder_competition(tmp_path / "comp", per_class=6)
    name = f"hub:{folder}"
    rows = screen(parse_config(ScreenConfig, [
        "--data", str(comp), "--backbones", name, "--weights", "imagenet", "--mode", "features", "--image-size", "32", "32",
        "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "screen"),
        "--features-cache", str(tmp_path / "features")]))
    assert (rows["error"] == "").all() and list(rows["backbone"]) == [name]
    assert len(list((tmp_path / "features").glob("hub_tmp_*-train-*.npy"))) == 1  # a file name, not a path
    summary = train(parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", name, "--weights", "imagenet", "--stage1-size", "32", "32",
        "--stage2-size", "40", "40", "--stage1-epochs", "1", "--stage2-epochs", "1", "--batch-size", "8",
        "--out", str(tmp_path / "run")]))
    assert 0 <= summary["holdout_accuracy"] <= 1
    submit(parse_config(SubmitConfig, ["--data", str(comp), "--run", str(tmp_path / "run"), "--tta",
                                       "--out", str(tmp_path / "subs")]))
    written = pd.read_csv(tmp_path / "subs" / "submission.csv", dtype=str)
    assert len(written) == 5 and set(written["Category"]) <= {"0", "1", "2"}
