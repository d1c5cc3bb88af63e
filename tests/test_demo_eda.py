import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest

from src.data.competition import load_competition
from src.core.config import DataOptions
from src.data.demo_data import build_demo
from src.core.settings import DemoConfig
from src.data.report import run_eda
from src.core.settings import EdaConfig
from src.core.errors import KitError
from tests.conftest import REPO



def digest(folder):
    return hashlib.sha1(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(DemoConfig(out=str(tmp_path_factory.mktemp("d") / "demo")))


def test_demo_has_the_reference_layout(demo):
    comp = load_competition(DataOptions(data=str(demo)))
    assert comp.layout == "folders" and comp.class_maps["Category"].values == tuple(range(10))
    assert len(comp.train) + len(comp.test) == 1797  # every scikit-learn digit, once
    assert comp.schema.id_column == "Id"
    solution = pd.read_csv(demo / "solution.csv")
    assert list(solution.columns) == ["Id", "Category"] and list(solution["Id"]) == list(comp.test["id"])
    sizes = comp.train[["width", "height"]].drop_duplicates()
    assert len(sizes) > 100 and (comp.train["width"] != comp.train["height"]).mean() > 0.8


def test_demo_same_seed_same_files(demo, tmp_path):
    again = build_demo(DemoConfig(out=str(tmp_path / "demo")))
    assert digest(again) == digest(demo)
    other = build_demo(DemoConfig(out=str(tmp_path / "other"), seed=1))
    assert digest(other) != digest(demo)


def test_demo_never_overwrites_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    with pytest.raises(KitError, match="exists and is not a demo folder"):
        build_demo(DemoConfig(out=str(tmp_path / "mine")))
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"


def test_eda_writes_the_report(demo, tmp_path, capsys):
    summary = run_eda(EdaConfig(data=str(demo), out=str(tmp_path / "eda")))
    for name in ["class_distribution.png", "samples.png", "image_sizes.png", "image_sizes.csv",
                 "split_report.csv", "config.json"]:
        assert (tmp_path / "eda" / name).stat().st_size > 0, name
    assert summary["classes"] == 10 and 1.0 <= summary["imbalance"] < 1.5
    sizes = pd.read_csv(tmp_path / "eda" / "image_sizes.csv")
    assert len(sizes) == 1797 and set(sizes["split"]) == {"train", "test"}
    assert abs(summary["mean_width"] - sizes["width"].mean()) < 1e-9
    out = capsys.readouterr().out
    assert "imbalance (largest / smallest class)" in out and "images per class per split" in out
    assert json.loads((tmp_path / "eda" / "config.json").read_text())["data"] == str(demo)


def test_command_lines_run(tmp_path):
    env = {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    for args in (["src.demo", "--out", "data/demo"], ["src.eda", "--data", "data/demo", "--out", "runs/eda"]):
        result = subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "eda" / "samples.png").exists()
