"""Which Keras backend a job runs on, decided before Keras is imported.

Kaggle's TPU VMs ship tensorflow-cpu (TensorFlow has not reached their TPUs since 2025-09)
with JAX for the TPU: there the kit runs Keras 3 on its JAX backend. Everywhere else Keras's
own choice stands (KERAS_BACKEND, ~/.keras/keras.json, or TensorFlow).

    choose_keras_backend()     # in run_cli and the kernels' first cell, before any Keras import
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path


def tpu_may_exist() -> bool:
    """Return True when something says a TPU is here, so the resolver is not asked (and left waiting) elsewhere.

    ISTPUVM is set by Kaggle's TPU image (its Dockerfile's ENV ISTPUVM=1).
    """
    return (any(k in os.environ for k in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR", "ISTPUVM"))
            or Path("/dev/accel0").exists() or Path("/dev/vfio/0").exists())


def has_tensorflow_tpu() -> bool:
    """Return True when the installed TensorFlow is a TPU build (tensorflow-tpu), which reaches the TPU itself."""
    try:
        importlib.metadata.distribution("tensorflow-tpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def choose_keras_backend(environ=None, verbose: bool = True) -> str:
    """Return the Keras backend this process will use; set KERAS_BACKEND=jax where only JAX reaches the TPU.

    Exists because the backend is fixed at Keras's first import: a TPU kernel that imported Keras
    on TensorFlow first would train on the host CPU. Never overrides a backend the user set, and
    changes nothing once Keras is imported (it says so when that leaves the TPU out of reach).
    """
    environ = os.environ if environ is None else environ
    if "KERAS_BACKEND" in environ:
        return environ["KERAS_BACKEND"]
    wanted = "jax" if (tpu_may_exist() and importlib.util.find_spec("jax") is not None
                       and not has_tensorflow_tpu()) else None
    if "keras" in sys.modules:
        backend = sys.modules["keras"].backend.backend()
        if wanted and backend != wanted and verbose:
            print(f"backend: Keras was imported on {backend} before the kit chose JAX for the TPU; "
                  "restart with KERAS_BACKEND=jax (or call choose_keras_backend() first)")
        return backend
    if wanted is None:
        return "tensorflow"
    environ["KERAS_BACKEND"] = wanted
    if verbose:
        print("backend: JAX (a TPU is announced and this TensorFlow is not a TPU build: Keras 3 reaches it "
              "through JAX)")
    return wanted
