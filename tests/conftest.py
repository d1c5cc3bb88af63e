"""Tiny generated competitions for the tests: a few 16-40 px images, written per test."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def share_cores_between_workers(environ=os.environ) -> set | None:
    """Pin this pytest-xdist worker to its own share of the cores; return the share (None: not a worker).

    `make test` runs two workers on two cores. Each TensorFlow (and XLA) process sizes its thread
    pools to the cores it may use, so two unpinned workers run four busy pools on two cores and
    slow each other down; pinned, each sees one core. Done at import, before numpy or TensorFlow
    start their threads; subprocesses (JAX jobs, notebook kernels) inherit the share.
    """
    worker, count = environ.get("PYTEST_XDIST_WORKER"), int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    share = set(cores[int(worker.removeprefix("gw")) % count::count]) or set(cores)
    os.sched_setaffinity(0, share)
    return share


share_cores_between_workers()


def skip_graph_optimizer() -> None:
    """Turn TensorFlow's graph optimizer (grappler) off in the test process; return nothing.

    Why: every model the suite trains is a few layers on 16-40 px images, where grappler's rewrite of each
    traced function costs more than it saves: measured here, a tiny_resnet's first epoch took 4.0-4.6 s
    without it against 4.8-5.6 s with it (the traced step's results are the same ops, unfused). Subprocesses
    (notebook kernels, killed trainings, the JAX jobs) keep TensorFlow's defaults, as users run them.
    """
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def pytest_configure(config):
    """Turn grappler off in every process that runs tests; not in pytest-xdist's controller, which runs none.

    Why here and not at import: importing TensorFlow takes the controller ~8 s before it starts the workers,
    which import it again themselves (workers carry `workerinput`; `-n 0` runs the tests in this process).
    """
    if getattr(config, "workerinput", None) is None and getattr(config.option, "numprocesses", None):
        return
    skip_graph_optimizer()

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.fake_kaggle"]  # the `fake` fixture: a fake Kaggle API server
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230), (230, 220, 40)]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every test in its own folder, so runs/ and data/ never touch the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_image(path: Path, size=(24, 20), colour=(200, 30, 30), mode="RGB", orientation=None,
                pattern=True) -> Path:
    """Write an image (size = width, height) with a left-right asymmetric pattern; return its path."""
    width, height = size
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:] = colour
    if pattern:
        array[: height // 2, : width // 3] = 255 - np.array(colour)  # marks top-left: catches flips
    image = Image.fromarray(array, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    image.save(path, **kwargs)
    return path


def make_folder_competition(root: Path, classes=("0", "1", "2"), per_class=6, n_test=5,
                            test_order=None) -> Path:
    """Write train/<class>/*.jpg, test_upload/*.jpg and sample-submission.csv (Id,Category)."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / "train" / name / f"{name}_{i}.jpg", size=(24 + i, 20 + c),
                        colour=COLOURS[c % len(COLOURS)])
    ids = [f"t{i}.jpg" for i in range(n_test)]
    for i, image_id in enumerate(ids):
        write_image(root / "test_upload" / image_id, colour=COLOURS[i % len(classes)])
    order = test_order or ids
    (root / "sample-submission.csv").write_text("Id,Category\n" + "".join(f"{i},0\n" for i in order))
    return root


@pytest.fixture
def folder_comp(tmp_path) -> Path:
    return make_folder_competition(tmp_path / "comp")


@pytest.fixture
def csv_comp(tmp_path) -> Path:
    """A CSV layout: filename,make_id,model_id (CompCars-like), string model names with spaces."""
    root = tmp_path / "cars"
    rows = []
    models = ["audi a4", "audi a6", "bmw x5"]
    for m, model in enumerate(models):
        for i in range(6):
            name = f"img{m}{i}"
            write_image(root / "images" / f"{name}.jpg", colour=COLOURS[m])
            rows.append(f"{name},{0 if m < 2 else 1},{model},g{m}{i // 2}")
    (root / "train.csv").write_text("filename,make_id,model_id,car\n" + "\n".join(rows) + "\n")
    for i in range(3):
        write_image(root / "test" / f"x{i}.jpg")
    (root / "sample_submission.csv").write_text("image_id,model_id\nx2,a\nx0,a\nx1,a\n")
    return root


def make_isic_competition(root: Path, n_train=50, positives=(3, 27), n_test=6, size=(20, 20)) -> Path:
    """ISIC 2020's shape: train/ISIC_N.jpg; train.csv image_name,patient_id,sex,age_approx,target with 4%
    positives (red, the rest blue) and some empty sex cells; sample_submission.csv image_name,target of 0s."""
    rows = []
    for i in range(n_train):
        target = int(i in positives)
        write_image(root / "train" / f"ISIC_{i:07d}.jpg", size=size, colour=COLOURS[0 if target else 2])
        sex = "" if i % 7 == 3 else ("male", "female")[i % 2]
        rows.append(f"ISIC_{i:07d},IP_{i % 10:03d},{sex},{35 + 5 * (i % 8)}.0,{target}")
    (root / "train.csv").write_text("image_name,patient_id,sex,age_approx,target\n" + "\n".join(rows) + "\n")
    ids = [f"ISIC_{9000000 + i:07d}" for i in range(n_test)]
    for i, image_id in enumerate(ids):
        write_image(root / "test" / f"{image_id}.jpg", size=size, colour=COLOURS[0 if i % 3 == 0 else 2])
    (root / "sample_submission.csv").write_text("image_name,target\n" + "".join(f"{i},0\n" for i in ids))
    return root


def needs_missing_package(spec) -> bool:
    """Return True for an *_ns entry where efficientnet is not installed (Kaggle's images): the error is checked."""
    import importlib.util

    from src.core.errors import KitError

    if spec.family != "efficientnet_ns" or importlib.util.find_spec("efficientnet") is not None:
        return False
    with pytest.raises(KitError, match="needs the efficientnet package.*attach the kit dataset made by"):
        spec.build((32, 32, 3), "none")
    return True


@pytest.fixture
def isic_comp(tmp_path) -> Path:
    return make_isic_competition(tmp_path / "siim-isic-melanoma-classification")


# The slowest files first (measured with --durations): pytest-xdist's loadfile hands whole files to the
# worker that asks next, in collection order, so a slow file collected last ends the run alone.
SLOW_FILES_FIRST = ("test_jax.py", "test_auto.py", "test_faults.py", "test_notebooks.py", "test_train.py",
                    "test_identity.py", "test_cv.py", "test_table.py", "test_runs.py", "test_regression.py",
                    "test_metric.py", "test_probes_34.py", "test_formats.py", "test_recipe_flags.py",
                    "test_screening.py")


def pytest_collection_modifyitems(items):
    """Order the collected tests so the slowest files come first; within a file the order is kept."""
    def rank(item):
        name = item.path.name
        return SLOW_FILES_FIRST.index(name) if name in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)

    items.sort(key=rank)  # stable: the rest keep their collection order


@pytest.fixture
def live_python():
    """Yield a live Python process (a sleeping interpreter): a lock holder that is alive and could be a kit job."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()
