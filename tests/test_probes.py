"""Issue 24, items 2-15: what a hard week of real use broke, each a sentence now (names, paths, flags).

Cheap checks need no model; those that do share ONE tiny trained run (module fixture) and copy it
before changing anything. Read-only and full disks are injected (an OSError with that errno from
the write path, or a disk reported full): no mounts, no root tricks.
"""
from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil

import h5py
import keras
import pandas as pd
import pytest
import tensorflow as tf

from src.core.config import DataOptions, parse_config, save_config
from src.core.errors import KitError, run_cli
from src.core.settings import TrainConfig
from src.core.submit_settings import PredictConfig, SubmitConfig
from src.data.splits import make_split, prepare_split
from src.inference.prediction import build_run_model, load_run
from src.inference.submission import submit
from src.models.classifier import load_checked
from src.training.two_stage import train
from tests.conftest import COLOURS, make_folder_competition, write_image



def train_args(comp, out, *extra):
    return ["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
            "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "2", "--stage1-lr", "1e-2",
            "--batch-size", "8", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(competition, run folder): tiny_resnet at 16x16 on classes 0, 1, 2, one stage of two epochs."""
    root = tmp_path_factory.mktemp("probes")
    comp = make_folder_competition(root / "comp", per_class=8)
    train(parse_config(TrainConfig, train_args(comp, root / "run", "--split-file", str(root / "split.csv"))))
    return comp, root / "run"


def copy_run(trained, tmp_path):
    target = tmp_path / "run-copy"
    shutil.copytree(trained[1], target)
    return target


def submit_args(comp, run, out, *extra):
    return parse_config(SubmitConfig, ["--data", str(comp), "--run", str(run), "--out", str(out), "--name", "s",
                                       *extra])


def files_under(folder) -> dict:
    """Return {relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(pathlib.Path(folder).rglob("*"))
            if p.is_file()}


# ---------------------------------------------------------------- flags checked before anything is written
@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", "x\\y"])
def test_3_a_submission_name_that_is_a_path_is_refused_by_flag(tmp_path, name):
    with pytest.raises(KitError, match=r"--name: expected a file name without path separators or '\.\.', got"):
        parse_config(SubmitConfig, ["--run", "r", "--out", str(tmp_path / "a" / "b" / "subs"), "--name", name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cls, views, message", [
    (SubmitConfig, "identity,scale_0", "--tta-views: expected scale_P with P from 50 to 200, not 'scale_0'"),
    (SubmitConfig, "center_crop_150", "--tta-views: expected center_crop_P with P from 20 to 100, not 'center_crop_150'"),
    (PredictConfig, "hflip,zoom_2", "--tta-views: expected views identity, hflip, vflip, rot90, rot180, rot270, "
                                    "transpose, transpose_rot90, center_crop_P (P 20-100) or scale_P (P 50-200), each "
                                    "optionally @S (S times the run's size), not 'zoom_2'"),
])
def test_11_tta_views_are_checked_with_their_ranges(cls, views, message):
    with pytest.raises(KitError) as err:
        parse_config(cls, ["--run", "r", "--tta-views", views, *(["photo.jpg"] if cls is PredictConfig else [])])
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("flag", ["--stage1-size", "--stage2-size"])
def test_5_a_stage_size_no_accelerator_holds_is_refused(flag):
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, [flag, "10000", "10000"])
    assert str(err.value).startswith(f"{flag}: expected a size from 1 to 4096 pixels a side")
    assert parse_config(TrainConfig, [flag, "4096", "600"])  # large, yet allowed


def test_7_a_holdout_smaller_than_the_classes_says_which_fractions_work():
    train_frame = pd.DataFrame({"id": [f"{c}_{i}" for c in range(500) for i in range(2)],
                                "label": [c for c in range(500) for _ in range(2)]})
    with pytest.raises(KitError) as err:
        make_split(train_frame, "label", DataOptions(val_fraction=0.2))
    assert str(err.value) == ("--val-fraction 0.2: holds out 200 of 1000 images, but a stratified split needs one image "
                              "of each of the 500 classes on both sides: pass --val-fraction from 0.50 to 0.50")
    split = make_split(train_frame, "label", DataOptions(val_fraction=0.5))
    assert (split["fold"] == 0).sum() == 500 and split[split["fold"] == 0]["label"].nunique() == 500


def test_6_a_file_name_that_is_not_utf8_is_skipped_and_named(tmp_path, capsys):
    comp = make_folder_competition(tmp_path / "comp", per_class=4)
    good = comp / "train" / "1" / "1_0.jpg"
    os.rename(os.fsencode(good), os.fsencode(comp / "train" / "1") + b"/bad\xff.jpg")
    data = prepare_split(DataOptions(data=str(comp), split_file=str(tmp_path / "split.csv")))
    out = capsys.readouterr().out
    assert "warning: skipping 1 file(s): " in out
    assert "train/1/bad\\xff.jpg (its name is not valid UTF-8: rename the file)" in out
    assert len(data.split) == 11 and "bad" not in (tmp_path / "split.csv").read_text()


# ---------------------------------------------------------------- run folders: damaged files, other people's files
@pytest.mark.parametrize("resume", [False, True])
def test_13_a_folder_holding_only_notes_gets_one_true_sentence(tmp_path, resume):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    cfg = parse_config(TrainConfig, train_args(tmp_path / "nodata", out, *(["--resume"] if resume else [])))
    with pytest.raises(KitError) as err:
        train(cfg)
    assert str(err.value) == (f"{out} holds notes.txt but no training run (no config.json): train into an empty or "
                              "new --out; nothing was changed")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("damaged", ["config.json", "state.json"])
def test_10_a_damaged_run_file_is_named(tmp_path, damaged):
    run = tmp_path / "run"
    save_config(parse_config(TrainConfig, train_args(tmp_path / "comp", run)), run)
    (run / "state.json").write_text(json.dumps({"finished": ["stage1"], "best": {}}))
    (run / damaged).write_text('{"stage1_size": [16, 16],')  # cut off by a kill or an editor
    with pytest.raises(KitError) as err:
        load_run(run)
    assert str(err.value).startswith(f"{run / damaged}: damaged, not valid JSON (Expecting")
    assert "restore it from a copy, or train the run again into another --out" in str(err.value)


def test_14_a_damaged_class_map_is_named_not_the_weights(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    class_map = run / "class_map.json"
    class_map.write_text(class_map.read_text()[:40])
    with pytest.raises(KitError, match=f"^{class_map}: damaged \\("):
        load_run(run)
    shutil.copy(trained[1] / "class_map.json", class_map)
    payload = json.loads(class_map.read_text())
    payload["maps"][0]["values"] = payload["maps"][0]["values"][:2]  # a class lost: valid JSON, wrong content
    class_map.write_text(json.dumps(payload))
    with pytest.raises(KitError) as err:
        build_run_model(load_run(run))
    assert str(err.value) == (f"--run {run}: {class_map} lists 2 classes, but {run / 'stage1.weights.h5'} predicts 3: "
                              "class_map.json was changed or damaged after training; restore it from a copy, or "
                              "train the run again")


def test_4_weights_trained_at_another_size_than_the_config_says_are_refused(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "stage1_size": [64, 64]}))
    with pytest.raises(KitError) as err:
        build_run_model(load_run(run))
    assert str(err.value) == (f"--run {run}: {run / 'config.json'} says stage1 predicts at 64x64, but "
                              f"{run / 'stage1.weights.h5'} was trained at 16x16: the config was changed after "
                              "training; set stage1_size back to [16, 16]")


def test_4_weights_that_do_not_fit_the_model_name_the_layer_and_both_files(tmp_path):
    """What Keras raises for a misfit (ValueError: 'A total of 1 objects could not be loaded ...') as a sentence."""
    def model(classes):
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
        return keras.Model(inputs, keras.layers.Dense(classes, name="head")(x))

    model(3).save_weights(tmp_path / "a.weights.h5")
    with pytest.raises(KitError) as err:
        load_checked(model(4), tmp_path / "a.weights.h5", "run/config.json and run/class_map.json")
    assert str(err.value) == (f"{tmp_path / 'a.weights.h5'} does not fit the model run/config.json and "
                              "run/class_map.json describe (layer head: shape (4, 4) in the model, (4, 3) in the file): "
                              "one of them was changed after training; restore it, or train the run again")


# ---------------------------------------------------------------- submit: classes, --solution, read-only and full disks
def test_2_classes_the_run_never_learned_are_said_and_reported(trained, tmp_path, capsys):
    comp = tmp_path / "comp4"
    shutil.copytree(trained[0], comp)
    for i in range(8):
        write_image(comp / "train" / "3" / f"3_{i}.jpg", colour=COLOURS[3])
    submit(submit_args(comp, trained[1], tmp_path / "subs"))
    out = capsys.readouterr().out
    assert (f"warning: class(es) 3 of {comp} are not among the 3 classes the run(s) learned: they can never be "
            "predicted (the report lists them under never_predicted)") in out
    assert json.loads((tmp_path / "subs" / "s.json").read_text())["never_predicted"] == ["3"]


def test_12_a_solution_with_other_columns_is_refused_before_writing(trained, tmp_path):
    solution = tmp_path / "solution.csv"
    solution.write_text("image,label\nt0.jpg,0\n")
    with pytest.raises(KitError) as err:
        submit(submit_args(trained[0], trained[1], tmp_path / "subs", "--solution", str(solution)))
    assert str(err.value) == (f"--solution {solution}: expected columns Id and Category (as in sample-submission.csv), "
                              "found image, label")
    assert not (tmp_path / "subs").exists()


def refuse(monkeypatch, under, code, method="mkdir"):
    """Make pathlib's `method` raise OSError(code) for paths under `under`, as a read-only or full disk would."""
    original = getattr(pathlib.Path, method)

    def refused(self, *args, **kwargs):
        if str(self).startswith(str(under)):
            raise OSError(code, os.strerror(code), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, method, refused)


def test_8_a_read_only_out_is_one_line_in_train_and_submit(trained, tmp_path, monkeypatch, capsys):
    from src.submit import main as submit_main
    from src.train import main as train_main

    read_only = tmp_path / "ro"
    refuse(monkeypatch, read_only, errno.EROFS)
    code = run_cli(train_main, train_args(trained[0], read_only / "run", "--split-file", str(tmp_path / "s.csv")))
    assert code == 2
    assert capsys.readouterr().err == (f"error: cannot write {read_only / 'run'}: the file system is read-only: "
                                       "write to another folder (--out)\n")
    code = run_cli(submit_main, ["--data", str(trained[0]), "--run", str(trained[1]), "--out", str(read_only / "subs")])
    assert code == 2
    assert capsys.readouterr().err == (f"error: cannot write {read_only / 'subs'}: the file system is read-only: "
                                       "write to another folder (--out)\n")


def test_9_a_full_disk_during_submit_keeps_the_last_set_whole(trained, tmp_path, monkeypatch):
    out = tmp_path / "subs"
    submit(submit_args(trained[0], trained[1], out))
    before = files_under(out)
    original = pd.DataFrame.to_csv

    def full(self, path=None, *args, **kwargs):
        if str(path).endswith(".holdout.csv"):  # a later file of the set: the probabilities were written
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(KitError) as err:
        submit(submit_args(trained[0], trained[1], out, "--overwrite", "--tta"))
    assert str(err.value) == (f"cannot write {out / 's.*'}: no space left on the device: free some space or write to "
                              "another disk (--out); the files written before were kept")
    assert files_under(out) == before  # the last good set, byte for byte; no partial file, no zero-byte one
    assert all(content for content in before.values())


def test_9_a_full_disk_while_training_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    import src.training.callbacks as callbacks

    comp = make_folder_competition(tmp_path / "comp", per_class=8)
    run = tmp_path / "run"
    real = shutil.disk_usage
    epochs_done = []

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_done.append(epoch)

    def usage(path):  # the disk fills up during the second epoch
        total, used, free = found = real(path)
        return type(found)(total, used, free if len(epochs_done) < 1 else 1000)

    monkeypatch.setattr(callbacks.shutil, "disk_usage", usage)
    cfg = parse_config(TrainConfig, train_args(comp, run, "--stage1-epochs", "3"))
    with pytest.raises(KitError) as err:
        train(cfg, callbacks=[CountEpochs()])
    assert str(err.value).startswith(f"cannot write {run}: 0.0 MB free on its disk, and an epoch's weights and backup "
                                     "need about ")
    assert "continue with --resume; the files of the last finished epoch were kept" in str(err.value)
    history = pd.read_csv(run / "history-stage1.csv")
    assert list(history["epoch"]) == [0]  # the second epoch was not logged, nor checkpointed
    with h5py.File(run / "stage1.weights.h5", "r") as handle:
        assert list(handle.attrs["kit_image_size"]) == [16, 16]
    assert not [p for p in run.rglob("*") if p.is_file() and (p.stat().st_size == 0 or ".partial" in p.name)]

    # the write itself refused (the disk filled between the check and the write): a sentence, the file kept
    monkeypatch.setattr(callbacks.shutil, "disk_usage", real)
    saved = (run / "stage1.weights.h5").read_bytes()

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(kwargs.get("filepath", args and args[0])))

    monkeypatch.setattr(keras.Model, "save_weights", no_space)
    with pytest.raises(KitError) as err:
        train(parse_config(TrainConfig, train_args(comp, run, "--stage1-epochs", "3", "--resume")))
    assert str(err.value).startswith(f"cannot write {run}")
    assert "no space left on the device" in str(err.value)
    assert (run / "stage1.weights.h5").read_bytes() == saved
    assert not [p for p in run.rglob("*") if p.is_file() and (p.stat().st_size == 0 or ".partial" in p.name)]


# ---------------------------------------------------------------- training: out of memory ends at the minimum batch
class AlwaysOutOfMemory(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


def test_5_out_of_memory_ends_at_the_minimum_batch_with_a_sentence(tmp_path, capsys):
    comp = make_folder_competition(tmp_path / "comp", per_class=8)
    cfg = parse_config(TrainConfig, train_args(comp, tmp_path / "run", "--batch-size", "6", "--min-batch-size", "4"))
    with pytest.raises(KitError) as err:
        train(cfg, callbacks=[AlwaysOutOfMemory()])
    assert "stage1: out of memory at batch size 6; retrying the stage with batch size 4" in capsys.readouterr().out
    assert str(err.value) == ("stage1: out of memory at 16x16 even at batch size 4 (--min-batch-size 4): pass a "
                              "smaller --stage1-size, a smaller --backbone, or train on an accelerator with more memory")


# ---------------------------------------------------------------- Kaggle credentials
@pytest.mark.parametrize("content, message", [
    ('{"username": "tester", "key": "SECRET-KEY-123",}', "is malformed, not valid JSON (Expecting property name"),
    ('{"username": "tester"}', "is malformed, it has no key:"),
])
def test_15_a_malformed_kaggle_json_is_named_never_its_key(tmp_path, monkeypatch, capsys, content, message):
    from src.kaggle.client import credential_source

    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".kaggle" / "kaggle.json"
    config.parent.mkdir()
    config.write_text(content)
    config.chmod(0o644)
    with pytest.raises(KitError) as err:
        credential_source()
    assert str(err.value).startswith(f"{config} {message}")
    assert "SECRET-KEY-123" not in str(err.value)
    assert capsys.readouterr().err == (f"warning: {config} is readable by other users of this machine: run chmod 600 "
                                       f"{config}\n")
    config.write_text('{"username": "tester", "key": "SECRET-KEY-123"}')
    config.chmod(0o600)
    assert credential_source() == str(config)
    assert capsys.readouterr().err == ""
