import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from src.training.callbacks import ResumableEarlyStopping
from src.core.config import parse_config
from src.core.errors import KitError
from src.training.two_stage import train
from src.core.settings import TrainConfig
from tests.conftest import make_folder_competition


@pytest.fixture
def comp(tmp_path):
    return make_folder_competition(tmp_path / "c", classes=("a", "b", "c"), per_class=8)


def config(comp, tmp_path, *extra):
    return parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stage1-size", "16", "16", "--stage2-size", "24", "24", "--stage1-epochs", "3", "--stage2-epochs", "2",
        "--stage1-lr", "1e-2", "--stage2-lr", "1e-3", "--decay-steps", "10", "--batch-size", "8",
        "--out", str(tmp_path / "run"), *extra])


class FailAt(keras.callbacks.Callback):
    """Raises `error` when training reaches (epoch, batch): how tests cut a run off or run out of memory."""

    def __init__(self, epoch: int, error: Exception, batch: int = 0):
        super().__init__()
        self.epoch, self.batch, self.error, self.current = epoch, batch, error, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch and self.error is not None:
            error, self.error = self.error, None  # once: the retried or resumed run goes through
            raise error


class Snapshot(keras.callbacks.Callback):
    """Keeps a copy of the model's weights at the start of each fit and after each epoch."""

    def __init__(self):
        super().__init__()
        self.starts, self.epochs = [], []

    def on_train_begin(self, logs=None):
        self.starts.append(self.model.get_weights())
        self.epochs.append([])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[-1].append(self.model.get_weights())


def weights_of(path, size, classes=3):
    from src.models.backbones import get_spec
    from src.models.classifier import build_classifier

    model = build_classifier(get_spec("tiny_resnet"), size, classes, train_backbone=True)
    model.load_weights(str(path))
    return model.get_weights()


def test_two_stages_write_every_output(comp, tmp_path, capsys):
    snapshot = Snapshot()
    summary = train(config(comp, tmp_path), callbacks=[snapshot])
    run = tmp_path / "run"
    for name in ["config.json", "class_map.json", "split.csv", "stage1.weights.h5", "stage2.weights.h5",
                 "history.csv", "curves.png", "holdout_predictions.csv"]:
        assert (run / name).stat().st_size > 0, name
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns) == ["stage", "epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert list(history["stage"]) == ["stage1"] * 3 + ["stage2"] * 2 and list(history["epoch"]) == [1, 2, 3, 1, 2]
    lr = history["lr"].to_numpy()
    assert 9e-3 < lr[0] < 1e-2 and 9e-4 < lr[3] < 1e-3  # each stage starts its own schedule at its own rate
    holdout = pd.read_csv(run / "holdout_predictions.csv")
    assert list(holdout.columns[:3]) == ["id", "label", "predicted"] and len(holdout) == 5
    assert set(holdout["label"]) <= {"a", "b", "c"}
    np.testing.assert_allclose(holdout[["prob_a", "prob_b", "prob_c"]].sum(axis=1), 1, atol=1e-5)
    assert summary["final_stage"] in ("stage1", "stage2") and 0 <= summary["holdout_accuracy"] <= 1
    out = capsys.readouterr().out
    assert "stage1: best val_accuracy" in out and "stage2: best val_accuracy" in out
    assert f"final weights: {summary['final_stage']} (best val_accuracy per stage: stage1 " in out
    # the trivial answer's score beside the run's (issue 38), said and kept in state.json
    assert "reference: the training classes' prior for every image scores accuracy" in out
    assert "recipe: stage1 at 0.01, stage2 at 0.001 (the rates given; early stopping from 33% of" in out
    verdict = json.loads((run / "state.json").read_text())["verdict"]
    assert set(verdict) == {"holdout_score", "reference_score", "reference", "no_better"}
    assert verdict["holdout_score"] == pytest.approx(summary["holdout_accuracy"])
    # Stage 2 starts from stage 1's best weights, and every checkpoint is its stage's best epoch.
    stage1_best = weights_of(run / "stage1.weights.h5", (16, 16))
    for a, b in zip(snapshot.starts[1], stage1_best):
        np.testing.assert_array_equal(a, b)
    rows = history[history["stage"] == "stage1"].reset_index(drop=True)
    best_epoch = min(range(len(rows)), key=lambda i: (-rows["val_accuracy"][i], rows["val_loss"][i], i))  # ties: val_loss
    for a, b in zip(snapshot.epochs[0][best_epoch], stage1_best):
        np.testing.assert_array_equal(a, b)


def test_stages_1_stops_after_stage_1(comp, tmp_path):
    summary = train(config(comp, tmp_path, "--stages", "1", "--warmup-epochs", "1"))
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["stage"]) == ["warmup", "stage1", "stage1", "stage1"]
    assert summary["final_stage"] == "stage1" and not (tmp_path / "run" / "stage2.weights.h5").exists()


def test_an_existing_run_is_never_overwritten(comp, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(KitError, match="holds notes.txt but no training run"):
        train(config(comp, tmp_path))
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_an_interrupted_run_resumes_without_losing_or_repeating_epochs(comp, tmp_path):
    cut = FailAt(epoch=2, error=RuntimeError("kernel session ended"))
    with pytest.raises(RuntimeError, match="kernel session ended"):
        train(config(comp, tmp_path, "--stage1-epochs", "4", "--stage1-patience", "10"), callbacks=[cut])
    partial = pd.read_csv(tmp_path / "run" / "history-stage1.csv")
    assert list(partial["epoch"]) == [0, 1]
    train(config(comp, tmp_path, "--stage1-epochs", "4", "--stage1-patience", "10", "--resume"))
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    stage1 = history[history["stage"] == "stage1"]
    assert list(stage1["epoch"]) == [1, 2, 3, 4]
    # The schedule went on from the optimizer's restored step: the same steady decay across the cut.
    ratios = stage1["lr"].to_numpy()[1:] / stage1["lr"].to_numpy()[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-3)
    assert ratios[0] < 1


def test_out_of_memory_halves_the_batch_and_retries_the_stage(comp, tmp_path, capsys):
    oom = FailAt(epoch=0, batch=1, error=tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"))
    train(config(comp, tmp_path, "--stages", "1"), callbacks=[oom])
    out = capsys.readouterr().out
    assert "stage1: out of memory at batch size 8; retrying the stage with batch size 4" in out
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [1, 2, 3]


def test_out_of_memory_below_the_minimum_batch_gives_up(comp, tmp_path):
    oom = FailAt(epoch=0, error=tf.errors.ResourceExhaustedError(None, None, "OOM"))
    with pytest.raises(KitError, match=r"out of memory at 16x16 even at batch size 8 \(--min-batch-size 8\)"):
        train(config(comp, tmp_path, "--stages", "1", "--min-batch-size", "8"), callbacks=[oom])


class PoisonAt(keras.callbacks.Callback):
    """Turns every weight into NaN when `epoch` begins: how tests make a stage's loss NaN (as float16 overflow did)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


def test_a_nan_loss_ends_the_stage_with_a_sentence_and_nothing_is_made_from_it(comp, tmp_path):
    """issue 24 item 23: NaN from the first epoch to the last, then a submission at chance with no word."""
    from src.runs.folder import RunFolder

    with pytest.raises(KitError) as err:
        train(config(comp, tmp_path), callbacks=[PoisonAt(epoch=1)])
    assert str(err.value).startswith("stage1: the training loss is nan at epoch 2: likely a learning rate too high "
                                     "(--stage1-lr 0.01; precision float32). The stage was stopped and is not "
                                     "finished, so nothing is predicted or submitted from these weights")
    run = tmp_path / "run"
    assert len(pd.read_csv(run / "history-stage1.csv")) == 1  # the NaN epoch is neither logged nor backed up
    assert all(np.isfinite(w).all() for w in weights_of(run / "stage1.weights.h5", (16, 16)))  # epoch 1's
    assert not (run / "stage2.weights.h5").exists() and not (run / "holdout_predictions.csv").exists()
    with pytest.raises(KitError, match="stage2 has not finished"):
        RunFolder(run).final_stage()


def test_the_nan_sentence_names_mixed_precision_first_under_float16():
    from src.training.callbacks import StopOnNonFiniteLoss

    sentence = StopOnNonFiniteLoss("stage2", 1e-4, "mixed_float16", 2).sentence(float("inf"), 3)
    assert sentence.startswith("stage2: the training loss is inf at epoch 3: likely float16 overflow under mixed "
                               "precision (mixed_float16, 2 replica(s)), or a learning rate too high (--stage2-lr "
                               "0.0001)")


def test_early_stopping_resumes_its_wait_and_restores_the_best_weights(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    best = [np.ones((2, 1), "float32"), np.zeros(1, "float32")]
    model.set_weights(best)
    model.save_weights(tmp_path / "best.weights.h5")
    model.set_weights([np.full((2, 1), 5.0, "float32"), np.ones(1, "float32")])
    stopper = ResumableEarlyStopping(patience=2, best=0.9, wait=1, best_weights_file=tmp_path / "best.weights.h5")
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(3, {"val_accuracy": 0.5})  # the second epoch without improvement: stop
    assert model.stop_training
    stopper.on_train_end()  # Keras 3 puts the best weights back here
    for a, b in zip(model.get_weights(), best):
        np.testing.assert_array_equal(a, b)


def test_resume_without_an_earlier_run_starts_one(comp, tmp_path):
    summary = train(config(comp, tmp_path, "--stages", "1", "--stage1-epochs", "1", "--resume"))
    assert summary["final_stage"] == "stage1" and (tmp_path / "run" / "stage1.weights.h5").exists()


def free_ports(count):
    import socket

    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    except OSError as err:
        pytest.skip(f"cannot bind a port on 127.0.0.1 for the workers: {err}")
    finally:
        for s in sockets:
            s.close()
    return ports


def test_two_workers_train_together_and_end_with_equal_weights(comp, tmp_path):
    import os
    import subprocess
    import sys

    from src.data.competition import load_competition
    from src.core.config import DataOptions
    from src.data.splits import load_or_make_split
    from tests.conftest import REPO

    split = tmp_path / "split.csv"
    opts = DataOptions(data=str(comp), split_file=str(split))
    load_or_make_split(load_competition(opts), opts)  # both workers read the same saved split
    ports = free_ports(2)
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)}
        command = [sys.executable, "-m", "src.train", "--data", str(comp), "--backbone", "tiny_resnet",
                   "--weights", "none", "--augment", "none", "--stages", "1", "--stage1-epochs", "1",
                   "--stage1-size", "16", "16", "--batch-size", "4", "--split-file", str(split),
                   "--out", str(tmp_path / f"worker{index}")]
        workers.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert "accelerator: 2 workers" in output and "2 replica(s)" in output
    first = weights_of(tmp_path / "worker0" / "stage1.weights.h5", (16, 16))
    second = weights_of(tmp_path / "worker1" / "stage1.weights.h5", (16, 16))
    assert len(first) == len(second) > 20
    for a, b in zip(first, second):  # trainable weights and BatchNorm statistics alike
        np.testing.assert_array_equal(a, b)
    history = [pd.read_csv(tmp_path / f"worker{i}" / "history.csv") for i in range(2)]
    assert len(history[0]) == 1 and history[0]["val_accuracy"].equals(history[1]["val_accuracy"])


def test_resuming_early_stopping_keeps_the_optimizer_step(tmp_path):
    """Reading the best weights must not rewind the learning-rate schedule to the best epoch."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)  # 2 steps, then the best checkpoint
    model.save_weights(tmp_path / "best.weights.h5")
    model.fit(x, y, epochs=2, batch_size=2, verbose=0)  # 4 more steps
    assert int(model.optimizer.iterations.numpy()) == 6
    latest = model.get_weights()
    stopper = ResumableEarlyStopping(patience=3, best=0.9, wait=2, best_weights_file=tmp_path / "best.weights.h5")
    stopper.set_model(model)
    stopper.on_train_begin()
    assert int(model.optimizer.iterations.numpy()) == 6
    for a, b in zip(model.get_weights(), latest):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(stopper.best_weights[0], latest[0])
