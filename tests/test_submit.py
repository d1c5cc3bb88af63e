import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.data.competition import load_competition
from src.core.config import DataOptions, PipelineOptions, parse_config
from src.core.errors import KitError
from src.pipeline.images import make_predict_dataset
from src.inference.prediction import build_run_model, load_run, predict_frame, predict_views
from src.predict import main as predict_main
from src.inference.submission import submit, validate_submission
from src.core.submit_settings import SubmitConfig
from src.training.two_stage import train
from src.core.settings import TrainConfig
from tests.conftest import make_folder_competition


TEST_ORDER = ["t3.jpg", "t0.jpg", "t4.jpg", "t1.jpg", "t2.jpg"]


def trained_run(root, classes):
    comp = make_folder_competition(root / "comp", classes=classes, per_class=8, test_order=TEST_ORDER)
    cfg = parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "2", "--stage1-lr", "1e-2",
        "--batch-size", "8", "--out", str(root / "run"), "--split-file", str(root / "split.csv")])
    train(cfg)
    return comp, root / "run"


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A run on string labels with spaces."""
    return trained_run(tmp_path_factory.mktemp("named"), ("audi a4", "bmw x5", "vw golf"))


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """A run on integer labels (folders 3, 7, 11)."""
    return trained_run(tmp_path_factory.mktemp("numbered"), ("3", "7", "11"))


def submit_args(comp, run, tmp_path, *extra):
    return parse_config(SubmitConfig, ["--data", str(comp), "--run", str(run), "--out", str(tmp_path / "subs"),
                                       "--name", "s", *extra])


def test_one_view_tta_equals_plain_prediction(named):
    comp_dir, run_dir = named
    run = load_run(run_dir)
    test = load_competition(DataOptions(data=str(comp_dir))).test
    model = build_run_model(run)
    dataset = make_predict_dataset(test, PipelineOptions(image_size=run.size, cache="none"))
    plain = model.predict(dataset.map(lambda x, ids: x), verbose=0)
    np.testing.assert_allclose(predict_frame(run, test, ("identity",), model=model), plain, rtol=1e-5, atol=1e-6)


def test_hflip_of_a_symmetric_image_gives_the_identity_prediction(named, tmp_path):
    run = load_run(named[1])
    array = np.zeros((16, 16, 3), np.uint8)
    array[:, :] = (200, 40, 40)
    array[4:12, 5:11] = (20, 20, 220)  # left-right symmetric
    Image.fromarray(array).save(tmp_path / "sym.png")
    frame = pd.DataFrame({"id": ["sym"], "path": [str(tmp_path / "sym.png")], "width": [16], "height": [16],
                          "orientation": [1]})
    per_view = predict_views(run, frame, ("identity", "hflip"))
    np.testing.assert_allclose(per_view[0], per_view[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture, written", [("named", {"audi a4", "bmw x5", "vw golf"}), ("numbered", {"3", "7", "11"})])
def test_submission_keeps_row_order_and_the_competitions_labels(request, tmp_path, fixture, written):
    comp_dir, run_dir = request.getfixturevalue(fixture)
    result = submit(submit_args(comp_dir, run_dir, tmp_path, "--tta"))
    text = (tmp_path / "subs" / "s.csv").read_text().splitlines()
    assert text[0] == "Id,Category"
    assert [line.split(",")[0] for line in text[1:]] == TEST_ORDER  # the sample's order, not the folder's
    assert {line.split(",")[1] for line in text[1:]} <= written  # "3", not "3.0"; "audi a4" with its space
    for name in ["s.json", "s.holdout.csv", "s.confusion_matrix.png", "s.wrong.png"]:
        assert (tmp_path / "subs" / name).stat().st_size > 0
    assert [row["views"] for row in result["scores"]][:2] == ["identity", "identity+hflip+center_crop_90"]
    # the submission's holdout score beside the trivial answer's (issue 38), in NAME.json and said
    verdict = json.loads((tmp_path / "subs" / "s.json").read_text())["verdict"]
    assert verdict["reference"] == "the training classes' prior for every image" and "no_better" in verdict
    assert verdict["holdout_score"] == pytest.approx(result["scores"][-1]["score"])
    assert result["no_better"] == verdict["no_better"]


def test_an_ensemble_of_a_run_with_itself_equals_the_run(named, tmp_path):
    comp_dir, run_dir = named
    single = submit(submit_args(comp_dir, run_dir, tmp_path, "--name", "one"))
    double = submit(submit_args(comp_dir, run_dir, tmp_path, "--name", "two", "--run", str(run_dir),
                                "--ensemble-weights", "fit"))
    assert (tmp_path / "subs" / "one.csv").read_text() == (tmp_path / "subs" / "two.csv").read_text()
    assert single["scores"][-1]["score"] == double["scores"][-1]["score"]
    assert abs(sum(double["weights"]) - 1) < 1e-9


def test_bad_submissions_are_refused_naming_the_problem(named):
    comp = load_competition(DataOptions(data=str(named[0])))
    run = load_run(named[1])
    good = pd.DataFrame({"Id": list(comp.schema.ids), "Category": ["bmw x5"] * len(comp.schema.ids)})
    validate_submission(good, comp.schema, run.class_map)
    with pytest.raises(KitError, match="4 rows, but .*sample-submission.csv has 5"):
        validate_submission(good.iloc[:4], comp.schema, run.class_map)
    unknown = good.assign(Category=["bmw x5", "tesla", "bmw x5", "bmw x5", "bmw x5"])
    with pytest.raises(KitError, match=r"row 3 \(id 't0.jpg'\) has label 'tesla'"):
        validate_submission(unknown, comp.schema, run.class_map)
    missing = good.assign(Id=["t3.jpg", "t0.jpg", "t9.jpg", "t1.jpg", "t2.jpg"])
    with pytest.raises(KitError, match="id 't4.jpg' of .* is missing"):
        validate_submission(missing, comp.schema, run.class_map)
    shuffled = good.assign(Id=["t0.jpg", "t3.jpg", "t4.jpg", "t1.jpg", "t2.jpg"])
    with pytest.raises(KitError, match="row 2 has id 't0.jpg' where .* has 't3.jpg'"):
        validate_submission(shuffled, comp.schema, run.class_map)
    empty = good.assign(Category=["bmw x5", None, "bmw x5", "bmw x5", "bmw x5"])
    with pytest.raises(KitError, match=r"row 3 \(id 't0.jpg'\) has no Category"):
        validate_submission(empty, comp.schema, run.class_map)


def test_existing_submission_is_kept_and_upload_needs_a_competition(named, tmp_path):
    comp_dir, run_dir = named
    submit(submit_args(comp_dir, run_dir, tmp_path))
    before = (tmp_path / "subs" / "s.csv").read_text()
    with pytest.raises(KitError, match="s.csv exists: pass --overwrite"):
        submit(submit_args(comp_dir, run_dir, tmp_path))
    with pytest.raises(KitError, match="--upload needs --competition"):
        submit(submit_args(comp_dir, run_dir, tmp_path, "--overwrite", "--upload", "--message", "x"))
    assert (tmp_path / "subs" / "s.csv").read_text() == before


def test_upload_submits_the_written_file_and_waits_for_the_score(named, tmp_path, fake, monkeypatch):
    comp_dir, run_dir = named
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HOME", "XDG_CONFIG_HOME", "KAGGLE_API_ENVIRONMENT", "KAGGLE_API_TOKEN", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, fake.env[name])
    schema = pd.read_csv(comp_dir / "sample-submission.csv", dtype=str)
    fake.competitions["toy"] = {"zip": b"", "rules_accepted": True, "solution": dict.fromkeys(schema["Id"], "1")}
    fake.pending_polls = 0  # scored at the first poll
    result = submit(submit_args(comp_dir, run_dir, tmp_path, "--upload", "--competition", "toy", "--message",
                                "from src.submit", "--wait"))
    assert fake.submissions[0]["csv"] == (tmp_path / "subs" / "s.csv").read_bytes()
    assert fake.submissions[0]["description"] == "[s] from src.submit"  # the ledger matches scores by the name
    assert result["kaggle"]["status"] == "complete" and float(result["kaggle"]["public_score"]) >= 0
    kept = pd.read_csv(tmp_path / "subs" / "kaggle_scores.csv", dtype={"name": str})
    assert kept["name"].tolist() == ["s"] and kept["public_score"].tolist() == [float(result["kaggle"]["public_score"])]


def test_runs_with_different_splits_cannot_be_fitted_together(named, tmp_path):
    comp_dir, run_dir = named
    other = tmp_path / "other"
    import shutil

    shutil.copytree(run_dir, other)
    split = pd.read_csv(other / "split.csv")
    split["split"] = np.where(split["split"] == "val", "train", "val")
    split.to_csv(other / "split.csv", index=False)
    with pytest.raises(KitError, match="used different splits"):
        submit(submit_args(comp_dir, run_dir, tmp_path, "--run", str(other), "--ensemble-weights", "fit"))


def test_single_image_prediction_prints_the_top_classes(named, capsys):
    comp_dir, run_dir = named
    image = comp_dir / "test_upload" / "t0.jpg"
    predict_main(["--run", str(run_dir), str(image)])
    metric, *out = capsys.readouterr().out.splitlines()
    assert metric.startswith(f"metric: accuracy (from the run's config, {run_dir / 'config.json'}; weights of stage")
    assert out[0] == str(image) and len(out) == 4  # three classes: all of them, most probable first
    shares = [float(line.split("%")[0]) for line in out[1:]]
    assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 100) < 0.1


def test_an_equal_weight_ensemble_of_runs_with_other_holdouts_is_not_scored(named, tmp_path, capsys):
    comp_dir, run_dir = named
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    split = pd.read_csv(other / "split.csv")
    val = split.index[split["split"] == "val"]
    split.loc[val[:2], "split"] = "train"  # a smaller holdout: row-by-row averaging would misalign images
    split.to_csv(other / "split.csv", index=False)
    result = submit(submit_args(comp_dir, run_dir, tmp_path, "--run", str(other)))
    assert np.isnan(result["scores"][-1]["score"])
    assert "the runs held out different images" in capsys.readouterr().out
    assert (tmp_path / "subs" / "s.csv").exists()


def test_the_same_image_twice_is_predicted_twice(named, capsys):
    """issue 12 #15: src.predict given one image twice raised pandas' InvalidIndexError."""
    comp_dir, run_dir = named
    image = str(comp_dir / "test_upload" / "t0.jpg")
    predict_main(["--run", str(run_dir), image, image])
    out = capsys.readouterr().out.splitlines()
    assert out.count(image) == 2 and out[1:4] == out[5:8]


def test_a_truncated_weights_file_is_named_not_an_h5py_traceback(named, tmp_path):
    """issue 12 #11: a kill while Keras wrote weights in place left a file h5py cannot open."""
    import shutil

    comp_dir, run_dir = named
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    weights = broken / "stage1.weights.h5"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(KitError, match="stage1.weights.h5: cannot load these weights .* damaged"):
        build_run_model(load_run(broken))


def test_extra_sample_columns_are_kept(named, tmp_path):
    """issue 12 #6: a sample submission Id,Category,Usage gave a two-column file."""
    import shutil

    comp_dir, run_dir = named
    comp = tmp_path / "comp"
    shutil.copytree(comp_dir, comp)
    sample = pd.read_csv(comp / "sample-submission.csv", dtype=str).assign(Usage="Public")
    sample.to_csv(comp / "sample-submission.csv", index=False)
    submit(submit_args(comp, run_dir, tmp_path))
    written = pd.read_csv(tmp_path / "subs" / "s.csv", dtype=str)
    assert list(written.columns) == ["Id", "Category", "Usage"] and set(written["Usage"]) == {"Public"}
    assert list(written["Id"]) == TEST_ORDER


def test_tta_auto_leaves_out_a_view_that_hurts():
    """--tta auto: greedy forward selection keeps a view only when it improves the holdout metric."""
    from src.inference.metrics import score
    from src.inference.tta_select import select_views

    y = np.array([0, 1, 2, 0, 1, 2])
    truth = np.eye(3)[y]
    identity = 0.5 * truth + 0.5 / 3                   # right, unsure
    hflip = 0.8 * truth + 0.2 / 3                      # right, surer: helps the log loss
    vflip = np.eye(3)[(y + 1) % 3] * 0.9 + 0.1 / 3     # a flip that changes the class: wrong
    per_view = np.stack([identity, vflip, hflip])
    names = ["identity", "vflip", "hflip"]
    chosen, steps = select_views(per_view, names, y, lambda p, t: score(p, t, "log_loss"), higher_is_better=False)
    assert chosen == ["identity", "hflip"] and [s["views"] for s in steps] == ["identity", "identity+hflip"]
    assert steps[1]["score"] < steps[0]["score"]
    chosen, steps = select_views(per_view, names, y, lambda p, t: score(p, t, "accuracy"))
    assert chosen == ["identity"] and len(steps) == 1  # accuracy is already 1: nothing helps, nothing is kept


def test_tta_auto_never_scores_below_plain(named, tmp_path):
    import json

    comp_dir, run_dir = named
    result = submit(submit_args(comp_dir, run_dir, tmp_path, "--tta", "auto", "--tta-random", "1", "--metric",
                                "log_loss", "--calibrate", "none"))  # views alone: no temperature row
    rows = result["scores"]
    plain = next(r["score"] for r in rows if r["views"] == "identity")
    assert rows[-1]["score"] <= plain + 1e-12  # log loss: lower is better
    report = json.loads((tmp_path / "subs" / "s.json").read_text())
    assert report["tta"] == "auto" and report["tta_selection"][0][0]["views"] == "identity"
    table = pd.read_csv(tmp_path / "subs" / "s.holdout.csv")
    assert len(table) == 2 + len(report["tta_selection"][0]) - 1 + 1  # plain, each step, chosen, ensemble
