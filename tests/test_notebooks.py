"""kernels/*.ipynb: thin (no function or class defined in a cell) and runnable locally with nbclient.

The three notebooks run in a row on a tiny competition, as a user would run them: screening,
then training, then the submission from that training run. Their parameters are set the way
`python -m src.kaggle_api push --param` sets them: a cell tagged injected-parameters.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import sys
import warnings

import pandas as pd
import pytest

from src.core import auto_settings, settings, submit_settings
from src.core.errors import KitError
from src.hardware.accelerator import Accelerator
from src.kaggle.notebooks import PLUMBING, cell_source, inject_parameters, parameter_names, parameters_cell, read_notebook
from tests.conftest import REPO, make_folder_competition

NOTEBOOKS = sorted((REPO / "kernels").glob("*.ipynb"))
CELL_IDS = ["about", "parameters", "import-kit", "set-up", "run"]
JOBS = {"auto": auto_settings.AutoConfig, "screen_backbones": settings.ScreenConfig, "train": settings.TrainConfig, "submit": submit_settings.SubmitConfig}


def definitions(nb: dict) -> list:
    """Return (cell index, name) of every function or class a code cell defines: notebooks stay thin."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "\n".join(line for line in cell_source(cell).splitlines()
                           if not line.lstrip().startswith(("%", "!")))  # IPython magics are not Python
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append((i, node.name))
    return found


def parameter_defaults(nb: dict) -> dict:
    """Return {NAME: value} of the parameters cell's assignments."""
    tree = ast.parse(cell_source(nb["cells"][parameters_cell(nb)]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameters_default_to_the_library(path):
    """One source of defaults: a parameter that sets a job field holds that field's default."""
    cls = JOBS[path.stem]
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    checked = 0
    for name, value in parameter_defaults(read_notebook(path)).items():
        if name in PLUMBING:
            continue
        assert name.lower() in fields, f"{path.name}: {name} is neither plumbing nor a field of {cls.__name__}"
        wanted = fields[name.lower()]
        assert (tuple(value) if isinstance(value, list) else value) == wanted, \
            f"{path.name}: {name} = {value!r}, but {cls.__name__}.{name.lower()} defaults to {wanted!r}"
        checked += 1
    assert checked >= 4


def test_the_train_kernel_runs_the_reference_recipe():
    defaults = parameter_defaults(read_notebook(REPO / "kernels" / "train.ipynb"))
    assert defaults["STAGE1_EPOCHS"] == 30 and defaults["STAGE2_LR"] == 0.0  # 0: the rates for the weights


def test_there_are_the_four_kernels():
    assert [p.name for p in NOTEBOOKS] == ["auto.ipynb", "screen_backbones.ipynb", "submit.ipynb", "train.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_defines_a_function_or_a_class(path):
    nb = read_notebook(path)
    assert definitions(nb) == []
    assert {"COMPETITION", "DATA", "WORK_DIR", "KIT_ROOT", "RUN" if "submit" not in path.name else "RUNS"} \
        <= set(parameter_names(nb))


def test_the_thinness_check_catches_definitions():
    nb = read_notebook(NOTEBOOKS[0])
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": ["%matplotlib inline\n", "class Head:\n", "    def build(self):\n",
                                   "        pass\n"]})
    assert [name for _, name in definitions(nb)] == ["Head", "build"]


def test_injecting_an_unknown_parameter_is_refused():
    with pytest.raises(KitError, match="EPOHCS"):
        inject_parameters(read_notebook(REPO / "kernels" / "train.ipynb"), {"EPOHCS": 3})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_stable_id_and_the_notebook_validates(path):
    """issue 24 item 21: nbformat 4.5 cells need an id (a missing one is a warning today, an error later)."""
    import nbformat

    nb = read_notebook(path)
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
    ids = CELL_IDS + (["ledger"] if path.stem in ("auto", "train", "submit") else [])  # they end by printing the ledger
    assert [cell.get("id") for cell in nb["cells"]] == ids
    injected = inject_parameters(nb, {"COMPETITION": "dogs-vs-cats"})
    assert [cell.get("id") for cell in injected["cells"]] == [*ids[:2], "injected-parameters", *ids[2:]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nbformat's MissingIDFieldWarning included
        for version in (nb, injected):
            nbformat.validate(nbformat.reads(json.dumps(version), as_version=4))


def run_kit_cell(path, namespace: dict):
    """Run a notebook's import-kit cell (it finds the kit and puts it on sys.path) in namespace."""
    exec(next(cell_source(c) for c in read_notebook(path)["cells"] if c.get("id") == "import-kit"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_kit_is_found_in_the_kind_folder_layout(path, tmp_path, monkeypatch, capsys):
    """issue 24 item 17: /kaggle/input/<kind>/<owner>/<slug>/kit is four folders down; three were searched."""
    monkeypatch.setenv("KIT_INPUTS", str(tmp_path / "input"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    kit = tmp_path / "input" / "datasets" / "me" / "image-kit-src" / "kit"
    (kit / "src").mkdir(parents=True)
    (kit / "src" / "__init__.py").write_text("")
    assert run_kit_cell(path, {"KIT_ROOT": ""})["KIT"] == kit and sys.path[0] == str(kit)
    assert capsys.readouterr().out == f"kit: {kit}\n"


def test_a_zipped_kit_is_found_and_a_deeper_one_is_not(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "input"
    monkeypatch.setenv("KIT_INPUTS", str(inputs))
    monkeypatch.setattr(sys, "path", list(sys.path))
    deep = inputs / "a" / "b" / "c" / "d" / "e" / "kit"  # six folders down: past the bound
    (deep / "src").mkdir(parents=True)
    (deep / "src" / "__init__.py").write_text("")
    with pytest.raises(RuntimeError) as err:
        run_kit_cell(NOTEBOOKS[-1], {"KIT_ROOT": ""})
    assert str(err.value).startswith(f"the kit is not attached: no kit/src or kit.zip within five folders of {inputs}")
    archive = inputs / "datasets" / "me" / "image-kit-src" / "kit.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"PK")
    assert run_kit_cell(NOTEBOOKS[-1], {"KIT_ROOT": ""})["KIT"] == archive
    assert capsys.readouterr().out == f"kit: {archive}\n"


def test_the_batch_size_is_said_to_be_per_replica_as_the_code_treats_it():
    """issue 24 item 19: train.ipynb called BATCH_SIZE the global batch; the library multiplies it by the replicas."""
    nb = read_notebook(REPO / "kernels" / "train.ipynb")
    line = next(line for line in cell_source(nb["cells"][parameters_cell(nb)]).splitlines()
                if line.startswith("BATCH_SIZE"))
    assert "per replica" in line and "global batch:" not in line
    assert Accelerator("gpus", 2, "mixed_float16", "2 GPU(s)").global_batch(32, images=1000) == 64


def execute(name: str, params: dict, tmp_path):
    """Run kernels/<name>.ipynb with params; return the executed notebook's text outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = inject_parameters(read_notebook(REPO / "kernels" / f"{name}.ipynb"), params)
    node = nbformat.from_dict(nb)
    NotebookClient(node, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                     for cell in node.cells if cell.cell_type == "code" for out in cell.outputs)


def test_the_three_notebooks_run_locally_in_a_row(tmp_path):
    pytest.importorskip("nbclient")
    make_folder_competition(tmp_path / "data" / "tiny", per_class=8, n_test=6)
    common = {"COMPETITION": "tiny", "WORK_DIR": str(tmp_path), "KIT_ROOT": str(REPO)}
    text = execute("screen_backbones", {**common, "BACKBONES": "tiny_resnet,mobilenetv3_small",
                                        "WEIGHTS": "none", "IMAGE_SIZE": (32, 32), "EPOCHS": 1,
                                        "SETTINGS": {"batch_size": 8, "augment": "none"}}, tmp_path)
    assert "accelerator: CPU" in text and "data: data/tiny" in text
    assert text.count("accelerator:") == 1  # issue 24 item 22: once per kernel (it was printed twice)
    screening = pd.read_csv(tmp_path / "runs" / "screen" / "screening.csv")
    assert set(screening["backbone"]) == {"tiny_resnet", "mobilenetv3_small"}
    text = execute("train", {**common, "BACKBONE": "tiny_resnet", "WEIGHTS": "none", "STAGE1_SIZE": (16, 16),
                             "STAGE1_EPOCHS": 1, "STAGE2_SIZE": (20, 20), "STAGE2_EPOCHS": 1, "BATCH_SIZE": 8,
                             "RUN": "runs/nb-train"}, tmp_path)
    assert "holdout_accuracy" in text and text.count("accelerator:") == 1
    assert (tmp_path / "runs" / "nb-train" / "stage2.weights.h5").is_file()
    ledger = pd.read_csv(tmp_path / "runs" / "runs.csv")  # the kernel ends with the ledger of its run
    assert ledger[["kind", "name", "status"]].values.tolist() == [["run", "runs/nb-train", "finished"]]
    assert "runs (1):" in text and "runs/nb-train" in text
    text = execute("submit", {**common, "RUNS": ["runs/nb-train"], "TTA_VIEWS": "identity,hflip",
                              "NAME": "nb-sub", "OUT": "subs"}, tmp_path)
    assert text.count("accelerator:") == 1
    submission = pd.read_csv(tmp_path / "subs" / "nb-sub.csv", dtype=str)
    assert list(submission.columns) == ["Id", "Category"]
    assert list(submission["Id"]) == [f"t{i}.jpg" for i in range(6)]
    assert set(submission["Category"]) <= {"0", "1", "2"}
    ledger = pd.read_csv(tmp_path / "runs" / "runs.csv")
    assert ledger[["kind", "name"]].values.tolist() == [["run", "runs/nb-train"], ["submission", "nb-sub"]]
    assert "submissions (1):" in text
