"""Submission formats end to end (issue 13), each in its public competition's own file layout.

Generated images whose colour tells the class, trained briefly, submitted with no format flag:
the format is read from the sample submission and the holdout is scored with its metric.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.core.submit_settings import SubmitConfig
from src.inference.metrics import score
from src.inference.submission import submit
from src.training.two_stage import train
from tests.conftest import write_image

PALETTE = [(220, 40, 40), (40, 200, 60), (50, 60, 230), (230, 220, 40), (200, 60, 200), (40, 210, 210)]
TRAIN = ["--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages", "1",
         "--stage1-size", "16", "16", "--stage1-epochs", "8", "--stage1-lr", "2e-3", "--batch-size", "8"]
# A network a few steps from random weights is overconfident and its BatchNorm statistics lag:
# a gentle rate over a few more epochs keeps the holdout scores above chance run after run.


def train_and_submit(root, tmp_path, *submit_flags):
    train(parse_config(TrainConfig, ["--data", str(root), "--out", str(tmp_path / "run"), *TRAIN,
                                     "--split-file", str(tmp_path / "split.csv")]))
    result = submit(parse_config(SubmitConfig, ["--data", str(root), "--run", str(tmp_path / "run"),
                                                "--out", str(tmp_path / "subs"), "--name", "s", *submit_flags]))
    written = pd.read_csv(tmp_path / "subs" / "s.csv", dtype=str, keep_default_na=False)
    report = json.loads((tmp_path / "subs" / "s.json").read_text())
    return result, written, report


def test_probability_of_the_positive_class_aerial_cactus_layout(tmp_path):
    """Aerial Cactus Identification: train/ (flat), train.csv id,has_cactus, test/, sample with 0.5: ROC AUC."""
    root = tmp_path / "aerial-cactus-identification"
    rows = []
    for i in range(32):
        label = i % 2
        write_image(root / "train" / f"c{i:03d}.jpg", colour=PALETTE[label], size=(20, 20))
        rows.append(f"c{i:03d}.jpg,{label}")
    (root / "train.csv").write_text("id,has_cactus\n" + "\n".join(rows) + "\n")
    ids = [f"t{i:02d}.jpg" for i in range(6)]
    for i, image_id in enumerate(ids):
        write_image(root / "test" / image_id, colour=PALETTE[i % 2], size=(20, 20))
    (root / "sample_submission.csv").write_text("id,has_cactus\n" + "".join(f"{i},0.5\n" for i in ids))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written.columns) == ["id", "has_cactus"] and list(written["id"]) == ids
    values = written["has_cactus"].astype(float)
    assert values.between(0, 1).all() and not set(values) <= {0.0, 1.0}  # probabilities, not hard labels
    assert report["metric"] == "auc" and result["scores"][-1]["score"] > 0.5


def test_top_k_labels_humpback_layout(tmp_path):
    """Humpback Whale Identification: train.csv Image,Id (Id is the whale), sample of 5 labels: MAP@5."""
    root = tmp_path / "humpback-whale-identification"
    whales = ["new_whale", "w_1a2b", "w_3c4d", "w_5e6f", "w_7a8b", "w_9c0d"]
    rows = []
    for i in range(36):
        whale = i % len(whales)
        write_image(root / "train" / f"{i:04x}.jpg", colour=PALETTE[whale], size=(20, 20))
        rows.append(f"{i:04x}.jpg,{whales[whale]}")
    (root / "train.csv").write_text("Image,Id\n" + "\n".join(rows) + "\n")
    ids = [f"f{i:03d}.jpg" for i in range(6)]
    for i, image_id in enumerate(ids):
        write_image(root / "test" / image_id, colour=PALETTE[i], size=(20, 20))
    (root / "sample_submission.csv").write_text(
        "Image,Id\n" + "".join(f"{i},new_whale w_1a2b w_3c4d w_5e6f w_7a8b\n" for i in ids))
    result, written, report = train_and_submit(root, tmp_path)
    tokens = written["Id"].str.split()
    assert (tokens.str.len() == 5).all() and all(len(set(t)) == 5 and set(t) <= set(whales) for t in tokens)
    chance = sum(1 / r for r in range(1, 6)) / len(whales)  # a random ranking's MAP@5
    assert report["metric"] == "map@5" and result["scores"][-1]["score"] > chance


def test_one_probability_column_per_class(tmp_path):
    """A sample with one column per class (Plant Pathology 2020's shape): rows sum to 1, scored by log loss."""
    root = tmp_path / "per-class"
    classes = ["healthy", "rust", "scab"]
    for c, name in enumerate(classes):
        for i in range(12):
            write_image(root / "train" / name / f"{name}{i}.jpg", colour=PALETTE[c], size=(20, 20))
    ids = [f"Test_{i}" for i in range(6)]
    for i, image_id in enumerate(ids):
        write_image(root / "test" / f"{image_id}.jpg", colour=PALETTE[i % 3], size=(20, 20))
    (root / "sample_submission.csv").write_text("image_id,healthy,rust,scab\n" +
                                                "".join(f"{i},0.33,0.33,0.34\n" for i in ids))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written.columns) == ["image_id", "healthy", "rust", "scab"]
    probs = written[classes].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert report["metric"] == "log_loss" and result["scores"][-1]["score"] < math.log(3)


def test_a_format_that_does_not_fit_the_classes_is_named(tmp_path):
    from src.data.competition import ClassMap, SubmissionSchema
    from src.inference.formats import detect_format

    sample = pd.DataFrame({"id": ["a", "b"], "label": ["0.5", "0.5"]})
    schema = SubmissionSchema(tmp_path / "sample.csv", "id", "label", ("a", "b"), sample)
    with pytest.raises(KitError, match="a probability column needs a binary target; label has 3 classes"):
        detect_format(schema, ClassMap("label", (0, 1, 2)), "probability")
    assert detect_format(schema, ClassMap("label", (0, 1))).name == "probability"


@pytest.mark.parametrize("classes, filled", [
    (("Black-grass", "Charlock", "Common Chickweed", "Sugar beet"), "Sugar beet"),      # Plant Seedlings
    (("Audi A4 Sedan 2012", "BMW M3 Coupe 2012", "Tesla Model S Sedan 2012"), "Audi A4 Sedan 2012"),  # Stanford Cars
])
def test_class_names_with_spaces_are_labels_not_top_k(tmp_path, classes, filled):
    """Issue 24 item 1: a sample whose values are class names is a label submission, spaces or not."""
    from src.data.competition import ClassMap, SubmissionSchema
    from src.inference.formats import check_submission, detect_format, fill_submission

    sample = pd.DataFrame({"file": ["a.png", "b.png", "c.png"], "species": [filled] * 3})
    schema = SubmissionSchema(tmp_path / "sample.csv", "file", "species", tuple(sample["file"]), sample)
    class_map = ClassMap("species", classes)
    fmt = detect_format(schema, class_map)
    assert fmt.name == "label" and fmt.metric == "accuracy"
    probs = np.eye(len(classes))[[1, 0, len(classes) - 1]]
    frame = fill_submission(schema, probs, class_map, fmt)
    check_submission(frame, schema, class_map, fmt)
    assert list(frame["species"]) == [classes[1], classes[0], classes[-1]]


def test_top_k_needs_several_known_classes_per_value(tmp_path):
    from src.data.competition import ClassMap, SubmissionSchema
    from src.inference.formats import detect_format

    class_map = ClassMap("Id", ("new_whale", "w_1", "w_2", "w_3"))

    def guessed(value):
        sample = pd.DataFrame({"Image": ["a.jpg", "b.jpg"], "Id": [value] * 2})
        return detect_format(SubmissionSchema(tmp_path / "s.csv", "Image", "Id", ("a.jpg", "b.jpg"), sample),
                             class_map)

    assert (guessed("new_whale w_1 w_2").name, guessed("new_whale w_1 w_2").k) == ("top-k", 3)
    assert guessed("new_whale w_9 w_1").name == "top-k"        # a whale the training set lacks is allowed
    assert guessed("Audi A4 Sedan").name == "label"             # several words, no known class: not top-k
    assert guessed("new_whale w_9").name == "label"             # one known class is not several


def test_metrics_against_hand_computed_values():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    y = np.array([0, 1, 2])
    assert score(probs, y, "accuracy") == pytest.approx(1 / 3)
    assert score(probs, y, "map@3") == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert score(probs, y, "map@1") == pytest.approx(1 / 3)
    assert score(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]), "auc") == pytest.approx(1.0)
    from sklearn.metrics import cohen_kappa_score

    assert score(probs, y, "qwk") == pytest.approx(cohen_kappa_score(y, [0, 2, 0], weights="quadratic"))
    assert score(np.eye(3)[[0, 1, 2]], y, "qwk") == pytest.approx(1.0)
    with pytest.raises(KitError, match="--metric top5: expected one of"):
        score(probs, y, "top5")


def test_labels_in_file_names_dogs_vs_cats_layout(tmp_path):
    """Dogs vs. Cats Redux: train/cat.0.jpg, train/dog.0.jpg, test/1.jpg, sample id,label = P(dog)."""
    root = tmp_path / "dogs-vs-cats-redux-kernels-edition"
    for i in range(16):
        write_image(root / "train" / f"cat.{i}.jpg", colour=PALETTE[0], size=(20, 20))
        write_image(root / "train" / f"dog.{i}.jpg", colour=PALETTE[1], size=(20, 20))
    for i in range(1, 7):
        write_image(root / "test" / f"{i}.jpg", colour=PALETTE[i % 2], size=(20, 20))
    (root / "sample_submission.csv").write_text("id,label\n" + "".join(f"{i},0.5\n" for i in range(1, 7)))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written["id"]) == [str(i) for i in range(1, 7)]
    dog = written["label"].astype(float).to_numpy()
    # P(dog), odd test images are dogs: every dog ranked above every cat (test AUC 1, the metric). Not a
    # margin or a threshold at 0.5: a few epochs from random weights may rank right while still close to
    # 0.5 everywhere (a mean gap of 0.05 failed once at 0.046 with the ranking right).
    odd = np.arange(1, 7) % 2 == 1
    assert dog[odd].min() > dog[~odd].max(), dog
    assert report["metric"] == "auc" and result["scores"][-1]["score"] > 0.5


def test_one_hot_labels_and_one_image_folder_plant_pathology_layout(tmp_path):
    """Plant Pathology 2020: images/Train_i.jpg and images/Test_i.jpg together, one-hot train.csv, test.csv."""
    root = tmp_path / "plant-pathology-2020-fgvc7"
    classes = ["healthy", "multiple_diseases", "rust", "scab"]
    rows = []
    for i in range(40):
        c = i % 4
        write_image(root / "images" / f"Train_{i}.jpg", colour=PALETTE[c], size=(20, 20))
        rows.append(f"Train_{i}," + ",".join("1" if j == c else "0" for j in range(4)))
    (root / "train.csv").write_text("image_id," + ",".join(classes) + "\n" + "\n".join(rows) + "\n")
    ids = [f"Test_{i}" for i in range(8)]
    for i, image_id in enumerate(ids):
        write_image(root / "images" / f"{image_id}.jpg", colour=PALETTE[i % 4], size=(20, 20))
    (root / "test.csv").write_text("image_id\n" + "\n".join(ids) + "\n")
    (root / "sample_submission.csv").write_text("image_id," + ",".join(classes) + "\n" +
                                                "".join(f"{i},0.25,0.25,0.25,0.25\n" for i in ids))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written.columns) == ["image_id", *classes] and list(written["image_id"]) == ids
    probs = written[classes].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert report["metric"] == "log_loss" and result["scores"][-1]["score"] < math.log(4)


def test_pixel_csvs_digit_recognizer_layout(tmp_path):
    """Digit Recognizer: train.csv label,pixel0..pixelN, test.csv of pixels, sample ImageId 1..N: images cached."""
    root = tmp_path / "digit-recognizer"
    root.mkdir()
    rng = np.random.default_rng(0)
    header = ",".join(f"pixel{i}" for i in range(64))

    def pixels(c):  # class c: a bright bar in column band c, noise elsewhere
        image = rng.integers(0, 40, size=(8, 8))
        image[:, 3 * c: 3 * c + 2] = 250
        return ",".join(map(str, image.ravel()))

    (root / "train.csv").write_text("label," + header + "\n" + "".join(f"{i % 3},{pixels(i % 3)}\n" for i in range(36)))
    truth = [i % 3 for i in range(6)]
    (root / "test.csv").write_text(header + "\n" + "".join(f"{pixels(c)}\n" for c in truth))
    (root / "sample_submission.csv").write_text("ImageId,Label\n" + "".join(f"{i},0\n" for i in range(1, 7)))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written["ImageId"]) == [str(i) for i in range(1, 7)] and set(written["Label"]) <= {"0", "1", "2"}
    assert report["metric"] == "accuracy" and result["scores"][-1]["score"] > 1 / 3
    assert len(list((tmp_path / "runs" / "pixels").rglob("*.png"))) == 36 + 6  # written once, in the cache


PLANET_TAGS = ["clear", "haze", "primary", "road", "water"]


def planet_image(path, tags):
    """Write a 20x20 image whose parts say its tags: weather in the background colour, land features as bars."""
    array = np.full((20, 20, 3), 90 if "haze" in tags else 200, dtype=np.uint8)
    array[:, :, 2] = 230 if "clear" in tags else 40
    if "primary" in tags:
        array[:7, :, 1] = 255
    if "road" in tags:
        array[:, 9:12] = 0
    if "water" in tags:
        array[13:, :, 0] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(array).save(path)


def test_multi_label_tags_planet_layout(tmp_path):
    """Planet: train_v2.csv image_name,tags (space-separated), train-jpg/, test-jpg/, sample_submission_v2.csv:
    sigmoid outputs and binary cross-entropy, a threshold per tag fitted on the holdout for mean F2."""
    root = tmp_path / "planet-understanding-the-amazon-from-space"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(72):
        tags = ["clear" if i % 2 else "haze"] + [t for t in ("primary", "road", "water") if rng.random() < 0.5]
        planet_image(root / "train-jpg" / f"train_{i}.jpg", tags)
        rows.append(f"train_{i},{' '.join(tags)}")
    (root / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    ids = [f"test_{i}" for i in range(8)]
    for i, image_id in enumerate(ids):
        planet_image(root / "test-jpg" / f"{image_id}.jpg", ["clear", "primary"] if i % 2 else ["haze", "water"])
    (root / "sample_submission_v2.csv").write_text(
        "image_name,tags\n" + "".join(f"{i},primary clear agriculture road water\n" for i in ids))
    result, written, report = train_and_submit(root, tmp_path)
    assert list(written.columns) == ["image_name", "tags"] and list(written["image_name"]) == ids
    assert all(set(t.split()) <= set(PLANET_TAGS) and t for t in written["tags"])
    assert report["metric"] == "f2_samples" and set(report["thresholds"]) == set(PLANET_TAGS)
    assert (tmp_path / "subs" / "s.tags.png").is_file() and (tmp_path / "subs" / "s.tags.csv").is_file()
    # above chance: better than the best constant answer (every tag, which F2 favours) on the same holdout
    holdout = pd.read_csv(tmp_path / "run" / "holdout_predictions.csv", keep_default_na=False)
    truth = np.array([[t in row.split() for t in PLANET_TAGS] for row in holdout["label"]], dtype=float)
    every_tag = score(np.ones_like(truth), truth, "f2_samples")
    fitted = [s["score"] for s in result["scores"] if s["run"] == "ensemble, fitted thresholds"][0]
    assert fitted > every_tag + 0.05, (fitted, every_tag)
    assert json.loads((tmp_path / "run" / "class_map.json").read_text())["maps"][0]["multi_label"]
    # what tags cannot take is refused by name, before anything is written
    for flags, message in [(["--metric", "accuracy"], "--metric accuracy: the target is tags \\(multi-label\\): expected f2_samples"),
                           (["--tta-mean", "geometric"], "--tta-mean geometric: multi-label probabilities"),
                           (["--submission-format", "top-k"], "--submission-format top-k: column tags holds tags")]:
        with pytest.raises(KitError, match=message):
            submit(parse_config(SubmitConfig, ["--data", str(root), "--run", str(tmp_path / "run"),
                                               "--out", str(tmp_path / "refused"), *flags]))
        assert not (tmp_path / "refused" / "submission.csv").exists()
    for flags, message in [(["--class-weights"], "--class-weights: column tags holds tags"),
                           (["--extra-data", str(root)], "--extra-data: column tags holds tags")]:
        with pytest.raises(KitError, match=message):
            train(parse_config(TrainConfig, ["--data", str(root), "--out", str(tmp_path / "refused-run"), *TRAIN,
                                             *flags]))
        assert not (tmp_path / "refused-run").exists()  # a refused run leaves no folder


def test_multi_label_eda_counts_tags_and_predict_prints_them(tmp_path, capsys):
    from src.core.settings import EdaConfig
    from src.core.submit_settings import PredictConfig
    from src.data.report import run_eda
    from src.inference.image_predictions import print_predictions

    root = tmp_path / "planet"
    rows = [f"p{i},{'clear' if i % 2 else 'haze'}{' primary' if i % 3 else ''}{' road' if i % 4 == 0 else ''}"
            for i in range(24)]
    for row in rows:
        name, tags = row.split(",")
        planet_image(root / "train-jpg" / f"{name}.jpg", tags.split())
    (root / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    summary = run_eda(parse_config(EdaConfig, ["--data", str(root), "--out", str(tmp_path / "eda")]))
    out = capsys.readouterr().out
    assert "tag counts (4 tags)" in out and summary["classes"] == 4  # clear, haze, primary, road
    assert (tmp_path / "eda" / "class_distribution.png").is_file()
    report = pd.read_csv(tmp_path / "eda" / "split_report.csv", index_col=0)
    assert report.loc["primary", "total"] == sum("primary" in r for r in rows)
    train(parse_config(TrainConfig, ["--data", str(root), "--out", str(tmp_path / "run"), *TRAIN[:-6],
                                     "--stage1-epochs", "1", "--batch-size", "8"]))
    capsys.readouterr()
    printed = print_predictions(parse_config(PredictConfig, [str(root / "train-jpg" / "p1.jpg"), "--run",
                                                             str(tmp_path / "run"), "--top", "2"]))
    assert "tags at 0.5:" in capsys.readouterr().out and len(printed[0][1]) == 2


def test_f2_samples_and_thresholds_against_hand_computed_values():
    from src.inference.metrics import f2_samples, fit_thresholds

    y = np.array([[1, 0, 1], [0, 1, 0]], dtype=float)
    # row 1: chose tags 0 and 1: P 1/2, R 1/2 -> F2 0.5; row 2: chose tag 1 only -> 1
    assert f2_samples(np.array([[1, 1, 0], [0, 1, 0]], bool), y) == pytest.approx(0.75)
    probs = np.array([[0.9, 0.2, 0.3], [0.1, 0.6, 0.05]])
    assert score(probs, y, "f2_samples") == pytest.approx((5 * 1 * 0.5 / (4 + 0.5) + 1) / 2)
    thresholds = fit_thresholds(probs, y)
    assert score(probs, y, "f2_samples", thresholds=thresholds) == pytest.approx(1.0) and thresholds[2] <= 0.3
