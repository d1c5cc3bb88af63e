"""The recipe's rate and averaging flags: --average-top, --backbone-lr-scale, --drop-path, --steps-per-execution."""
import json

import keras
import numpy as np
import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.metric_choice import rank_key
from src.core.settings import TrainConfig
from src.hardware.accelerator import Accelerator
from src.models.backbones import get_spec
from src.models.recipe import ReplicaSafeLossScaleOptimizer, make_optimizer
from src.training.history import finished_rows
from src.training.top_epochs import TopEpochs, keep_average, mean_weights
from src.training.two_stage import train
from tests.test_train import Snapshot, config, comp, weights_of  # noqa: F401  (comp: the fixture)


def tiny_model():
    """Return 3 -> backbone (BatchNorm, Dense 4) -> head (Dense 2): a nested model named backbone, as the kit's."""
    inputs = keras.Input((3,))
    backbone = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(),
                                 keras.layers.Dense(4, activation="tanh")], name="backbone")
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(backbone(inputs))), backbone


def one_update(name: str, scale: float, accumulate: int = 1, ema: float = 0.0, loss_scale: bool = False) -> list:
    """Return how much each trainable variable moved in one update of 8 rows."""
    keras.utils.set_random_seed(0)
    model, backbone = tiny_model()
    before = [w.numpy() for w in model.trainable_weights]
    optimizer = make_optimizer(name, 0.1, accumulate, ema, scale, backbone.trainable_variables)
    model.compile(optimizer=ReplicaSafeLossScaleOptimizer(optimizer) if loss_scale else optimizer, loss="mse",
                  run_eagerly=True)  # one step: tracing would cost more than it saves
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.fit(x, np.ones((8, 2), "float32"), batch_size=8 // accumulate, epochs=1, shuffle=False, verbose=0)
    return [w.numpy() - b for w, b in zip(model.trainable_weights, before)]


@pytest.mark.parametrize("name, accumulate, ema, loss_scale", [
    ("sgd", 1, 0.0, False), ("adam", 2, 0.9, False), ("sgd", 1, 0.0, True)])  # accumulation + EMA; loss scaling
def test_the_backbone_steps_at_the_scale_of_the_heads_rate(name, accumulate, ema, loss_scale):
    scaled = one_update(name, 0.25, accumulate, ema, loss_scale)
    plain = one_update(name, 1.0, accumulate, ema, loss_scale)
    # backbone: BatchNorm gamma, beta, Dense kernel, bias; then the head's kernel and bias
    assert len(scaled) == 6 and all(np.abs(p).max() > 1e-3 for p in plain)
    for moved, full in zip(scaled[:4], plain[:4]):
        np.testing.assert_allclose(moved, 0.25 * full, rtol=2e-5, atol=1e-8)  # SGD: exactly F (to float32)
    for moved, full in zip(scaled[4:], plain[4:]):
        np.testing.assert_allclose(moved, full, rtol=1e-6, atol=1e-9)


def test_the_top_epochs_kept_are_the_best_and_their_mean_is_the_average(tmp_path):
    model, _ = tiny_model()
    model.compile(optimizer="adam", loss="mse")  # as a stage's model is
    keeper = TopEpochs(tmp_path / "stage1.top", 3, "log_loss")
    keeper.set_model(model)
    scores, saved = [0.9, 0.5, 0.7, 0.6, 0.8], {}  # log loss: lower is better; best epochs 2, 4, 3
    rng = np.random.default_rng(1)
    for epoch, score in enumerate(scores):
        weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
        model.set_weights(weights)
        saved[epoch + 1] = weights
        keeper.on_epoch_end(epoch, {"val_log_loss": score, "val_loss": score})
    assert keeper.ranked() == [2, 4, 3]
    assert sorted(p.name for p in (tmp_path / "stage1.top").iterdir()) == [
        "epoch2.weights.h5", "epoch3.weights.h5", "epoch4.weights.h5"]
    current = model.get_weights()
    average = mean_weights(model, [keeper.file(e) for e in keeper.ranked()])
    assert len(average) == 8  # BatchNorm's moving mean and variance (the 3rd and 4th) are averaged too
    for got, *epochs in zip(average, saved[2], saved[3], saved[4]):
        np.testing.assert_allclose(got, np.mean(epochs, axis=0), rtol=1e-6, atol=1e-7)
    for now, before in zip(model.get_weights(), current):  # the model's own weights are left as they were
        np.testing.assert_array_equal(now, before)
    # --resume after a cut: the rows finished are epochs 1-3, so epoch 4 runs again and its file goes
    rows = pd.DataFrame({"epoch": [0, 1, 2], "val_log_loss": scores[:3], "val_loss": scores[:3]})
    resumed = TopEpochs(tmp_path / "stage1.top", 3, "log_loss", rows)
    assert resumed.ranked() == [2, 3] and not resumed.file(4).exists()


def test_a_resumed_stage_ranks_an_epoch_read_back_and_an_equal_live_one_by_val_loss(tmp_path):
    # 0.2 in float32, as Keras logs it and CSVLogger writes its repr: pandas 2's default parser (Kaggle's image)
    # reads that text one unit in the last place lower, so a live epoch of the same score ranked above it.
    score = float(np.float32(0.2))
    log, backup = tmp_path / "history-stage1.csv", tmp_path / "backup"
    log.write_text(f"epoch,val_accuracy,val_loss\n0,{score!r},0.5\n1,{score!r},0.7\n")
    rows = finished_rows(log, backup)
    assert list(rows["val_accuracy"]) == [score, score]  # the logger's values, read back exactly
    folder = tmp_path / "stage1.top"
    folder.mkdir()
    for epoch in (1, 2):
        (folder / f"epoch{epoch}.weights.h5").write_bytes(b"")
    keeper = TopEpochs(folder, 2, "accuracy", rows)
    keeper.set_model(tiny_model()[0])
    keeper.on_epoch_end(2, {"val_accuracy": score, "val_loss": 0.6})  # epoch 3: the same score, a lower loss
    assert keeper.ranked() == [1, 3]
    # the same tie between a float64 text and float32's value, as any other choice of the kit compares it
    assert rank_key(0.2000000029802322, 0.6, "accuracy") < rank_key(score, 0.7, "accuracy")


@pytest.mark.parametrize("average, best, metric, kept", [
    (0.80, 0.80, "accuracy", True), (0.81, 0.80, "accuracy", True), (0.79, 0.80, "accuracy", False),
    (0.40, 0.41, "log_loss", True), (0.42, 0.41, "log_loss", False), (float("nan"), 0.5, "auc", False)])
def test_the_average_is_kept_only_when_it_scores_no_worse_than_the_best_epoch(average, best, metric, kept):
    assert keep_average(average, best, metric) is kept


RATE_FLAGS = ["--average-top", "2", "--backbone-lr-scale", "0.5", "--steps-per-execution", "2"]


def assert_top_two_averaged_as_said(run, snapshot: Snapshot, out: str) -> None:
    """Check a one-stage run trained with RATE_FLAGS (tests/test_recipe_flags.py's cut and resumed cosine run).

    The stage's final weights are the mean of the weights its two best epochs ended with when that
    mean scored no worse (else the best epoch's), state.json says both scores and the choice, the
    epochs' files are gone, and the accelerator line states the steps per execution.
    """
    assert "2 batch(es) per execution (--steps-per-execution)" in out
    history = pd.read_csv(run / "history.csv")
    state = json.loads((run / "state.json").read_text())
    record = state["average_top"]["stage1"]
    ranked = sorted(range(len(history)), key=lambda i: (-history["val_accuracy"][i], history["val_loss"][i], i))
    assert record["epochs"] == [ranked[0] + 1, ranked[1] + 1]
    assert record["best_epoch_score"] == pytest.approx(history["val_accuracy"][ranked[0]])
    assert record["kept"] is keep_average(record["score"], record["best_epoch_score"], "accuracy")
    assert (f"stage1: --average-top 2: the mean of epochs {ranked[0] + 1}, {ranked[1] + 1} scores val_accuracy "
            f"{record['score']:.4f} on the holdout, the best single epoch ({ranked[0] + 1}) "
            f"{record['best_epoch_score']:.4f}") in out
    epochs = [weights for fit in snapshot.epochs for weights in fit]  # each epoch's end, across the cut
    final = weights_of(run / "stage1.weights.h5", (16, 16))
    expected = ([np.mean([epochs[ranked[0]][i], epochs[ranked[1]][i]], axis=0) for i in range(len(final))]
                if record["kept"] else epochs[ranked[0]])
    for got, want in zip(final, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert state["best"]["stage1"] == pytest.approx(record["score"] if record["kept"] else record["best_epoch_score"])
    assert not (run / "stage1.top").exists()  # needed only while the stage ran


def test_drop_path_sets_the_efficientnet_block_rates():
    from tests.conftest import needs_missing_package

    models = [get_spec("efficientnet_b0").build((32, 32, 3), "none", drop_path=0.1)]
    if not needs_missing_package(get_spec("efficientnet_b0_ns")):  # Kaggle's images lack it: the error is checked
        models.append(get_spec("efficientnet_b0_ns").build((32, 32, 3), "none", drop_path=0.1))  # its argument
    for model in models:
        rates = {layer.name: float(layer.rate) for layer in model.layers if layer.name.endswith("_drop")}
        # block b (from 0) of 16 drops its residual branch at rate * b / 16 (the constructor's rule): 2b is 2, 6d 14
        assert rates["block2b_drop"] == pytest.approx(0.1 * 2 / 16) and rates["block6d_drop"] == pytest.approx(
            0.1 * 14 / 16), model.name
    small = get_spec("small_resnet").build((16, 16, 3), "none", drop_path=0.2)  # the kit's own: blocks 1-5 of 0-5
    assert [(l.name, l.rate) for l in small.layers if l.name.endswith("_drop")] == [
        (f"stage{1 + b // 2}_block{b % 2}_drop", pytest.approx(0.2 * b / 5)) for b in range(1, 6)]
    assert not [l for l in get_spec("small_resnet").build((16, 16, 3), "none").layers if l.name.endswith("_drop")]


def test_drop_path_is_refused_naming_a_backbone_that_takes_none(comp, tmp_path):
    with pytest.raises(KitError) as err:
        train(config(comp, tmp_path, "--backbone", "resnet50", "--drop-path", "0.1"))
    assert ("--drop-path 0.1: backbone resnet50 (keras.applications.ResNet50) takes no stochastic-depth or "
            "drop-connect rate") in str(err.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(KitError, match="backbone convnext_tiny .keras.applications.ConvNeXtTiny. takes no stochastic"):
        get_spec("convnext_tiny").build((32, 32, 3), "none", drop_path=0.2)


def test_drop_path_reaches_a_keras_hub_backbone_that_takes_one_and_is_refused_by_one_that_does_not(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    dino, resnet = tmp_path / "tiny_dinov2", tmp_path / "tiny_resnet"
    keras_hub.models.DINOV2Backbone(patch_size=4, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
                                    image_shape=(16, 16, 3), position_embedding_shape=(16, 16, 3)).save_to_preset(dino)
    model = get_spec(f"hub:{dino}").build((16, 16, 3), "imagenet", drop_path=0.1)
    inner = next(layer for layer in model.layers if isinstance(layer, keras_hub.models.Backbone))
    assert inner.get_config()["drop_path_rate"] == pytest.approx(0.1)  # from_preset's keyword, as the class takes it
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block", use_pre_activation=False,
        image_shape=(None, None, 3)).save_to_preset(resnet)
    with pytest.raises(KitError, match=f"--drop-path 0.1: backbone hub:{resnet} .* takes no stochastic-depth"):
        get_spec(f"hub:{resnet}").build((16, 16, 3), "none", drop_path=0.1)


def test_steps_per_execution_auto_is_32_on_a_tpu_and_1_elsewhere():
    tpu, cpu = Accelerator("tpu", 8, "mixed_bfloat16", "TPU v5e-8"), Accelerator("cpu", 1, "float32", "CPU (2 cores)")
    assert tpu.execution_steps(0) == 32 and cpu.execution_steps(0) == 1 and cpu.execution_steps(4) == 4
    assert tpu.describe(0) == ("accelerator: TPU v5e-8, 8 replica(s), mixed_bfloat16, 32 batch(es) per execution "
                               "(auto on TPU)")
    assert cpu.describe(0).endswith("1 batch(es) per execution (auto on CPU)")
    assert cpu.describe() == "accelerator: CPU (2 cores), 1 replica(s), float32"
    gpus = Accelerator("gpus", 2, "mixed_float16", "2 GPU(s)")
    assert gpus.describe(0).endswith("1 batch(es) per execution (auto on GPUs)")
    workers = Accelerator("multi-worker", 4, "float32", "2 workers, this is worker 0")
    assert workers.execution_steps(8) == 1 and workers.describe(8).endswith(
        "1 batch(es) per execution (the kit's loop on several machines runs one; --steps-per-execution is for "
        "Keras's fit)")  # said, not silently dropped


@pytest.mark.parametrize("flags, said", [
    (["--average-top", "1"], "--average-top: expected 0 (off) or 2 and more, got 1"),
    (["--backbone-lr-scale", "0"], "--backbone-lr-scale: expected a number above 0, at most 1, got 0"),
    (["--backbone-lr-scale", "2"], "--backbone-lr-scale: expected a number above 0, at most 1, got 2"),
    (["--drop-path", "1"], "--drop-path: expected a number from 0 up to (not including) 1, got 1"),
    (["--steps-per-execution", "-1"], "--steps-per-execution: expected a number of 0 or more, got -1"),
])
def test_rate_flags_that_cannot_work_are_named_when_the_config_is_made(flags, said, tmp_path):
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, ["--out", str(tmp_path / "run"), *flags])
    assert said in str(err.value)
    assert not (tmp_path / "run").exists()


def test_average_top_and_ema_are_refused_on_several_machines_by_name():
    from src.training.recipe_options import refuse_on_several_machines

    refuse_on_several_machines(parse_config(TrainConfig, ["--backbone-lr-scale", "0.1", "--drop-path", "0.1"]), False)
    with pytest.raises(KitError, match=r"^--average-top \(its holdout score needs Keras's evaluate\) on several"):
        refuse_on_several_machines(parse_config(TrainConfig, ["--average-top", "3"]), False)
    with pytest.raises(KitError, match=r"^--ema \(its validation swap needs Keras's fit\) on several machines"):
        refuse_on_several_machines(parse_config(TrainConfig, ["--ema", "0.9", "--average-top", "3"]), False)
