"""Every kind of bad input gives one clear error naming the file or column and what was expected."""
import subprocess
import sys

import pytest

from src.data.competition import load_competition
from src.core.config import DataOptions
from src.core.errors import KitError
from tests.conftest import REPO, make_folder_competition, write_image


def load(root, **kw):
    return load_competition(DataOptions(data=str(root), **kw))


def test_missing_data_folder(tmp_path):
    with pytest.raises(KitError, match=f"data folder {tmp_path / 'nope'} does not exist"):
        load(tmp_path / "nope")


def test_missing_data_folder_from_the_command_line_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "src.eda", "--data", str(tmp_path / "nope")],
                            cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.startswith("error: data folder") and "Traceback" not in result.stderr


def test_commands_print_their_own_lines_not_tensorflows_start_up(tmp_path):
    """issue 12 #21: every command printed TensorFlow's C++ start-up lines, a red cuInit error among them."""
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run([sys.executable, "-m", "src.train", "--data", str(tmp_path / "nope"),
                             "--out", str(tmp_path / "run")], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: data folder"), result.stderr
    assert "I0000" not in result.stderr and "cuInit" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_log_filter_drops_only_cpp_start_up_lines():
    from src.core.console import is_noise

    assert is_noise(b"I0000 00:00:1795323321.474817   16757 port.cc:153] oneDNN custom operations are on.")
    assert is_noise(b"E0000 00:00:1795323322.970898   16757 cuda_platform.cc:52] failed call to cuInit: INTERNAL")
    assert is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_noise(b"E0000 00:00:1795323322.970898   16757 bfc_allocator.cc:52] Out of memory")
    assert not is_noise(b"Traceback (most recent call last):")
    assert not is_noise(b"error: data folder x does not exist")


def test_no_training_images(tmp_path):
    (tmp_path / "c" / "train").mkdir(parents=True)
    with pytest.raises(KitError, match="no training images"):
        load(tmp_path / "c")


def test_empty_class_folder(tmp_path):
    root = make_folder_competition(tmp_path / "c")
    (root / "train" / "3").mkdir()
    with pytest.raises(KitError, match=r"class folder .*train/3 is empty: expected image files"):
        load(root)


@pytest.mark.parametrize("name, content, why", [
    ("zero.jpg", b"", "empty file (0 bytes)"),
    ("corrupt.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg at all", "corrupt or truncated image"),
    ("truncated.jpg", None, "corrupt or truncated image"),
    ("notes.txt", b"hello", "not an image file: expected one of .jpg"),
])
def test_bad_training_file_is_skipped_and_reported_or_fatal_when_strict(tmp_path, capsys, name, content, why):
    root = make_folder_competition(tmp_path / "c")
    path = root / "train" / "1" / name
    if content is None:
        good = write_image(tmp_path / "big.jpg", size=(64, 64), pattern=False).read_bytes()
        content = good[: len(good) // 2]
    path.write_bytes(content)
    comp = load(root)
    assert len(comp.train) == 18 and list(comp.skipped["path"]) == [str(path)]
    out = capsys.readouterr().out
    assert f"warning: skipping 1 file(s): {path} ({why}" in out
    with pytest.raises(KitError, match=f"bad training images \\(--strict-images\\): 1 file\\(s\\): {path}"):
        load(root, strict_images=True)


def test_bad_test_image_is_fatal(tmp_path):
    root = make_folder_competition(tmp_path / "c")
    (root / "test_upload" / "t2.jpg").write_bytes(b"")
    with pytest.raises(KitError, match=r"bad test images \(a submission needs every row\).*t2.jpg \(empty file"):
        load(root)


def test_csv_without_the_named_column(csv_comp):
    with pytest.raises(KitError, match=r"train.csv: no column 'type': expected one of filename, make_id"):
        load(csv_comp, label_column="type")
    with pytest.raises(KitError, match=r"train.csv: no column 'fname'"):
        load(csv_comp, id_column="fname", label_column="model_id")


def test_csv_row_whose_image_is_missing(csv_comp, capsys):
    (csv_comp / "images" / "img13.jpg").unlink()
    with pytest.raises(KitError, match=r"bad training images \(--strict-images\): 1 file\(s\): .*images/img13 "
                                       r"\(no such file\)"):
        load(csv_comp, label_column="model_id", images_dir=str(csv_comp / "images"), strict_images=True)
    comp = load(csv_comp, label_column="model_id", images_dir=str(csv_comp / "images"))
    assert "img13" not in set(comp.train["id"]) and len(comp.train) == 17
    assert "warning: skipping 1 file(s): " in capsys.readouterr().out


def test_csv_listing_missing_images_names_them_and_skips_them(tmp_path, capsys):
    """Issue 24 item 16: 6 listed images are missing (one among the first five ids, not the first id): the
    folder is still found, the six are named and skipped like corrupt images, or refused with --strict-images."""
    root = tmp_path / "driver"
    names = [f"c{i % 2}_{i:04d}.jpg" for i in range(40)]
    for i, name in enumerate(names):
        write_image(root / "train" / name, colour=(200, 30, 30) if i % 2 else (30, 30, 200))
    (root / "driver_imgs_list.csv").write_text("img,classname\n" + "".join(f"{n},c{i % 2}\n"
                                                                          for i, n in enumerate(names)))
    write_image(root / "test" / "img_1.jpg")
    (root / "sample_submission.csv").write_text("img,classname\nimg_1.jpg,c0\n")
    gone = [names[i] for i in (2, 7, 11, 19, 26, 33)]
    for name in gone:
        (root / "train" / name).unlink()
    with pytest.raises(KitError) as err:
        load(root, strict_images=True)
    assert str(err.value).startswith("bad training images (--strict-images): 6 file(s): ")
    assert all(f"/train/{name} (no such file)" in str(err.value) for name in gone)
    comp = load(root)
    out = capsys.readouterr().out
    assert "warning: skipping 6 file(s): " in out and all(f"{name} (no such file)" in out for name in gone)
    assert "cannot find the images" not in out and len(comp.train) == 34 and not set(gone) & set(comp.train["id"])
    assert len(comp.skipped) == 6 and set(comp.skipped["error"]) == {"no such file"}


def test_duplicate_ids_in_sample_submission(tmp_path):
    root = make_folder_competition(tmp_path / "c", test_order=["t0.jpg", "t1.jpg", "t0.jpg"])
    with pytest.raises(KitError, match=r"sample-submission.csv: duplicate id 't0.jpg' in column Id \(row 4"):
        load(root)


def test_sample_submission_id_without_test_image(tmp_path):
    root = make_folder_competition(tmp_path / "c", test_order=["t0.jpg", "t9.jpg"])
    with pytest.raises(KitError, match=r"row 3 names image 't9.jpg', but no such file is in .*test_upload"):
        load(root)


def test_unsupported_format_is_named(tmp_path):
    root = make_folder_competition(tmp_path / "c")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "train" / "0" / "x.jpg", format="TIFF")
    with pytest.raises(KitError, match="TIFF images cannot be decoded by TensorFlow"):
        load(root, strict_images=True)
