"""Notebooks of kernels/: read, set their parameters, check they stay thin.

A kit notebook has one code cell tagged `parameters` (competition, data path, backbones,
sizes, run name), one cell that makes the library importable, and otherwise only calls into
src; every cell has a fixed id (nbformat 4.5). `inject_parameters` adds a cell tagged (and with
the id) `injected-parameters` after the parameters cell, as papermill does, so the same
notebook runs locally, on a Kaggle GPU and on a Kaggle TPU with different values and no edits.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
from pathlib import Path

from src.core.config import make_config
from src.core.errors import KitError

# Notebook parameters that locate things (data, outputs, the kit) rather than set a job's fields.
PLUMBING = ("COMPETITION", "DATA", "WORK_DIR", "KIT_ROOT", "RUN", "RUNS", "OUT", "SETTINGS")


def read_notebook(path: str | Path) -> dict:
    """Return the notebook's JSON (nbformat 4) as a dict."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise KitError(f"{path}: not a readable notebook ({err})") from None


def write_notebook(nb: dict, path: str | Path) -> Path:
    """Write the notebook as JSON; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return path


def cell_source(cell: dict) -> str:
    """Return a cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parameters_cell(nb: dict) -> int:
    """Return the index of the cell tagged `parameters`, or raise naming what is missing."""
    for i, cell in enumerate(nb.get("cells", [])):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    raise KitError("notebook has no cell tagged 'parameters'")


def parameter_names(nb: dict) -> list:
    """Return the names the parameters cell assigns, in order."""
    tree = ast.parse(cell_source(nb["cells"][parameters_cell(nb)]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)]


def parse_params(pairs) -> dict:
    """Return {NAME: value} from NAME=VALUE strings; a value is a Python literal when it parses, else text."""
    params = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.isidentifier():
            raise KitError(f"--param {pair!r}: expected NAME=VALUE")
        try:
            params[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[name] = raw
    return params


def inject_parameters(nb: dict, params: dict) -> dict:
    """Return a copy of nb with a cell setting `params` right after its parameters cell.

    A name the parameters cell does not assign is an error: a typo would otherwise be ignored.
    """
    nb = copy.deepcopy(nb)
    index = parameters_cell(nb)
    known = parameter_names(nb)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise KitError(f"parameter(s) {', '.join(unknown)} are not in the notebook's parameters cell; "
                       f"known: {', '.join(known)}")
    cells = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if params:
        source = "# Parameters set for this run\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
        cells.insert(index + 1, {"cell_type": "code", "id": "injected-parameters", "execution_count": None,
                                 "outputs": [], "metadata": {"tags": ["injected-parameters"]}, "source": source})
    nb["cells"] = cells
    return nb


def job_config(cls, parameters: dict, **fixed):
    """Return a job's config from the library's defaults, a notebook's parameters and `fixed` values.

    Every UPPERCASE parameter whose lowercase name is a field of `cls` sets that field
    (BACKBONE -> backbone); SETTINGS = {...} sets any other field; the notebook's plumbing
    (COMPETITION, DATA, WORK_DIR, KIT_ROOT, RUN, RUNS, OUT) never does. Values are checked as
    flags are. Exists so a notebook re-types no default: what it leaves alone is the library's.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {name.lower(): value for name, value in parameters.items()
              if name.isupper() and name not in PLUMBING and name.lower() in fields}
    extra = dict(parameters.get("SETTINGS") or {})
    unknown = sorted(set(extra) - fields)
    if unknown:
        raise KitError(f"SETTINGS: {', '.join(unknown)} is not a setting of {cls.__name__}")
    return make_config(cls, {**values, **extra, **fixed}, source="notebook parameters")


def kernel_paths(competition: str, data: str = "", work_dir: str = "") -> tuple[str, str]:
    """Return (data folder, working folder) for a notebook, and make the working folder current.

    On Kaggle: the competition under /kaggle/input (older and newer mount layouts), outputs in
    /kaggle/working. Elsewhere: data/<competition> and the kit's root, like the command lines.
    Exists so one notebook runs unchanged locally, on a Kaggle GPU and on a Kaggle TPU VM
    (which reads /kaggle/input directly: no cloud bucket needed).
    """
    kaggle = Path("/kaggle/input").is_dir()
    work = Path(work_dir or ("/kaggle/working" if kaggle else Path(__file__).resolve().parents[2]))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    if data:
        found = Path(data)
    else:
        candidates = [Path("/kaggle/input") / competition, Path("/kaggle/input/competitions") / competition,
                      Path("data") / competition]
        found = next((p for p in candidates if p.is_dir()), candidates[0] if kaggle else candidates[-1])
    if not found.is_dir():
        raise KitError(f"data folder {found} does not exist: attach the competition to the kernel, or "
                       f"python -m src.kaggle_api download {competition}")
    print(f"data: {found}   working folder: {work}")
    return str(found), str(work)


def show(*paths) -> None:
    """Display the PNGs a job wrote (screening.png, curves.png ...) in the notebook; skip missing ones."""
    from IPython.display import Image, display

    for path in paths:
        if Path(path).is_file():
            display(Image(filename=str(path)))
