"""src.hardware.accelerator: what it detects and the one line it prints, with TensorFlow's devices faked.

No TPU or GPU here: the resolver, device list and strategies are replaced by stand-ins that
answer as the real ones do on a Kaggle TPU VM or a 2xT4 kernel.
"""
from __future__ import annotations

import keras
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
