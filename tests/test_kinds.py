"""A new task kind is one object and one line: registered here, in the test file alone, it goes through src.train
and src.submit on tiny data with no edit under src/ (issue 39). The interface's own checks live in
tests/test_layout.py (every kind answers every question; no layer branches on a kind)."""
from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.settings import TrainConfig
from src.core.submit_settings import SubmitConfig
from src.core.task_kind import KINDS, register, registered
from src.data.class_maps import make_class_map
from src.inference.submission import submit
from src.kinds.label.kind import LabelKind
from src.training.two_stage import train
from tests.conftest import make_folder_competition


class FlagKind(LabelKind):
    """A toy kind: a yes/no flag per image, read when the target column holds only `yes` and `no`.

    It answers as one label does except where it says otherwise: its name, how it reads the column, its task line
    and the one submission format it accepts (the sample's yes/no labels)."""

    name = "flag"
    answer = "a yes/no flag per image"
    reads_last = False

    def read_target(self, train, target, opts, schema):
        if set(train[target].astype(str)) != {"yes", "no"}:
            return None
        return train, dataclasses.replace(make_class_map(train[target], target), task=self.name)

    def claims(self, class_map) -> bool:
        return getattr(class_map, "task", "") == self.name

    def task_line(self, class_map, source, counts) -> str:
        return f"task: flag, yes or no in column {class_map.column} ({source})"

    def read_format(self, schema, class_map, override):
        fmt = super().read_format(schema, class_map, override)
        assert fmt.name == "label", "a flag is written as the sample's yes/no"
        return fmt


@pytest.fixture
def flag_kind(monkeypatch):
    """The toy kind registered for one test (the kit's own kinds loaded first), then gone."""
    registered()
    kind = FlagKind()
    monkeypatch.setitem(KINDS, kind.name, kind)  # register(kind), undone after the test
    return kind


def test_a_kind_registered_in_a_test_trains_and_submits(flag_kind, tmp_path, capsys):
    comp = make_folder_competition(tmp_path / "c", classes=("no", "yes"), per_class=8, n_test=4)
    run = tmp_path / "run"
    summary = train(parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stage1-size", "16", "16", "--stage2-size", "16", "16", "--stage1-epochs", "1", "--stage2-epochs", "1",
        "--batch-size", "8", "--out", str(run)]))
    out = capsys.readouterr().out
    assert "task: flag, yes or no in column Category (read from the labels)" in out
    assert json.loads((run / "config.json").read_text())["task"] == "flag"
    assert json.loads((run / "class_map.json").read_text())["maps"][0]["task"] == "flag"
    assert summary["final_stage"] in ("stage1", "stage2")
    result = submit(parse_config(SubmitConfig, ["--data", str(comp), "--run", str(run), "--out", str(tmp_path / "subs"),
                                                "--name", "flag"]))
    frame = pd.read_csv(result["path"])
    assert len(frame) == 4 and set(frame["Category"].astype(str)) <= {"yes", "no"}


def test_register_is_the_one_line_and_the_kind_reads_before_the_catch_all(flag_kind):
    from src.core.task_kind import kind_named, reading_order

    assert kind_named("flag") is flag_kind and register(flag_kind) is flag_kind
    order = [k.name for k in reading_order()]
    assert order[-1] == "label" and "flag" in order  # the catch-all is asked last, whatever the registration order
