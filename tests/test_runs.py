"""The run folder (src.runs.folder): its typed config, final stage, resume checks and lock."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.runs.folder import RunFolder
from src.runs.stages import plan_stages
from src.runs.state import RunState, StageRecord, read_state, write_state


def saved_run(tmp_path, argv=(), finished=("stage1", "stage2"), weights=("stage1", "stage2")) -> RunFolder:
    """Return a run folder holding a config, a state and (empty) weights files, as training leaves them."""
    run = RunFolder(tmp_path / "run")
    run.save_config(parse_config(TrainConfig, ["--data", "d", *argv]))
    run.save_state(RunState(finished=list(finished)))
    for stage in weights:
        run.weights(stage).write_bytes(b"")
    return run


def test_the_config_comes_back_typed(tmp_path):
    run = saved_run(tmp_path, ["--stage2-size", "48", "64", "--backbone", "tiny_resnet"])
    cfg = run.load_config()
    assert isinstance(cfg, TrainConfig) and cfg.stage2_size == (48, 64) and cfg.backbone == "tiny_resnet"
    assert run.final_stage().name == "stage2" and run.final_stage().size == (48, 64)


def test_prediction_never_falls_back_to_another_stage(tmp_path):
    """issue 12 #10: with stage2.weights.h5 deleted, submit quietly predicted with stage 1."""
    run = saved_run(tmp_path, weights=("stage1",))
    with pytest.raises(KitError, match="stage2.weights.h5 is missing"):
        run.final_stage()
    unfinished = saved_run(tmp_path / "b", finished=("stage1",))
    with pytest.raises(KitError, match="stage2 has not finished"):
        unfinished.final_stage()
    one_stage = saved_run(tmp_path / "c", ["--stages", "1"], finished=("stage1",), weights=("stage1",))
    assert one_stage.final_stage().name == "stage1"


def test_an_unfinished_run_on_a_read_only_input_is_resumed_from_a_writable_copy(tmp_path, monkeypatch):
    """issue 24 item 20: the advice was --config <the run>/config.json --resume, but /kaggle/input is read-only."""
    import shlex
    import shutil

    monkeypatch.setattr("src.runs.folder.writable", lambda path: "input" not in Path(path).parts)  # as a ro mount
    attached = saved_run(tmp_path / "input" / "train-kernel", finished=("stage1",))
    with pytest.raises(KitError) as err:
        attached.final_stage()
    copy = tmp_path / "runs" / "run"  # the working folder (tmp_path here; /kaggle/working on Kaggle)
    message = str(err.value)
    assert message.startswith(f"--run {attached.path}: stage2 has not finished; {attached.path} is read-only")
    assert message.endswith(f"cp -r {attached.path} {copy} && python -m src.train --config {copy / 'config.json'} "
                            f"--out {copy} --resume")
    cp, _, train = message.rpartition(": cp -r ")[2].partition(" && ")
    shutil.copytree(*shlex.split(cp))  # the advice works: the copy resumes with the run's own settings
    resumed = parse_config(TrainConfig, shlex.split(train)[3:])
    assert resumed.out == str(copy) and resumed.resume
    RunFolder(copy).check_resume(resumed)
    assert "read-only" not in str(pytest.raises(KitError, RunFolder(copy).final_stage).value)


@pytest.mark.parametrize("argv, setting", [
    (["--seed", "7"], "--seed"),
    (["--stage2-size", "48", "48"], "--stage2-size"),
    (["--backbone", "resnet50"], "--backbone"),
    (["--stage2-lr", "0.001"], "--stage2-lr"),
])
def test_resume_refuses_settings_that_change_the_run(tmp_path, argv, setting):
    """issue 12 #1 and #18: --resume with another seed or size mixed two runs; another backbone failed in Keras."""
    run = saved_run(tmp_path)
    with pytest.raises(KitError, match=f"--resume: {setting} is"):
        run.check_resume(parse_config(TrainConfig, ["--data", "d", *argv, "--resume"]))


def test_resume_may_change_epochs_and_where_the_data_sits(tmp_path):
    run = saved_run(tmp_path)
    run.check_resume(parse_config(TrainConfig, ["--data", "/kaggle/input/d", "--stage1-epochs", "50", "--resume"]))
    # The test images' folder is a place (src.core.roles), read by submit, never by training: it may move.
    run.check_resume(parse_config(TrainConfig, ["--data", "d", "--test-dir", "/kaggle/input/d/test", "--resume"]))


def test_the_run_state_is_typed_and_reads_earlier_files(tmp_path):
    """state.json as RunState: a file of an earlier version (no kept stage, no seconds) reads with defaults, and a
    key this version does not know survives the next write; a wrong type is named."""
    run = saved_run(tmp_path)
    run.state_file.write_text(json.dumps({"finished": ["stage1"], "best": {"stage1": 0.7}, "future": {"x": 1}}))
    state = run.state()
    assert (state.finished, state.kept, state.kept_score()) == (["stage1"], "", None)
    assert state.stages == {"stage1": StageRecord(best=0.7)}  # no seconds, epoch, hardware: None
    assert run.kept_stage(plan_stages(run.load_config())) == "stage2"  # no choice recorded: the last planned
    state.record_stage("stage2", {"score": 0.8, "val_loss": 0.4, "epoch": 3}, 12.34, {"kind": "cpu"}, "abc1234")
    state.keep("stage2", by="best")
    run.save_state(state)
    saved = json.loads(run.state_file.read_text())
    assert saved["future"] == {"x": 1} and saved["finished"] == ["stage1", "stage2"] and saved["kept"] == "stage2"
    assert (saved["seconds"], saved["epochs"], run.state().kept_score()) == ({"stage2": 12.3}, {"stage2": 3}, 0.8)
    run.state_file.write_text(json.dumps({"finished": ["stage1"], "best": [0.7]}))
    with pytest.raises(KitError, match=r"state.json: damaged \('best' is not what python -m src.train writes"):
        run.state()


def test_the_stage_records_read_and_write_state_json_as_it_was(tmp_path):
    """One StageRecord per stage in memory, one map per field on disk (best, best_val_loss, epochs, average_top,
    seconds, hardware), as every kit version wrote it: a file reads and writes back unchanged, key order too,
    a full-fit's null best and an earlier version's missing val_loss included."""
    written = {"finished": ["stage1", "stage2"], "best": {"stage1": 0.7, "stage2": None},
               "best_val_loss": {"stage2": None}, "metric": "auc", "kept": "stage2", "kept_by": "last",
               "epochs": {"stage1": 4, "stage2": 2}, "average_top": {"stage1": {"epochs": [3, 4], "kept": True}},
               "seconds": {"stage2": 8.5}, "hardware": {"stage2": {"kind": "cpu"}}, "git_commit": "abc1234",
               "verdict": {"holdout_score": 0.7}}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(written))
    state = read_state(path)
    assert state.stages["stage1"] == StageRecord(best=0.7, epoch=4, average_top={"epochs": [3, 4], "kept": True})
    assert (state.stages["stage2"].best, state.stages["stage2"].seconds, state.kept_score()) == (None, 8.5, None)
    write_state(path, state)
    assert json.loads(path.read_text()) == written and list(json.loads(path.read_text())) == list(written)
    fresh = RunState()
    fresh.record_stage("stage1", {"score": 0.6, "val_loss": 0.5, "epoch": 2, "average": {"kept": False}}, 3.04,
                       {"kind": "cpu"}, "c")
    fresh.record_stage("stage1", {"score": 0.8, "val_loss": None, "epoch": 3}, 2.0, {"kind": "gpu"}, "d")
    assert fresh.as_record() == {"finished": ["stage1"], "best": {"stage1": 0.8}, "best_val_loss": {"stage1": None},
                                 "epochs": {"stage1": 3}, "average_top": {"stage1": {"kept": False}},
                                 "seconds": {"stage1": 5.0}, "hardware": {"stage1": {"kind": "gpu"}},
                                 "git_commit": "d"}


def test_a_live_lock_refuses_a_second_writer(tmp_path, live_python):
    """issue 12 #2: two src.train --out R started together both wrote into R."""
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    (run.path / ".lock").write_text(f"{live_python.pid}\n")
    with pytest.raises(KitError, match=f"in use by process {live_python.pid}"):
        with run.lock():
            pass


def test_a_stale_lock_is_taken_over_saying_so(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    (run.path / ".lock").write_text(f"{dead.pid}\n")
    with run.lock():
        assert (run.path / ".lock").read_text().strip() != str(dead.pid)
    assert f"taking over the lock of process {dead.pid}" in capsys.readouterr().out
    assert not (run.path / ".lock").exists()


def test_a_run_that_fails_on_bad_input_leaves_no_folder(tmp_path):
    """issue 12 #17: the half-made run folder blocked the corrected rerun."""
    from src.training.two_stage import train

    cfg = parse_config(TrainConfig, ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")])
    with pytest.raises(KitError, match="does not exist"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_stage_plan_is_shared(tmp_path):
    cfg = parse_config(TrainConfig, ["--warmup-epochs", "2", "--stages", "1"])
    assert [s.name for s in plan_stages(cfg)] == ["warmup", "stage1"]
    assert json.loads(saved_run(tmp_path).config_file.read_text())["stages"] == 2


def test_unfreeze_top_trains_only_the_last_blocks():
    """BackboneSpec.unfreeze_from was read only by a test; --unfreeze top uses it."""
    from src.models.backbones import get_spec
    from src.models.classifier import build_classifier
    from src.models.recipe import unfreeze_top

    spec = get_spec("small_resnet")
    model = build_classifier(spec, (32, 32), 3, "none", train_backbone=True)
    cut = unfreeze_top(model, spec)
    layers = model.get_layer(spec.name).layers
    assert 0 < cut < len(layers) and layers[cut].name == spec.unfreeze_from
    assert not any(layer.trainable for layer in layers[:cut]) and layers[cut].trainable


def test_time_limit_stops_cleanly_and_resume_finishes_the_same_epochs(tmp_path, capsys, monkeypatch):
    """issue 15: --time-limit ends after the last epoch that fits; --resume continues to the planned epochs."""
    import pandas as pd

    from src.training.two_stage import train
    from tests.conftest import make_folder_competition

    comp = make_folder_competition(tmp_path / "c", per_class=6)
    base = ["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
            "--stage1-size", "16", "16", "--stage2-size", "20", "20", "--stage1-epochs", "3", "--stage2-epochs", "2",
            "--stage1-patience", "9", "--stage2-patience", "9", "--batch-size", "8", "--final-stage", "last",
            "--split-file", str(tmp_path / "split.csv")]
    whole = train(parse_config(TrainConfig, [*base, "--out", str(tmp_path / "whole")]))
    # The run's clock frozen at 0 with a limit of ~4 ms: stage 1 starts, its first epoch ends long
    # after the deadline on the real clock, so the epoch clock stops the fit right there.
    import types

    monkeypatch.setattr("src.training.two_stage.time", types.SimpleNamespace(monotonic=lambda: 0.0))
    cut = train(parse_config(TrainConfig, [*base, "--out", str(tmp_path / "cut"), "--time-limit", "1e-6"]))
    assert cut == {"stopped": True, "stage": "stage1", "epochs_done": 1, "out": str(tmp_path / "cut")}
    assert "stopped after epoch 1 of 3 of stage1" in capsys.readouterr().out
    assert not (tmp_path / "cut" / "state.json").exists() and not (tmp_path / "cut" / ".lock").exists()
    monkeypatch.undo()
    done = train(parse_config(TrainConfig, [*base, "--out", str(tmp_path / "cut"), "--resume"]))
    epochs = [pd.read_csv(tmp_path / run / "history.csv")[["stage", "epoch"]].values.tolist() for run in ("whole", "cut")]
    assert epochs[0] == epochs[1] == [["stage1", 1], ["stage1", 2], ["stage1", 3], ["stage2", 1], ["stage2", 2]]
    assert done["final_stage"] == whole["final_stage"] == "stage2"


def test_a_backup_damaged_by_a_kill_restarts_its_stage(tmp_path, capsys):
    """issue 12 #11: a kill while Keras wrote its backup in place left a file h5py cannot open on resume."""
    from src.training.history import discard_broken_backup

    run = saved_run(tmp_path, finished=(), weights=())
    run.backup("stage1").mkdir(parents=True)
    (run.backup("stage1") / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    run.stage_history("stage1").write_text("epoch,val_accuracy\n0,0.5\n")
    run.weights("stage1").write_bytes(b"best so far")
    discard_broken_backup(run, "stage1")
    assert not run.backup("stage1").exists() and not run.stage_history("stage1").exists()
    said = capsys.readouterr().out
    assert "stage1: its backup" in said and "the stage starts again from its beginning" in said
