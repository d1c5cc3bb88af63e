"""The training recipe's flags: --schedule cosine with --lr-warmup-epochs, --accumulate, --ema (and, in the cut and
resumed cosine run, tests/test_recipe_rates.py's --average-top, --backbone-lr-scale, --steps-per-execution)."""
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.models.recipe import StagePlan, make_optimizer, make_schedule
from src.training.two_stage import train
from tests.test_recipe_rates import RATE_FLAGS, assert_top_two_averaged_as_said
from tests.test_train import FailAt, Snapshot, config, comp  # noqa: F401  (comp: the fixture)


class OptimizerSeen(keras.callbacks.Callback):
    """Keeps each fit's optimizer settings (the stage's retried fit included)."""

    def __init__(self):
        super().__init__()
        self.fits = []

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        self.fits.append({"accumulate": optimizer.gradient_accumulation_steps, "ema": optimizer.use_ema,
                          "momentum": optimizer.ema_momentum})


def cosine(step, lr, warm, total):
    """The rate a linear warm-up from 0 into cosine decay to 0 has at `step` (the formula, by hand)."""
    if step < warm:
        return lr * step / warm
    return lr * 0.5 * (1 + np.cos(np.pi * min(step - warm, total - warm) / (total - warm)))


def test_the_cosine_rate_peaks_at_warm_up_end_and_reaches_zero_at_stage_end(comp):
    cfg = parse_config(TrainConfig, ["--schedule", "cosine", "--lr-warmup-epochs", "1.5"])
    schedule = make_schedule(cfg, 1e-2, StagePlan(steps_per_epoch=10, epochs=4))
    rate = lambda step: float(schedule(step))  # noqa: E731
    assert rate(0) == 0 and rate(7) == pytest.approx(1e-2 * 7 / 15)
    assert rate(15) == pytest.approx(1e-2)  # the end of the warm-up: the stage's rate
    assert rate(30) == pytest.approx(cosine(30, 1e-2, 15, 40)) and 0 < rate(30) < 1e-2
    assert rate(40) == pytest.approx(0, abs=1e-12)  # the stage's last planned batch
    plain = make_schedule(cfg, 1e-2, StagePlan(10, 4), warmup=False)  # the head-only warm-up stage: no ramp
    assert float(plain(0)) == pytest.approx(1e-2) and float(plain(40)) == pytest.approx(0, abs=1e-12)


def test_a_cosine_stage_cut_and_resumed_logs_the_planned_rate_every_epoch(comp, tmp_path, capsys):
    # 18 training images, batch 8: 3 batches an epoch; 4 epochs, a warm-up of 1 epoch (3 batches).
    # With tests/test_recipe_rates.py's rate flags: 2 batches per execution, epochs still end after 3.
    args = ["--stages", "1", "--stage1-epochs", "4", "--stage1-patience", "10", "--schedule", "cosine",
            "--lr-warmup-epochs", "1", *RATE_FLAGS]
    cut, snapshot = FailAt(epoch=2, error=RuntimeError("kernel session ended")), Snapshot()
    with pytest.raises(RuntimeError, match="kernel session ended"):
        train(config(comp, tmp_path, *args), callbacks=[cut, snapshot])
    assert sorted(p.name for p in (tmp_path / "run" / "stage1.top").iterdir()) == [
        "epoch1.weights.h5", "epoch2.weights.h5"]  # --average-top 2: kept across the cut
    train(config(comp, tmp_path, *args, "--resume"), callbacks=[snapshot])
    assert_top_two_averaged_as_said(tmp_path / "run", snapshot, capsys.readouterr().out)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    expected = [cosine(3 * (epoch + 1), 1e-2, 3, 12) for epoch in range(4)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-5, atol=1e-9)
    assert history["lr"][0] == pytest.approx(1e-2) and history["lr"][3] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("flags, said", [
    (["--lr-warmup-epochs", "1"], "--lr-warmup-epochs 1: needs --schedule cosine"),
    (["--schedule", "cosine", "--lr-warmup-epochs", "10", "--stage2-epochs", "10"],
     "--lr-warmup-epochs 10: expected fewer than --stage2-epochs 10"),
    (["--accumulate", "0"], "--accumulate: expected a number above 0, got 0"),
    (["--ema", "1.0"], "--ema: expected a number from 0 up to (not including) 1, got 1.0"),
])
def test_recipe_flags_that_cannot_work_are_named_when_the_config_is_made(flags, said, tmp_path):
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, ["--out", str(tmp_path / "run"), *flags])
    assert said in str(err.value)
    assert not (tmp_path / "run").exists()


def linear_update(batch_size: int, accumulate: int):
    """Return a linear model's weights after one epoch of 32 rows at `batch_size` with `accumulate`."""
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=make_optimizer("adam", 0.1, accumulate), loss="mse")
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_accumulating_four_batches_of_8_is_one_update_of_a_batch_of_32():
    whole = linear_update(32, 1)
    accumulated = linear_update(8, 4)
    for a, b in zip(accumulated, whole):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(whole[0]).max() > 0.05  # one Adam step of 0.1 moved every weight
    stepwise = linear_update(8, 1)  # four updates of 8 land elsewhere
    assert not np.allclose(stepwise[0], whole[0], atol=1e-3)


def test_out_of_memory_halves_the_batch_and_doubles_the_accumulation(comp, tmp_path, capsys):
    oom = FailAt(epoch=0, batch=1, error=tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"))
    seen = OptimizerSeen()
    train(config(comp, tmp_path, "--stages", "1", "--stage1-epochs", "1", "--accumulate", "2"), callbacks=[oom, seen])
    out = capsys.readouterr().out
    assert ("stage1: out of memory at batch size 8; retrying the stage with batch size 4 and --accumulate 4 "
            "(effective batch 16, kept)") in out
    assert [fit["accumulate"] for fit in seen.fits] == [2, 4]
    assert "batch 4 x 4 accumulated" in out


class EmaProbe(keras.callbacks.Callback):
    """Placed after the kit's callbacks: the raw weights after each batch, the weights validation sees, the average
    each fit starts from (the kit builds the optimizer at compile; BackupAndRestore has loaded it by then)."""

    def __init__(self):
        super().__init__()
        self.raw, self.evaluated, self.start_average = [], [], []

    def on_train_begin(self, logs=None):
        self.start_average.append([v.numpy() for v in self.model.optimizer._model_variables_moving_average])

    def on_train_batch_end(self, batch, logs=None):
        self.raw.append([w.numpy() for w in self.model.trainable_weights])

    def on_test_begin(self, logs=None):
        self.evaluated.append([w.numpy() for w in self.model.trainable_weights])


def moving_average(raw: list, momentum: float) -> list:
    """Return the exponential moving average of a list of weight lists (Keras: the first step takes the weights)."""
    average = raw[0]
    for weights in raw[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    return average


def assert_weights_close(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_ema_weights_are_the_ones_evaluated_and_saved_and_the_average_survives_resume(comp, tmp_path):
    from src.core.metric_choice import rank_key
    from src.models.backbones import get_spec
    from src.models.classifier import build_classifier

    args = ["--stages", "1", "--stage1-epochs", "3", "--stage1-patience", "10", "--ema", "0.6"]
    probe = EmaProbe()
    with pytest.raises(RuntimeError, match="kernel session ended"):
        train(config(comp, tmp_path, *args), callbacks=[FailAt(2, RuntimeError("kernel session ended")), probe])
    assert len(probe.raw) == 6 and len(probe.evaluated) == 2  # two epochs of 3 batches, then the cut
    train(config(comp, tmp_path, *args, "--resume"), callbacks=[probe])
    assert len(probe.raw) == 9 and len(probe.evaluated) == 3
    assert len(probe.start_average) == 2
    assert_weights_close(probe.start_average[1], moving_average(probe.raw[:6], 0.6))  # restored, not restarted
    for epoch in range(3):  # validation saw the average of every batch so far, across the cut
        assert_weights_close(probe.evaluated[epoch], moving_average(probe.raw[:3 * (epoch + 1)], 0.6))
    assert not np.allclose(probe.evaluated[-1][0], probe.raw[-1][0], atol=1e-4)  # the average is not the raw
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    # the kit's best epoch: the highest val_accuracy, a tie to the lower val_loss (src.core.metric_choice.rank_key)
    best = min(range(len(history)), key=lambda i: rank_key(history["val_accuracy"][i], history["val_loss"][i],
                                                           "accuracy"))
    model = build_classifier(get_spec("tiny_resnet"), (16, 16), 3, train_backbone=True)
    model.load_weights(str(tmp_path / "run" / "stage1.weights.h5"))  # the checkpoint: the final weights
    assert_weights_close([w.numpy() for w in model.trainable_weights], probe.evaluated[best])
