"""Kaggle kernels and the kit as a Kaggle dataset (the `upload-src`, `push`, `status` and `output`
commands of `python -m src.kaggle_api`).

A kernel imports the kit from a private dataset holding src/ and requirements.txt, so it runs
with the internet off; `push` writes the notebook with its parameters set and its
kernel-metadata.json into runs/kernels/<slug>/ and pushes that folder. The client itself is
reached through src.kaggle.client.connect(), the one place that imports it.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from src.core.errors import KitError
from src.core.provenance import git_commit
from src.core.kaggle_settings import OutputConfig, PushConfig, StatusConfig, UploadSrcConfig
from src.models import OPTIONAL_PACKAGES
from src.kaggle.notebooks import inject_parameters, parse_params, read_notebook, write_notebook
from src.kaggle.client import connect, kaggle_errors, split_ref, status_of

REPO = Path(__file__).resolve().parents[2]  # the checkout: src/kaggle/kernels.py -> ../../..
KERNELS_DIR = REPO / "kernels"
# Machine shapes a user's kernel push gets (kaggle CLI, late 2026): two T4s, or a TPU v5e-8 VM.
# TpuV6E8 exists for some competitions and admins only; P100 and TPU v3-8 are retired.
MACHINE_SHAPES = {"gpu": "NvidiaTeslaT4", "tpu": "TpuV5E8", "none": None}
SHAPE_KINDS = {"NvidiaTeslaT4": "gpu", "NvidiaL4": "gpu", "NvidiaL4X1": "gpu", "TpuV5E8": "tpu", "TpuV6E8": "tpu"}
RETIRED_SHAPES = {"NvidiaTeslaP100": "NvidiaTeslaT4", "TpuV38": "TpuV5E8", "Tpu1VmV38": "TpuV5E8",
                  "TpuV3_8": "TpuV5E8"}


# ---------------------------------------------------------------- upload-src


def upload_src(cfg: UploadSrcConfig) -> dict:
    """Publish src/ and requirements.txt as a private dataset; return {'ref', 'created'}."""
    owner, slug = split_ref(cfg.dataset, "upload-src DATASET")
    api = connect()
    with tempfile.TemporaryDirectory() as staging:
        folder = stage_src(Path(staging), cfg, owner, slug)
        return publish_dataset(api, cfg.dataset, folder, cfg.notes, "upload-src")


def publish_dataset(api, ref: str, folder: Path, notes: str, what: str) -> dict:
    """Create the private dataset from folder, or a new version of it; return {'ref', 'created'}."""
    exists = dataset_exists(api, ref)
    with kaggle_errors(f"{what} {ref}"):
        if exists:
            response = api.dataset_create_version(str(folder), notes or version_notes(), quiet=True, dir_mode="zip")
        else:
            response = api.dataset_create_new(str(folder), public=False, quiet=True, dir_mode="zip")
    if getattr(response, "error", None):
        raise KitError(f"{what} {ref}: Kaggle said: {response.error}")
    print(f"{'new version of' if exists else 'created'} private dataset {ref}: {response.url}")
    return {"ref": ref, "created": not exists}


def stage_src(staging: Path, cfg: UploadSrcConfig, owner: str, slug: str) -> Path:
    """Copy src/ (no caches) as kit/src and requirements.txt into staging with dataset-metadata.json; return it.

    The client uploads the folder kit/ as kit.zip holding src/...: if Kaggle unpacks it, kernels
    find /kaggle/input/<slug>/kit/src; if not, `sys.path.insert(0, ".../kit.zip")` imports src
    straight from the archive. The kernels' import cell tries both.
    """
    if not 6 <= len(cfg.title) <= 50:
        raise KitError(f"--title {cfg.title!r}: Kaggle needs 6-50 characters")
    folder = staging / slug
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "src", folder / "kit" / "src", ignore=ignore)
    for package in OPTIONAL_PACKAGES:  # pure Python, absent from Kaggle's images: kernels import them from kit/
        shutil.copytree(package_folder(package), folder / "kit" / package, ignore=ignore)
    shutil.copy2(REPO / "requirements.txt", folder / "requirements.txt")
    meta = {"id": f"{owner}/{slug}", "title": cfg.title, "licenses": [{"name": "CC0-1.0"}],
            "subtitle": "src/ of the image classification kit, for offline kernels"}
    (folder / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def package_folder(name: str) -> Path:
    """Return the folder of an installed package; a missing one is an error saying how to install it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise KitError(f"upload-src: {name} is not installed here, so it cannot be shipped in the kit dataset: "
                       "pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0])


def dataset_exists(api, ref: str) -> bool:
    """Return True when the dataset is on Kaggle already (a new version is due instead of a new dataset)."""
    try:
        api.dataset_status(ref)
        return True
    except Exception as err:
        if status_of(err) in (403, 404):
            return False
        with kaggle_errors(f"status of dataset {ref}"):
            raise


def version_notes() -> str:
    """Return 'src at <git commit>' (or a timestamp outside a checkout) for a dataset version."""
    return f"src at {git_commit() or time.strftime('%Y-%m-%d %H:%M')}"


# ---------------------------------------------------------------- kernels


def push(cfg: PushConfig) -> dict:
    """Write the kernel folder (notebook with its parameters, kernel-metadata.json) and push it."""
    notebook = find_notebook(cfg.kernel)
    if not cfg.src_dataset:
        raise KitError("--src-dataset: name the dataset `upload-src` published (owner/slug): "
                       "the kernel imports the kit from it")
    split_ref(cfg.src_dataset, "--src-dataset")
    params = parse_params(cfg.param)
    if cfg.competition:
        params.setdefault("COMPETITION", cfg.competition)
    prepared = inject_parameters(read_notebook(notebook), params)  # a misspelt name fails before Kaggle is asked
    machine(cfg)  # so does a retired or unknown machine shape
    api = connect()
    kernel_id = cfg.id or f"{api.config_values['username']}/{slugify(kernel_title(cfg, notebook))}"
    _, slug = split_ref(kernel_id, "--id")
    folder = Path(cfg.out) / slug
    folder.mkdir(parents=True, exist_ok=True)
    write_notebook(prepared, folder / notebook.name)
    meta = kernel_metadata(cfg, kernel_id, notebook.name, kernel_title(cfg, notebook))
    (folder / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    with kaggle_errors(f"push {kernel_id}", cfg.competition):
        response = api.kernels_push(str(folder))
    if response.error:
        raise KitError(f"push {kernel_id}: Kaggle said: {response.error}")
    for field in ("invalid_dataset_sources", "invalid_competition_sources", "invalid_model_sources"):
        for bad in getattr(response, field, None) or []:
            print(f"warning: Kaggle did not attach {bad} ({field.replace('_', ' ')})", file=sys.stderr)
    print(f"pushed {folder} as {kernel_id} version {response.version_number}: {response.url}")
    return {"id": kernel_id, "url": response.url, "folder": str(folder), "metadata": meta}


def find_notebook(name: str) -> Path:
    """Return the notebook a push names: a path to an .ipynb, or a name in kernels/."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path
    candidate = KERNELS_DIR / f"{path.stem}.ipynb"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in KERNELS_DIR.glob("*.ipynb")))
    raise KitError(f"push {name}: no such notebook; expected a path to an .ipynb or one of: {known}")


def kernel_title(cfg: PushConfig, notebook: Path) -> str:
    """Return the kernel's title: --title, else '<competition> <notebook>' (at least 5 characters)."""
    title = cfg.title or f"{cfg.competition or 'image kit'} {notebook.stem.replace('_', ' ')}"
    if len(title) < 5:
        raise KitError(f"--title {title!r}: Kaggle needs at least 5 characters")
    return title


def slugify(title: str) -> str:
    """Return the slug Kaggle derives from a title (lowercase words joined by dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def machine(cfg: PushConfig) -> tuple[str, str | None]:
    """Return (accelerator kind, machine shape): the shape decides the kind; a retired or unknown shape is refused.

    enable_gpu/enable_tpu always follow the shape: a TpuV5E8 kernel marked enable_gpu runs on no TPU.
    """
    shape = cfg.machine_shape
    if shape in RETIRED_SHAPES:
        raise KitError(f"--machine-shape {shape}: Kaggle retired it; use {RETIRED_SHAPES[shape]}")
    if shape and shape not in SHAPE_KINDS:
        raise KitError(f"--machine-shape {shape}: not a shape Kaggle offers; expected one of {', '.join(SHAPE_KINDS)}")
    kind = SHAPE_KINDS[shape] if shape else ("gpu" if cfg.accelerator == "auto" else cfg.accelerator)
    if shape and cfg.accelerator not in ("auto", kind):
        raise KitError(f"--accelerator {cfg.accelerator} with --machine-shape {shape}, a {kind} machine: "
                       "leave one of them out")
    return kind, shape or MACHINE_SHAPES[kind]


def kernel_metadata(cfg: PushConfig, kernel_id: str, code_file: str, title: str) -> dict:
    """Return kernel-metadata.json's fields for a private notebook on the chosen machine.

    enable_internet is always written (the CLI turns it on when it is left out); no docker image is
    pinned (a pin on a TPU kernel silently replaces the TPU machine with a CPU one).
    """
    kind, shape = machine(cfg)
    return {
        "id": kernel_id,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": kind == "gpu",
        "enable_tpu": kind == "tpu",
        "enable_internet": cfg.internet,
        "machine_shape": shape,
        "dataset_sources": [cfg.src_dataset, *([cfg.weights_dataset] if cfg.weights_dataset else []), *cfg.dataset],
        "competition_sources": [cfg.competition] if cfg.competition else [],
        "kernel_sources": [],
        "model_sources": list(cfg.model),
    }


def kernel_status(cfg: StatusConfig) -> dict:
    """Print and return the kernel's state and failure message."""
    split_ref(cfg.kernel, "status KERNEL")
    api = connect()
    with kaggle_errors(f"status of {cfg.kernel}"):
        response = api.kernels_status(cfg.kernel)
    state = response.status.name.lower()
    print(f"{cfg.kernel}: {state}" + (f" ({response.failure_message})" if response.failure_message else ""))
    return {"status": state, "failure_message": response.failure_message or ""}


def kernel_output(cfg: OutputConfig) -> list:
    """Download the kernel's output files and log; return their paths."""
    _, slug = split_ref(cfg.kernel, "output KERNEL")
    out = Path(cfg.out or Path("runs") / "kernels" / slug / "output")
    api = connect()
    with kaggle_errors(f"output of {cfg.kernel}"):
        files, _ = api.kernels_output(cfg.kernel, str(out), force=True, quiet=True)
    for file in files:
        print(f"wrote {file}")
    return files
