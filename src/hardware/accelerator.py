"""Which hardware runs the job: TPU, several GPUs, one GPU or the CPU, said in one line.

    strategy = pick_strategy()      # prints e.g. "accelerator: CPU (2 cores), float32"
    with strategy.scope():
        model = build_classifier(...)

MultiWorkerMirroredStrategy when TF_CONFIG names several workers; TPUStrategy when a TPU
answers (Kaggle TPU VMs: the local TPU, data read from /kaggle/input); MirroredStrategy for
several GPUs; the default strategy otherwise. Mixed precision
(mixed_float16 on GPUs, mixed_bfloat16 on TPUs) with float32 outputs (src.models.classifier's head).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from src.core.errors import KitError


@dataclass(frozen=True)
class Accelerator:
    """What was found: kind (tpu, gpus, gpu, cpu, multi-worker), replicas, the precision policy, the strategy."""

    kind: str
    replicas: int
    policy: str
    detail: str
    strategy: object = None     # the tf.distribute strategy models are built under

    def describe(self) -> str:
        return f"accelerator: {self.detail}, {self.replicas} replica(s), {self.policy}"


_FOUND = None


def tpu_may_exist() -> bool:
    """Return True when something says a TPU is here, so the resolver is not asked (and left waiting) elsewhere."""
    return (any(k in os.environ for k in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR"))
            or Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists())


KINDS = {"tpu": ("tpu",), "gpu": ("gpu", "gpus"), "cpu": ("cpu",), "auto": ()}


def pick_accelerator(mixed_precision: bool = True, verbose: bool = True, request: str = "auto") -> Accelerator:
    """Return what runs the job (made once per process: TensorFlow allows one TPU/cluster set-up) and print it.

    request tpu / gpu: not getting one is an error with the reason, never a quiet run on the CPU;
    cpu: the CPU even where an accelerator is; auto: the best found, saying when a TPU was not reachable.
    """
    global _FOUND
    if request not in KINDS:
        raise KitError(f"--accelerator {request}: expected one of {', '.join(KINDS)}")
    if _FOUND is None:
        strategy, found = detect(mixed_precision, strict=request != "auto", cpu_only=request == "cpu")
        _FOUND = replace(found, strategy=strategy)
    if KINDS[request] and _FOUND.kind not in KINDS[request] and _FOUND.kind != "multi-worker":
        why = {"gpu": "TensorFlow lists no GPU (tf.config.list_physical_devices('GPU') is empty)",
               "tpu": "no TPU is announced here (TPU_NAME, TPU_ACCELERATOR_TYPE, /dev/accel0); on Kaggle's TPU VMs "
                      "TensorFlow is tensorflow-cpu and cannot reach the TPU",
               "cpu": "an accelerator was set up earlier in this process"}[request]
        raise KitError(f"--accelerator {request}: this process has {_FOUND.detail}: {why}")
    if verbose:
        print(_FOUND.describe())
    return _FOUND


def pick_strategy(mixed_precision: bool = True, verbose: bool = True):
    """Return the tf.distribute strategy of pick_accelerator() (notebooks call this for the one line)."""
    return pick_accelerator(mixed_precision, verbose).strategy


def detect(mixed_precision: bool, strict: bool = False, cpu_only: bool = False):
    """Return (strategy, Accelerator) after trying TPU, then GPUs, then the CPU.

    strict: a TPU that is announced but does not answer is an error (the reason is the resolver's).
    """
    import keras
    import tensorflow as tf

    cluster = multi_worker_cluster()
    if cluster is not None:
        # Must exist before any other TensorFlow op runs in this process. Keras 3's fit cannot
        # use it (keras-team/keras#20585): src.hardware.distributed trains with a loop of its own.
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = cluster.get("task", {})
        policy = set_policy(keras, "float32")
        return strategy, Accelerator("multi-worker", strategy.num_replicas_in_sync, policy,
                                     f"{len(cluster['cluster']['worker'])} workers, this is "
                                     f"{task.get('type', 'worker')} {task.get('index', 0)}")
    if tpu_may_exist() and not cpu_only:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
            policy = set_policy(keras, "mixed_bfloat16" if mixed_precision else "float32")
            return strategy, Accelerator("tpu", strategy.num_replicas_in_sync, policy,
                                         f"TPU {os.environ.get('TPU_ACCELERATOR_TYPE', '')}".strip())
        except Exception as err:  # no TPU after all: say so and carry on with what is here
            if strict:
                raise KitError(f"--accelerator tpu: TPU not reachable ({type(err).__name__}: {err})") from None
            print(f"accelerator: TPU not reachable ({type(err).__name__}: {err}); trying GPUs")
    gpus = [] if cpu_only else tf.config.list_physical_devices("GPU")
    if gpus:
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
        policy = set_policy(keras, "mixed_float16" if mixed_precision else "float32")
        kind = "gpus" if len(gpus) > 1 else "gpu"
        return strategy, Accelerator(kind, strategy.num_replicas_in_sync, policy, f"{len(gpus)} GPU(s)")
    policy = set_policy(keras, "float32")
    return tf.distribute.get_strategy(), Accelerator("cpu", 1, policy, f"CPU ({os.cpu_count()} cores)")


def multi_worker_cluster() -> dict | None:
    """Return TF_CONFIG when it names more than one worker, else None."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    config = json.loads(raw)
    return config if len(config.get("cluster", {}).get("worker", [])) > 1 else None


def set_policy(keras, name: str) -> str:
    """Set Keras's global dtype policy and return its name."""
    keras.mixed_precision.set_global_policy(name)
    return name
