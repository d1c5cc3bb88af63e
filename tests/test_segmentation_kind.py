"""Segmentation as a task kind (issue 40): a HuBMAP-like and a Severstal-like folder read as masks, trained tiny
(a U-Net on tiny_resnet, 1 + 1 epochs at 24 then 32 px) and submitted as the sample's run-length rows."""
from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.core.config import DataOptions, parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.core.submit_settings import SubmitConfig
from src.data.competition import load_competition
from src.inference.submission import submit
from src.kinds.segmentation.rle import decode, encode
from src.training.two_stage import train

TINY = ["--backbone", "tiny_resnet", "--weights", "none", "--stage1-size", "24", "24", "--stage2-size", "32", "32",
        "--stage1-epochs", "1", "--stage2-epochs", "1", "--batch-size", "8"]


def blob_image(path, size, box, rng) -> np.ndarray:
    """Write an RGB image of size (height, width), bright inside box (top, left, bottom, right); return its mask."""
    height, width = size
    pixels = rng.integers(20, 70, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    if box is not None:
        top, left, bottom, right = box
        pixels[top:bottom, left:right] = rng.integers(190, 250, (bottom - top, right - left, 3), dtype=np.uint8)
        mask[top:bottom, left:right] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return mask


def random_box(size, rng):
    height, width = size
    top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    return top, left, top + int(rng.integers(4, height // 2)), left + int(rng.integers(4, width // 2))


def write_metric(root, name: str) -> None:
    (root / "kaggle_metric.json").write_text(json.dumps({"competition": root.name, "evaluation_metric": name}))


def make_hubmap(root, images: int = 20, bad_row: int | None = None):
    """HuBMAP-like: train/<id>.png of three sizes, train.csv id,organ,img_height,img_width,rle (a third empty),
    test/<id>.png, sample_submission.csv id,rle, kaggle_metric.json naming Dice."""
    rng = np.random.default_rng(0)
    sizes = [(32, 32), (40, 48), (48, 36)]
    rows = []
    for i in range(images):
        size = sizes[i % 3]
        box = None if i % 3 == 2 else random_box(size, rng)
        mask = blob_image(root / "train" / f"{1000 + i}.png", size, box, rng)
        text = "1 2 3" if i == bad_row else encode(mask)
        rows.append({"id": str(1000 + i), "organ": ["kidney", "lung"][i % 2], "img_height": size[0],
                     "img_width": size[1], "rle": text})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test_ids = [str(2000 + i) for i in range(5)]
    for i, image_id in enumerate(test_ids):
        blob_image(root / "test" / f"{image_id}.png", sizes[i % 3], random_box(sizes[i % 3], rng), rng)
    pd.DataFrame({"id": test_ids, "rle": ""}).to_csv(root / "sample_submission.csv", index=False)
    write_metric(root, "Dice")
    return root


def make_severstal(root, images: int = 20):
    """Severstal-like: train_images/<hex>.jpg (32x64), train.csv ImageId,ClassId,EncodedPixels a row per image and
    class present (images without a row: empty), test_images/, sample ImageId,EncodedPixels,ClassId with '1 1'."""
    rng = np.random.default_rng(1)
    size, rows = (32, 64), []
    for i in range(images):
        name = f"{i:04x}ab.jpg"
        box = None if i % 4 == 3 else random_box(size, rng)
        mask = blob_image(root / "train_images" / name, size, box, rng)
        if box is not None:
            rows.append({"ImageId": name, "ClassId": 1 + i % 2, "EncodedPixels": encode(mask)})
            if i % 5 == 0:  # a second class on some images
                rows.append({"ImageId": name, "ClassId": 3, "EncodedPixels": encode(mask[:, ::-1] * (mask[:, ::-1]))})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test_ids = [f"t{i}.jpg" for i in range(4)]
    for image_id in test_ids:
        blob_image(root / "test_images" / image_id, size, random_box(size, rng), rng)
    sample = [{"ImageId": image_id, "EncodedPixels": "1 1", "ClassId": c} for image_id in test_ids for c in (1, 2, 3)]
    pd.DataFrame(sample).to_csv(root / "sample_submission.csv", index=False)
    write_metric(root, "Mean Dice Coefficient")
    return root


@contextlib.contextmanager
def inside(folder):
    """Run in `folder` (runs/splits lands there), the lines printed kept."""
    before, out = os.getcwd(), io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out):
            yield out
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both folders trained tiny and submitted with --tta, once for the module: {name: (data, run, sub, printed)}."""
    found = {}
    for name, make in (("hubmap", make_hubmap), ("severstal", make_severstal)):
        base = tmp_path_factory.mktemp(name)
        data, run, subs = make(base / "data"), base / "run", base / "subs"
        with inside(base) as out:
            summary = train(parse_config(TrainConfig, ["--data", str(data), *TINY, "--out", str(run)]))
            result = submit(parse_config(SubmitConfig, ["--data", str(data), "--run", str(run), "--tta",
                                                        "--out", str(subs), "--name", name]))
        found[name] = {"data": data, "run": run, "result": result, "summary": summary, "out": out.getvalue()}
    return found


def test_hubmap_like_folder_reads_as_segmentation_trains_and_submits(trained):
    got = trained["hubmap"]
    out, run = got["out"], got["run"]
    assert "task: segmentation, a mask per image in column rle, 1 class (mask), 6 of 20 images without a mask " \
           "(read from the labels)" in out
    assert "metric: dice (Kaggle's evaluation metric 'Dice' in" in out
    assert "segmentation: a U-Net on tiny_resnet at 24x24, 32x32" in out
    assert "post-processing chosen on the holdout (4 images, each at its own size): mean Dice" in out
    assert "reference: the empty mask for every image and class scores dice" in out
    settings = json.loads((run / "segmentation.json").read_text())
    assert settings["classes"] == ["mask"] and settings["order"] == "column" and len(settings["rules"]) == 1
    assert set(settings["rules"][0]) == {"threshold", "min_size", "gate"}
    assert json.loads((run / "config.json").read_text())["task"] == "segmentation"
    history = pd.read_csv(run / "history.csv")
    assert "val_dice" in history.columns and list(history["stage"]) == ["stage1", "stage2"]
    assert got["summary"]["holdout_score"] is not None and got["summary"]["reference"].startswith("the empty mask")
    frame = pd.read_csv(got["result"]["path"], dtype=str, keep_default_na=False)
    sample = pd.read_csv(got["data"] / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["id", "rle"] and list(frame["id"]) == list(sample["id"])
    for image_id, text in zip(frame["id"], frame["rle"]):
        with Image.open(got["data"] / "test" / f"{image_id}.png") as img:
            width, height = img.size
        assert decode(text, (height, width)).shape == (height, width)  # valid for the image's own size
    manifest = json.loads((got["run"].parent / "subs" / "hubmap.json").read_text())
    assert manifest["task"] == "segmentation" and manifest["views"] == ["identity", "hflip", "vflip"]
    assert manifest["postprocess"]["rules"] == settings["rules"]  # the run's chosen values, applied
    assert "3 view(s) averaged (identity+hflip+vflip)" in out
    assert "reference: the empty mask for every image and class scores dice" in out.split("[1/1]")[1]


def test_severstal_like_folder_writes_a_row_per_image_and_class(trained):
    got = trained["severstal"]
    out = got["out"]
    assert "task: segmentation, a mask per image in column EncodedPixels, 3 classes (1, 2, 3), 5 of 20 images " \
           "without a mask (read from the labels)" in out
    assert "images without rows taken as empty masks" in out
    assert "metric: dice (Kaggle's evaluation metric 'Mean Dice Coefficient'" in out
    frame = pd.read_csv(got["result"]["path"], dtype=str, keep_default_na=False)
    sample = pd.read_csv(got["data"] / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["ImageId", "EncodedPixels", "ClassId"]
    assert frame[["ImageId", "ClassId"]].values.tolist() == sample[["ImageId", "ClassId"]].values.tolist()
    assert "1 1" not in set(frame["EncodedPixels"])  # the sample's placeholder is no answer; empty: an empty cell
    for text in frame["EncodedPixels"]:
        assert decode(text, (32, 64)).shape == (32, 64)
    assert "12 rows (a row per image and class (ClassId))" in out


def test_a_bad_run_length_row_is_named_before_training(tmp_path):
    data = make_hubmap(tmp_path / "bad", images=9, bad_row=4)
    with pytest.raises(KitError, match=r"train.csv: row 6 \(id '1004'\): 3 numbers in the run-length string"):
        load_competition(DataOptions(data=str(data)), with_test=False)


def test_a_row_per_image_and_class_sample_is_one_test_image_per_id(tmp_path):
    data = make_severstal(tmp_path / "sev", images=8)
    comp = load_competition(DataOptions(data=str(data)))
    assert comp.schema.rows == "a row per image and class (ClassId)"
    assert list(comp.test["id"]) == ["t0.jpg", "t1.jpg", "t2.jpg", "t3.jpg"] and len(comp.schema.sample) == 12


def test_masks_without_a_run_length_sample_are_refused_naming_how_they_read(tmp_path):
    """No sample submission: the masks are refused as labels, with the way to read them as segmentation."""
    data = make_hubmap(tmp_path / "hub", images=6)
    (data / "sample_submission.csv").unlink()
    with pytest.raises(KitError, match=r"column 'rle' holds run-length encoded masks .* asks for run-length strings"):
        load_competition(DataOptions(data=str(data)), with_test=False)
    comp = load_competition(parse_config(TrainConfig, ["--data", str(data), "--task", "segmentation"]),
                            with_test=False)
    assert comp.class_maps["rle"].task == "segmentation" and comp.target == "rle"
    (data / "train.csv").write_text("id,label\n" + "".join(f"{1000 + i},a\n" for i in range(6)))
    with pytest.raises(KitError, match="--task segmentation: no masks in .*: expected a labels CSV with a run-length"):
        load_competition(parse_config(TrainConfig, ["--data", str(data), "--task", "segmentation"]), with_test=False)


def test_a_label_sample_listing_an_id_twice_is_still_refused(tmp_path):
    data = make_hubmap(tmp_path / "hub", images=6)
    (data / "sample_submission.csv").write_text("id,label\n2000,a\n2000,b\n")
    with pytest.raises(KitError, match=r"duplicate id '2000' in column id \(row 3 of the file\): expected each id once"):
        load_competition(DataOptions(data=str(data)))


def test_what_a_mask_run_cannot_do_is_refused_by_name(trained, tmp_path):
    """Each job a mask run cannot serve says so before it predicts or writes anything."""
    from src.core.settings import ScreenConfig
    from src.core.submit_settings import PredictConfig
    from src.inference.image_predictions import print_predictions
    from src.training.screening import screen

    got = trained["hubmap"]
    data, run = got["data"], got["run"]
    with pytest.raises(KitError, match=r"src.predict prints classes; --run .* holds masks \(segmentation\): python -m "
                                       "src.submit"):
        print_predictions(parse_config(PredictConfig, ["--run", str(run), str(data / "test" / "2000.png")]))
    with pytest.raises(KitError, match="src.screen_backbones ranks heads on pooled features; segmentation trains"):
        screen(parse_config(ScreenConfig, ["--data", str(data), "--backbones", "tiny_resnet", "--weights", "none",
                                           "--out", str(tmp_path / "screen")]))
    with pytest.raises(KitError, match="--extra-data: column rle holds a mask per image .* does not support yet"):
        train(parse_config(TrainConfig, ["--data", str(data), *TINY, "--extra-data", str(data),
                                         "--out", str(tmp_path / "extra")]))
    with pytest.raises(KitError, match="segmentation TTA view 'center_crop_90': expected one of identity, hflip"):
        submit(parse_config(SubmitConfig, ["--data", str(data), "--run", str(run), "--tta-views", "center_crop_90",
                                           "--out", str(tmp_path / "subs")]))
    assert not (tmp_path / "subs").exists() and not (tmp_path / "extra" / "config.json").exists()


def test_the_segmentation_demo_is_built_embedded_and_reads_as_masks(tmp_path, capsys):
    """python -m src.demo --task segmentation: digits' strokes as masks in HuBMAP's layout, no download."""
    from src.demo import main

    out = main(["--task", "segmentation", "--out", str(tmp_path / "demo")])
    assert "demo: wrote 384 training and 96 test images with their digits' strokes as masks" in capsys.readouterr().out
    comp = load_competition(DataOptions(data=str(out)))
    assert comp.target == "rle" and comp.class_maps["rle"].task == "segmentation" and len(comp.test) == 96
    solution = pd.read_csv(out / "solution.csv", dtype=str, keep_default_na=False)
    assert list(solution["id"]) == list(comp.test["id"]) and (solution["rle"] == "").sum() == 12
    main(["--task", "segmentation", "--out", str(out)])
    assert "already holds this demo" in capsys.readouterr().out
