"""src.hardware.accelerator: what it detects and the one line it prints, with TensorFlow's devices faked.

No TPU or GPU here: the resolver, device list and strategies are replaced by stand-ins that
answer as the real ones do on a Kaggle TPU VM or a 2xT4 kernel.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.hardware import accelerator


class FakeStrategy:
    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas


@pytest.fixture(autouse=True)
def float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_tpu_found_through_the_cluster_resolver(monkeypatch):
    asked = {}
    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v6e-8")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver",
                        lambda tpu: asked.setdefault("tpu", tpu) and "resolver")
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda r: asked.setdefault("connect", r))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda r: asked.setdefault("init", r))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda r: FakeStrategy(8))
    _, found = accelerator.detect(mixed_precision=True)
    assert asked == {"tpu": "local", "connect": "resolver", "init": "resolver"}  # a TPU VM: the local TPU
    assert found.describe() == "accelerator: TPU v6e-8, 8 replica(s), mixed_bfloat16"


def test_unreachable_tpu_falls_back_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("TPU_NAME", "grpc://10.0.0.2:8470")
    monkeypatch.delenv("TF_CONFIG", raising=False)

    def refuse(tpu):
        raise ValueError(f"could not reach {tpu}")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", refuse)
    _, found = accelerator.detect(mixed_precision=True)
    assert found.kind == "cpu" and found.policy == "float32"
    assert "TPU not reachable (ValueError: could not reach grpc://10.0.0.2:8470)" in capsys.readouterr().out


@pytest.mark.parametrize("count,kind", [(2, "gpus"), (1, "gpu")])
def test_gpus(monkeypatch, count, kind):
    for name in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(accelerator, "tpu_may_exist", lambda: False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [f"GPU:{i}" for i in range(count)])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: FakeStrategy(count))
    _, found = accelerator.detect(mixed_precision=True)
    assert found.kind == kind and found.replicas == count
    assert found.describe() == f"accelerator: {count} GPU(s), {count} replica(s), mixed_float16"


@pytest.mark.parametrize("request_kind, message", [
    ("gpu", "--accelerator gpu: this process has CPU (.*): TensorFlow lists no GPU"),
    ("tpu", "--accelerator tpu: this process has CPU (.*): no TPU is announced here"),
])
def test_asking_for_an_accelerator_that_is_not_here_is_an_error(monkeypatch, request_kind, message):
    """issue 14: only --accelerator auto falls back; asking for a TPU or GPU and getting the CPU is an error."""
    from src.core.errors import KitError

    monkeypatch.setattr(accelerator, "_FOUND", None)
    monkeypatch.setattr(accelerator, "tpu_may_exist", lambda: False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KitError, match=message):
        accelerator.pick_accelerator(request=request_kind)


def test_an_announced_tpu_that_does_not_answer_is_an_error_when_asked_for(monkeypatch, capsys):
    from src.core.errors import KitError

    def refuse(tpu=None):
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(accelerator, "_FOUND", None)
    monkeypatch.setenv("TPU_NAME", "local")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", refuse)
    with pytest.raises(KitError, match="--accelerator tpu: TPU not reachable .*Please provide a TPU Name"):
        accelerator.pick_accelerator(request="tpu")
    monkeypatch.setattr(accelerator, "_FOUND", None)
    found = accelerator.pick_accelerator(request="auto")  # auto falls back, and says so
    assert found.kind in ("cpu", "gpu", "gpus") and "TPU not reachable" in capsys.readouterr().out
    monkeypatch.setattr(accelerator, "_FOUND", None)


def test_full_batches_that_cannot_be_made_are_an_error_naming_the_flag():
    from src.core.errors import KitError

    jax_cpu = accelerator.Accelerator("cpu", 8, "float32", "JAX backend, 8 CPU device(s)", backend="jax")
    assert jax_cpu.batch_multiple == 8 and jax_cpu.fixed_batches and jax_cpu.global_batch(2, 16) == 16
    with pytest.raises(KitError, match=r"--batch-size 4: 8 replica\(s\) need 32 training images per batch .* 20"):
        jax_cpu.global_batch(4, 20)
    tf_gpus = accelerator.Accelerator("gpus", 2, "mixed_float16", "2 GPU(s)")  # MirroredStrategy: padded as JAX
    assert tf_gpus.batch_multiple == 2 and tf_gpus.fixed_batches and tf_gpus.global_batch(2, 5) == 4
    tf_gpu = accelerator.Accelerator("gpu", 1, "mixed_float16", "1 GPU")
    assert tf_gpu.batch_multiple == 1 and not tf_gpu.fixed_batches and tf_gpu.global_batch(32, 5) == 32


def test_batches_for_the_devices_pad_only_the_last_one_and_weigh_it_nothing():
    from src.pipeline.images import batch_for_devices

    rows = tf.reshape(tf.range(22, dtype=tf.float32) + 1, [11, 2])
    ds = tf.data.Dataset.from_tensor_slices((rows, tf.range(11)))
    batches = list(batch_for_devices(ds, 3, 8, weights=True).as_numpy_iterator())  # 3 a row: not a multiple of 8
    assert [len(x) for x, _, _ in batches] == [8, 8]  # batches of 8, the last 3 rows padded to 8
    labels = np.concatenate([y for _, y, _ in batches])
    assert list(labels[:11]) == list(range(11)) and not labels[11:].any()  # the padding comes last, in order
    assert sum(w.sum() for _, _, w in batches) == 11 and batches[1][0][3:].sum() == 0
    assert [len(x) for x, _ in batch_for_devices(ds, 3).as_numpy_iterator()] == [3, 3, 3, 2]  # one device: as asked


TWO_REPLICAS = """
import json
import numpy as np
from src.hardware.accelerator import pick_accelerator

accelerator = pick_accelerator()  # KIT_SIMULATE_GPUS=2: a real MirroredStrategy over two CPU devices
import keras
from src.core.settings import TrainConfig
from src.models.recipe import CompileOptions, compile_classifier

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(512, 8, 8, 3)).astype("float32")
y = keras.ops.convert_to_numpy(keras.ops.one_hot(x.mean(axis=(1, 2)).argmax(axis=1), 3))  # the brightest channel
with accelerator.strategy.scope():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax", dtype="float32")])
    compile_classifier(model, TrainConfig(), CompileOptions(1e-2))
# One step whose float16 gradients overflow at the first loss scale (2**15) on the second replica
# only (its half of the batch weighs 1e4), as an overflow on one GPU of two does in real runs.
weight = np.r_[np.ones(16), np.full(16, 1e4)].astype("float32")
model.fit(x[:32], y[:32], sample_weight=weight, batch_size=32, epochs=1, shuffle=False, verbose=0)
scale = float(model.optimizer.dynamic_scale.numpy())
history = model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
# A holdout of 5 images at 4 a replica: one batch of 5 split 3/2 failed when Keras built the model from it,
# and a last batch of 1 left a replica empty; the kit pads it to the replicas (batch_multiple), weighing 0.
import tensorflow as tf
from src.pipeline.images import batch_for_devices
holdout = batch_for_devices(tf.data.Dataset.from_tensor_slices((x[:5], y[:5])), 8, accelerator.batch_multiple,
                            weights=accelerator.batch_multiple > 1)
evaluated = model.evaluate(holdout, verbose=0)
print(json.dumps({"optimizer": type(model.optimizer).__name__, "scale": scale, "loss": history.history["loss"],
                  "holdout_loss": float(np.ravel(evaluated)[0])}))
"""


def test_two_replicas_in_mixed_float16_really_train(tmp_path):
    """issue 24 item 23: Keras 3.15's LossScaleOptimizer asked only the first replica whether gradients were finite.

    Two logical CPU devices stand in for Kaggle's two T4s (KIT_SIMULATE_GPUS): before the fix the
    overflowed step was applied with inf on both and the loss never fell (NaN in the kit's runs).
    """
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", accelerator.SIMULATE_GPUS: "2"}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", TWO_REPLICAS], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("accelerator: 2 GPU(s) simulated by CPU devices (KIT_SIMULATE_GPUS), 2 replica(s), mixed_float16"
            in done.stdout)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scale"] == 2.0 ** 14, result  # the overflowed step was skipped on both replicas, scale halved
    loss = result["loss"]
    assert np.isfinite(loss).all() and loss[-1] < 0.75 * loss[0] and loss[-1] < np.log(3) - 0.3, result
    assert np.isfinite(result["holdout_loss"]), result  # an odd holdout under the batch evaluated over two replicas
    assert result["optimizer"] == "ReplicaSafeLossScaleOptimizer"


def test_simulated_gpus_need_two_or_more(monkeypatch):
    from src.core.errors import KitError

    monkeypatch.setenv(accelerator.SIMULATE_GPUS, "1")
    with pytest.raises(KitError, match="KIT_SIMULATE_GPUS=1: expected a number of simulated GPUs, 2 or more"):
        accelerator.simulated_gpus(tf)
