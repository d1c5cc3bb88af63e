"""Bad input and faults (issue 12): each defect found by the probes, shown fixed.

Every test here failed on the code before the fix: a silent wrong result, a lost file or a
traceback where a sentence naming the file, column or flag is due.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from src.core.config import DataOptions, PipelineOptions, parse_config
from src.core.errors import KitError
from src.core.settings import ScreenConfig, TfrecordsConfig
from src.data.competition import load_competition
from src.data.splits import load_or_make_split
from tests.conftest import REPO, make_folder_competition, write_image


def csv_competition(root, rows, header="image_id,label", sample=None):
    """Write images/<id>.jpg for every row's first field and train.csv with the rows."""
    for row in rows:
        image_id = row.split(",")[0]
        if image_id:
            write_image(root / "images" / f"{image_id}.jpg")
    (root / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    if sample:
        (root / "sample_submission.csv").write_text(sample)
    return root


def test_zero_padded_labels_stay_text(tmp_path):
    """#4: labels "00".."09" were read as ints: the submission wrote "5" for "05"."""
    rows = [f"i{i},{i % 10:02d}" for i in range(20)]
    comp = load_competition(DataOptions(data=str(csv_competition(tmp_path / "c", rows))), with_test=False)
    assert comp.class_maps["label"].values[:3] == ("00", "01", "02")
    plain = load_competition(DataOptions(data=str(csv_competition(tmp_path / "p", [f"i{i},{i % 3}" for i in range(9)]))),
                             with_test=False)
    assert plain.class_maps["label"].values == (0, 1, 2)  # plain integers stay integers


def test_ids_and_na_labels_are_read_as_written(tmp_path):
    """#19: ids "000" were reported as '0'; a label "NA" was read as an empty value."""
    rows = ["000,NA", "001,NA", "002,cat", "003,cat"]
    comp = load_competition(DataOptions(data=str(csv_competition(tmp_path / "c", rows))), with_test=False)
    assert list(comp.train["id"]) == ["000", "001", "002", "003"]
    assert comp.class_maps["label"].values == ("NA", "cat")


def test_a_semicolon_csv_is_read(tmp_path):
    """#19: a semicolon CSV said "no label column besides 'image_id;label'"."""
    root = tmp_path / "c"
    for i in range(4):
        write_image(root / "images" / f"i{i}.jpg")
    (root / "train.csv").write_text("image_id;label\n" + "".join(f"i{i};{'ab'[i % 2]}\n" for i in range(4)))
    comp = load_competition(DataOptions(data=str(root)), with_test=False)
    assert comp.label_columns == ["label"] and comp.class_maps["label"].values == ("a", "b")


@pytest.mark.parametrize("rows, message", [
    (["i0,a", "i1,b", "i0,b"], "id 'i0' is listed with different labels (a, b)"),       # 8
    (["i0,a", ",b", "i2,a"], "empty id in column 'image_id' at row 3"),                  # 13
    (["i0,a", "i1,a", "i2,a"], "column label holds one class ('a')"),                    # 9
])
def test_bad_label_tables_are_named(tmp_path, rows, message):
    root = csv_competition(tmp_path / "c", rows)
    with pytest.raises(KitError) as err:
        load_competition(DataOptions(data=str(root)), with_test=False)
    assert message in str(err.value)


def test_an_id_that_names_two_files_is_refused(tmp_path):
    """#5: sample ids without extension with both 0003.jpg and 0003.png: one was picked by directory order."""
    root = make_folder_competition(tmp_path / "c", n_test=2)
    (root / "sample-submission.csv").write_text("Id,Category\nt0,0\nt1,0\n")
    write_image(root / "test_upload" / "t0.png")
    with pytest.raises(KitError, match=r"names image 't0', and .* holds t0.jpg and t0.png"):
        load_competition(DataOptions(data=str(root)))


def test_a_sample_submission_with_only_a_header(tmp_path):
    """#12: AttributeError."""
    root = make_folder_competition(tmp_path / "c")
    (root / "sample-submission.csv").write_text("Id,Category\n")
    with pytest.raises(KitError, match="only a header, no rows"):
        load_competition(DataOptions(data=str(root)))


@pytest.mark.parametrize("opts, message", [
    ({"min_class_count": 100}, "--min-class-count 100: every class of column Category has fewer images"),
    ({"folds": 7}, "--folds 7 needs at least 7 images per class"),
    ({"test_dir": "/missing/test"}, "--test-dir /missing/test: no such folder"),
    ({"label_column": "type"}, "--label-column type: names a column of a labels CSV, but"),
])
def test_settings_that_do_not_fit_the_data_are_named(tmp_path, opts, message):
    """#17 and #19: scikit-learn tracebacks, "pass --test-dir", "no training images"."""
    root = make_folder_competition(tmp_path / "c")
    with pytest.raises(KitError) as err:
        options = DataOptions(data=str(root), **opts)
        load_or_make_split(load_competition(options), options)
    assert message in str(err.value)


def test_data_naming_a_file(tmp_path):
    """#19: `--data` naming a file said "does not exist"."""
    (tmp_path / "train.csv").write_text("a,b\n")
    with pytest.raises(KitError, match="is a file: expected the competition's folder"):
        load_competition(DataOptions(data=str(tmp_path / "train.csv")))


def test_a_linked_image_outside_the_data_folder(tmp_path):
    """#14: a symlinked image pointing outside the data folder: ValueError in the split code."""
    root = make_folder_competition(tmp_path / "c")
    outside = write_image(tmp_path / "elsewhere" / "x.jpg")
    os.symlink(outside, root / "train" / "0" / "linked.jpg")
    opts = DataOptions(data=str(root))
    split = load_or_make_split(load_competition(opts), opts)
    assert "0/linked.jpg" in set(split["id"])


def test_the_disk_cache_sees_new_pixels_at_the_same_paths(tmp_path):
    """#7: --cache disk served old pixels after the images at the same paths changed."""
    from src.data.imagefiles import scan_images
    from src.pipeline.images import make_eval_dataset

    path = write_image(tmp_path / "a.png", size=(16, 16), colour=(10, 10, 10), pattern=False)
    opts = PipelineOptions(image_size=(8, 8), cache="disk", batch_size=1)

    def pixels():
        frame = scan_images([path])
        return next(iter(make_eval_dataset(frame, np.zeros(1, np.int32), opts)))[0].numpy().mean()

    assert abs(pixels() - 10) < 1
    time.sleep(0.01)
    write_image(path, size=(16, 16), colour=(200, 200, 200), pattern=False)
    assert abs(pixels() - 200) < 1


def test_tfrecords_never_writes_into_a_folder_it_did_not_make(tmp_path):
    """#3: src.tfrecords --out X overwrote an index.csv and config.json it did not write."""
    from src.data.shard_writer import write_shards

    root = make_folder_competition(tmp_path / "c")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.csv").write_text("my own notes\n")
    with pytest.raises(KitError, match="holds files this kit did not write"):
        write_shards(parse_config(TfrecordsConfig, ["--data", str(root), "--out", str(out)]))
    assert (out / "index.csv").read_text() == "my own notes\n" and sorted(p.name for p in out.iterdir()) == ["index.csv"]


def test_unpacking_goes_on_past_an_entry_it_cannot_write(tmp_path, capsys):
    """#16: a zip entry with a 300-character name: OSError, and the rest was not unpacked; #19: "./" is no escape."""
    from src.kaggle.archives import unpack

    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("./", "")
        zf.writestr("x" * 300 + ".jpg", "long")
        zf.writestr("train/a.jpg", "fine")
    counts = unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "train" / "a.jpg").read_text() == "fine"
    assert counts["written"] == 1 and counts["refused"] == ["x" * 300 + ".jpg"]
    assert "would land outside" not in capsys.readouterr().err


def test_screening_fails_when_every_backbone_failed(tmp_path):
    """#20: src.screen_backbones exited 0 when every backbone failed."""
    from src.training.screening import screen

    root = make_folder_competition(tmp_path / "c")
    cfg = parse_config(ScreenConfig, ["--data", str(root), "--backbones", "tiny_resnet", "--weights",
                                      str(tmp_path / "nothing.weights.h5"), "--image-size", "16", "16",
                                      "--out", str(tmp_path / "screen"), "--epochs", "1"])
    with pytest.raises(KitError, match="every backbone failed"):
        screen(cfg)
    assert (tmp_path / "screen" / "screening.csv").is_file()


def test_kaggle_api_help_is_help():
    """#19: `python -m src.kaggle_api --help` was an error."""
    result = subprocess.run([sys.executable, "-m", "src.kaggle_api", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "usage: python -m src.kaggle_api" in result.stdout


# ---------------------------------------------------------------- SIGKILL at several points

TRAIN = ["--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stage1-size", "16", "16",
         "--stage2-size", "20", "20", "--stage1-epochs", "3", "--stage2-epochs", "2", "--stage1-patience", "9",
         "--stage2-patience", "9", "--batch-size", "8", "--cache", "none"]


def start_training(comp, out, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "src.train", "--data", str(comp), "--out", str(out), *TRAIN,
                             "--resume"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(process, ready, timeout=240) -> int:
    """SIGKILL the process as soon as ready() holds; return its exit code (-9 when killed)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return process.wait(timeout=60)


def rows(path):
    return len(pd.read_csv(path)) if path.is_file() and path.stat().st_size else 0


def test_a_killed_training_resumes_to_the_same_epochs_with_every_file_readable(tmp_path):
    from src.inference.prediction import build_run_model, load_run

    comp = make_folder_competition(tmp_path / "c", per_class=6)
    out = tmp_path / "run"
    points = [lambda: rows(out / "history-stage1.csv") >= 1,          # mid stage 1
              lambda: (out / "state.json").is_file(),                  # stage 1 just finished
              lambda: rows(out / "history-stage2.csv") >= 1]           # mid stage 2
    for ready in points:
        assert kill_when(start_training(comp, out, tmp_path), ready) == -signal.SIGKILL
    final = start_training(comp, out, tmp_path)
    assert final.wait(timeout=300) == 0
    history = pd.read_csv(out / "history.csv")
    assert list(history["stage"]) == ["stage1"] * 3 + ["stage2"] * 2
    assert list(history["epoch"]) == [1, 2, 3, 1, 2]
    assert json.loads((out / "state.json").read_text())["finished"] == ["stage1", "stage2"]
    assert json.loads((out / "config.json").read_text())["stage2_size"] == [20, 20]
    assert not (out / ".lock").exists() and not list(out.glob(".*partial*"))
    build_run_model(load_run(out))  # the final weights load


@pytest.mark.parametrize("header, rows, what", [
    ("ImageId,EncodedPixels", [f"i{i},{i} 3 {i + 10} 4" for i in range(4)], "run-length encoded masks"),
    ("image_id,bbox", [f"i{i},[{i}, 4.0, 20, 30]" for i in range(4)], "bounding boxes"),
])
def test_a_target_the_kit_cannot_serve_is_named(tmp_path, header, rows, what):
    """issue 13: boxes and RLE masks get one error naming the column and what it holds (numbers are read as
    a number target since issue 31: tests/test_regression.py)."""
    root = csv_competition(tmp_path / "c", rows, header=header)
    with pytest.raises(KitError) as err:
        load_competition(DataOptions(data=str(root)), with_test=False)
    assert f"column {header.split(',')[1]!r} holds {what}" in str(err.value)
    assert "per-class probabilities, top-k labels or space-separated tags per image, or a number" in str(err.value)
