"""Which hardware runs the job: TPU, several GPUs, one GPU or the CPU, said in one line.

    strategy = pick_strategy()      # prints e.g. "accelerator: CPU (2 cores), float32"
    with strategy.scope():
        model = build_classifier(...)

MultiWorkerMirroredStrategy when TF_CONFIG names several workers; TPUStrategy when a TPU
answers (Kaggle TPU VMs: the local TPU, data read from /kaggle/input); MirroredStrategy for
several GPUs; the default strategy otherwise. Mixed precision
(mixed_float16 on GPUs, mixed_bfloat16 on TPUs) with float32 outputs (src.models.classifier's head).
KIT_SIMULATE_GPUS=N presents the CPU as N GPUs (N logical devices, a real MirroredStrategy).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from dataclasses import dataclass, replace

from src.core.backend import tpu_may_exist
from src.core.errors import KitError


@dataclass(frozen=True)
class Accelerator:
    """What was found: kind (tpu, gpus, gpu, cpu, multi-worker), replicas, the precision policy, the strategy."""

    kind: str
    replicas: int
    policy: str
    detail: str
    strategy: object = None     # the tf.distribute strategy models are built under (a no-op scope on JAX)
    backend: str = "tensorflow"

    def describe(self, steps_per_execution: int | None = None) -> str:
        """Return the accelerator line; with --steps-per-execution's value (0: auto), the batches per call it makes."""
        line = f"accelerator: {self.detail}, {self.replicas} replica(s), {self.policy}"
        if steps_per_execution is not None:
            chosen = self.execution_steps(steps_per_execution)
            how = "--steps-per-execution" if steps_per_execution else f"auto on {KIND_NAMES.get(self.kind, self.kind)}"
            if self.kind == "multi-worker":
                how = "the kit's loop on several machines runs one; --steps-per-execution is for Keras's fit"
            line += f", {chosen} batch(es) per execution ({how})"
        return line

    def execution_steps(self, requested: int = 0) -> int:
        """Return the batches each compiled training call runs: --steps-per-execution, or auto (0) for this kind.

        Auto: 32 on a TPU, where every call from the host costs a round trip the chip waits through (Keras's
        documented large gain; TF's TPU guide runs 50); 1 elsewhere: a GPU or CPU step of an image network
        dwarfs the call's cost (measured: JAX on eight host devices trained as fast at 1, 8 and 32), and 1
        keeps per-batch callbacks and the out-of-memory retry at single-batch resolution.
        """
        if self.kind == "multi-worker":  # src.hardware.distributed's loop, not Keras's fit
            return 1
        return requested if requested > 0 else (32 if self.kind == "tpu" else 1)

    def as_record(self) -> dict:
        """Return what ran the job, for run states and submission reports: backend, kind, devices, precision."""
        return {"backend": self.backend, "kind": self.kind, "devices": self.replicas, "policy": self.policy,
                "detail": self.detail}

    @property
    def batch_multiple(self) -> int:
        """Return what every batch's size must be a multiple of: the device count under JAX data parallelism and
        TensorFlow's MirroredStrategy over several GPUs.

        keras.distribution.DataParallel splits each batch evenly over the devices. MirroredStrategy splits a
        batch as it comes, and a last batch with fewer images than GPUs leaves one empty, which the network
        cannot run (a holdout of 5 images at 4 a batch on 2 GPUs failed in BatchNormalization), nor can Keras
        build the model from a first batch split unevenly: its batches are padded and weighted as on JAX.
        TPUStrategy pads evaluation batches itself.
        """
        return self.replicas if self.backend == "jax" or (self.kind == "gpus" and self.replicas > 1) else 1

    @property
    def fixed_batches(self) -> bool:
        """Return True when training batches must all be full: TPUs compile one shape, JAX and several GPUs shard
        evenly."""
        return self.kind == "tpu" or self.batch_multiple > 1

    def global_batch(self, batch_size: int, images: int) -> int:
        """Return the batch over every replica (--batch-size each); an error when full batches cannot be made."""
        size = batch_size * self.replicas
        if self.fixed_batches and images < size:
            raise KitError(f"--batch-size {batch_size}: {self.replicas} replica(s) need {size} training images per "
                           f"batch (every batch full on {self.detail}) and there are {images}: use a smaller "
                           f"--batch-size")
        return size


KIND_NAMES = {"tpu": "TPU", "gpus": "GPUs", "gpu": "GPU", "cpu": "CPU"}


class NoScope:
    """The strategy stand-in on the JAX backend: keras.distribution places variables, scope() does nothing."""

    def __init__(self, replicas: int):
        self.num_replicas_in_sync = replicas

    def scope(self):
        return contextlib.nullcontext()


_FOUND = None


# Testing aid: split the CPU into N logical devices and train on them as on N GPUs (see simulated_gpus).
SIMULATE_GPUS = "KIT_SIMULATE_GPUS"
KINDS = {"tpu": ("tpu",), "gpu": ("gpu", "gpus"), "cpu": ("cpu",), "auto": ()}


def pick_accelerator(mixed_precision: bool = True, verbose: bool = True, request: str = "auto",
                     steps_per_execution: int | None = None) -> Accelerator:
    """Return what runs the job (made once per process: TensorFlow allows one TPU/cluster set-up) and print it.

    request tpu / gpu: not getting one is an error with the reason, never a quiet run on the CPU;
    cpu: the CPU even where an accelerator is; auto: the best found, saying when a TPU was not reachable.
    steps_per_execution: training's --steps-per-execution, said in the line with what it makes here.
    """
    global _FOUND
    if request not in KINDS:
        raise KitError(f"--accelerator {request}: expected one of {', '.join(KINDS)}")
    if _FOUND is None:
        strategy, found = detect(mixed_precision, strict=request != "auto", cpu_only=request == "cpu")
        _FOUND = replace(found, strategy=strategy)
    if KINDS[request] and _FOUND.kind not in KINDS[request] and _FOUND.kind != "multi-worker":
        why = missing_reason(request, _FOUND.backend)
        raise KitError(f"--accelerator {request}: this process has {_FOUND.detail}: {why}")
    if verbose:
        print(_FOUND.describe(steps_per_execution))
    return _FOUND


def missing_reason(request: str, backend: str) -> str:
    """Return why the accelerator asked for is not what this process has, as its backend sees it."""
    if request == "cpu":
        return "an accelerator was set up earlier in this process"
    if backend == "jax":
        return f"JAX lists no {request.upper()} device (jax.devices())"
    if request == "gpu":
        return "TensorFlow lists no GPU (tf.config.list_physical_devices('GPU') is empty)"
    return ("no TPU is announced here (TPU_NAME, TPU_ACCELERATOR_TYPE, /dev/accel0); on Kaggle's TPU VMs "
            "TensorFlow is tensorflow-cpu and cannot reach the TPU")


def active_batch_multiple() -> int:
    """Return what prediction batches must be a multiple of: the devices of Keras's DataParallel, if one is set.

    Read from Keras's own state (keras.distribution), so a caller needs no accelerator object.
    """
    import keras

    if keras.backend.backend() != "jax":
        return 1
    distribution = keras.distribution.distribution()
    return int(distribution.device_mesh.devices.size) if distribution is not None else 1


def pick_strategy(mixed_precision: bool = True, verbose: bool = True):
    """Return the tf.distribute strategy of pick_accelerator() (notebooks call this for the one line)."""
    return pick_accelerator(mixed_precision, verbose).strategy


def detect(mixed_precision: bool, strict: bool = False, cpu_only: bool = False):
    """Return (strategy, Accelerator) after trying TPU, then GPUs, then the CPU.

    strict: a TPU that is announced but does not answer is an error (the reason is the resolver's).
    """
    import keras

    if keras.backend.backend() == "jax":
        return detect_jax(keras, mixed_precision, cpu_only)
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
            hint = "; Keras on JAX reaches it: KERAS_BACKEND=jax" if importlib.util.find_spec("jax") else ""
            print(f"accelerator: TPU not reachable ({type(err).__name__}: {err}){hint}; trying GPUs")
    simulated = [] if cpu_only else simulated_gpus(tf)
    if simulated:  # a real MirroredStrategy over logical CPU devices, set up as on a 2xT4 kernel
        strategy = tf.distribute.MirroredStrategy(simulated)
        policy = set_policy(keras, "mixed_float16" if mixed_precision else "float32")
        return strategy, Accelerator("gpus", len(simulated), policy,
                                     f"{len(simulated)} GPU(s) simulated by CPU devices ({SIMULATE_GPUS})")
    gpus = [] if cpu_only else tf.config.list_physical_devices("GPU")
    if gpus:
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
        policy = set_policy(keras, "mixed_float16" if mixed_precision else "float32")
        kind = "gpus" if len(gpus) > 1 else "gpu"
        return strategy, Accelerator(kind, strategy.num_replicas_in_sync, policy, f"{len(gpus)} GPU(s)")
    policy = set_policy(keras, "float32")
    return tf.distribute.get_strategy(), Accelerator("cpu", 1, policy, f"CPU ({os.cpu_count()} cores)")


def simulated_gpus(tf) -> list:
    """Return the logical CPU devices that stand in for GPUs when $KIT_SIMULATE_GPUS=N (N >= 2), else [].

    Exists so the two-T4 path (MirroredStrategy, mixed_float16) can really train on a machine with
    no GPU, in tests and by hand. The CPU is split before TensorFlow's runtime starts; after, it
    cannot be, and that is an error rather than a quiet single-device run.
    """
    raw = os.environ.get(SIMULATE_GPUS, "")
    if not raw:
        return []
    if not raw.isdigit() or int(raw) < 2:
        raise KitError(f"{SIMULATE_GPUS}={raw}: expected a number of simulated GPUs, 2 or more")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(raw))
    except RuntimeError as err:
        raise KitError(f"{SIMULATE_GPUS}={raw}: TensorFlow already started in this process and its CPU cannot be "
                       f"split any more ({err}); set it before anything runs on TensorFlow") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


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


def detect_jax(keras, mixed_precision: bool, cpu_only: bool = False):
    """Return (NoScope, Accelerator) on Keras's JAX backend: every device of the best platform, data parallel.

    JAX lists the TPU's (or GPUs') cores itself; with more than one, keras.distribution.DataParallel
    replicates the model and splits each batch over them. TF_CONFIG clusters are TensorFlow-only.
    """
    import jax

    if multi_worker_cluster() is not None:
        raise KitError("TF_CONFIG names several workers, but Keras runs on JAX here: multi-worker training "
                       "needs KERAS_BACKEND=tensorflow")
    devices = jax.devices("cpu") if cpu_only else jax.devices()
    platform = devices[0].platform
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    precision = {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(platform, "float32")
    policy = set_policy(keras, precision if mixed_precision else "float32")
    kind = {"tpu": "tpu", "gpu": "gpus" if len(devices) > 1 else "gpu"}.get(platform, "cpu")
    detail = f"JAX backend, {len(devices)} {platform.upper()} device(s)"
    if len(devices) > 1:
        detail += " (keras.distribution.DataParallel)"
    if kind == "cpu" and tpu_may_exist() and not cpu_only:
        print(f"accelerator: a TPU is announced but JAX lists only {len(devices)} CPU device(s) "
              f"(backends: {', '.join(sorted(backends_with_devices(jax)))})")
    return NoScope(len(devices)), Accelerator(kind, len(devices), policy, detail, backend="jax")


def backends_with_devices(jax) -> set:
    """Return the JAX platforms that answer here (cpu, gpu, tpu), for the message when a TPU is missing."""
    found = set()
    for platform in ("cpu", "gpu", "tpu"):
        try:
            if jax.devices(platform):
                found.add(platform)
        except RuntimeError:
            pass
    return found
