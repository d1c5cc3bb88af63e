"""Issue 31: a number as the answer (regression), from reading the labels to the submission.

One tiny network run and one ridge run on a generated Pawpularity-like competition are shared by the
tests that need training (module fixture); the rest need none.
"""
import json

import keras
import numpy as np
import pandas as pd
import pytest

from benchmarks.number_competition import write_number_competition
from src.core.config import DataOptions, parse_config
from src.core.errors import KitError
from src.core.metric_choice import check_metric_for, higher_is_better, kit_name, monitor
from src.core.settings import TrainConfig
from src.core.submit_settings import SubmitConfig
from src.core.task_kind import settle_task
from src.data.class_maps import load_class_maps
from src.data.competition import load_competition
from src.data.numbers import TargetScale
from src.data.splits import make_split
from src.inference.ensemble import fit_weights
from src.inference.formats import check_submission, detect_format, fill_submission
from src.inference.metrics import score
from src.inference.submission import submit
from src.models.classifier import HeadSpec, build_head
from src.models.epoch_metrics import epoch_metric
from src.models.number_head import NumberLoss, number_loss
from src.models.recipe import make_loss
from src.train import main as train_main
from src.training.two_stage import train

SCALE = TargetScale(low=1.0, high=100.0, mean=41.0, sd=20.0)


def grades_competition(root, values):
    """Write an APTOS-like CSV competition: id_code,diagnosis with the given integer values."""
    from tests.conftest import write_image

    (root / "train").mkdir(parents=True)
    for i in range(len(values)):
        write_image(root / "train" / f"i{i}.png", size=(16, 16))
    pd.DataFrame({"id_code": [f"i{i}" for i in range(len(values))], "diagnosis": values}).to_csv(
        root / "train.csv", index=False)
    return root


# ---------------------------------------------------------------- the kind, read and said (no training)


def test_a_score_column_is_read_as_a_number_and_said(tmp_path, capsys):
    root = write_number_competition(tmp_path / "paw", train=60, test=4, size=16)
    comp = load_competition(DataOptions(data=str(root)), with_test=False)
    cmap = comp.class_maps["Pawpularity"]
    assert cmap.scale is not None and cmap.values == ("Pawpularity",)
    cfg, kind = settle_task(parse_config(TrainConfig, ["--data", str(root)]), cmap)
    out = capsys.readouterr().out
    assert kind.name == "number" and cfg.task == "number"
    assert "task: number, a number per image (regression) in column Pawpularity" in out
    assert "(read from the labels)" in out and "holds numbers" in out
    assert cmap.encode(comp.train["Pawpularity"]).shape == (60, 1)  # numbers, not class indices


def test_integer_grades_stay_classes_unless_task_regression(tmp_path):
    root = grades_competition(tmp_path / "aptos", [0, 1, 2, 3, 4] * 4)
    assert load_competition(DataOptions(data=str(root)), with_test=False).class_maps["diagnosis"].scale is None
    cfg = parse_config(TrainConfig, ["--data", str(root), "--task", "regression"])
    cmap = load_competition(cfg, with_test=False).class_maps["diagnosis"]
    assert cmap.scale == TargetScale(0.0, 4.0, 2.0, float(np.std([0, 1, 2, 3, 4])))
    cfg, kind = settle_task(cfg, cmap)
    assert kind.name == "number" and cfg.task == "number"
    by_metric = load_competition(parse_config(TrainConfig, ["--data", str(root), "--metric", "rmse"]), with_test=False)
    assert by_metric.class_maps["diagnosis"].scale is not None  # --metric rmse alone says it


def test_continuous_values_are_a_number_not_refused(tmp_path):
    """issue 13 refused them; issue 31 reads them (the case test_faults no longer lists)."""
    root = grades_competition(tmp_path / "age", [round(30 + i * 0.37, 2) for i in range(30)])
    cmap = load_competition(DataOptions(data=str(root)), with_test=False).class_maps["diagnosis"]
    assert cmap.scale.low == 30.0 and cmap.scale.high == pytest.approx(30 + 29 * 0.37)


def test_class_map_json_keeps_the_scale(tmp_path):
    root = write_number_competition(tmp_path / "paw", train=80, test=2, size=16)
    comp = load_competition(DataOptions(data=str(root)), with_test=False)
    from src.data.class_maps import save_class_maps

    save_class_maps(tmp_path / "class_map.json", comp.target, comp.class_maps)
    assert json.loads((tmp_path / "class_map.json").read_text())["maps"][0]["number"]["mean"] == comp.class_maps[
        "Pawpularity"].scale.mean
    assert load_class_maps(tmp_path / "class_map.json")[1]["Pawpularity"] == comp.class_maps["Pawpularity"]


def test_issue_41_5_a_spread_float32_cannot_hold_is_refused_naming_the_column(tmp_path):
    """About 1e12 plus a small spread: float32 (the network's) keeps steps of ~1e5, so the spread would be lost and
    the network would learn a constant: refused at reading, naming the column; the same spread near 0 is read."""
    values = [1e12 + 0.5 * i for i in range(40)]
    root = grades_competition(tmp_path / "big", values)
    with pytest.raises(KitError, match=r"column diagnosis: values near 1e\+12 with sd 5\.77.*float32.*spread is lost"
                                       r".*subtract a constant from the column"):
        load_competition(DataOptions(data=str(root)), with_test=False)
    small = grades_competition(tmp_path / "small", [v - 1e12 for v in values])
    assert load_competition(DataOptions(data=str(small)), with_test=False).class_maps["diagnosis"].scale.sd > 5


@pytest.mark.parametrize("cell", ["inf", "nan", "-inf", "NaN"])
def test_issue_41_17_a_nan_or_inf_cell_among_numbers_is_named_by_row_at_reading(tmp_path, cell):
    """One inf trained until 'learning rate too high'; one nan made the column classes of one image each."""
    values = [str(round(30 + i * 0.37, 2)) for i in range(30)]
    values[7] = cell
    root = grades_competition(tmp_path / "age", values)
    with pytest.raises(KitError, match=rf"train.csv: column 'diagnosis', row 9 of the file: cell '{cell}' is not a "
                                       "finite number, in a column of numbers"):
        load_competition(DataOptions(data=str(root)), with_test=False)
    words = grades_competition(tmp_path / "words", ["cat", "dog", "nan", "cat"])  # a word among words: a label
    assert "nan" in load_competition(DataOptions(data=str(words)), with_test=False).class_maps["diagnosis"].values


def test_issue_41_18_task_regression_on_a_constant_target_is_refused_naming_the_column(tmp_path):
    root = grades_competition(tmp_path / "flat", [7] * 12)
    with pytest.raises(KitError, match=r"column diagnosis: every training value is 7 \(sd 0\): a number target"):
        load_competition(parse_config(TrainConfig, ["--data", str(root), "--task", "regression"]), with_test=False)


def test_issue_41_19_a_regression_metric_reads_two_values_as_a_number_else_suggests_task_regression(tmp_path):
    root = grades_competition(tmp_path / "binary", [0, 1] * 6)
    cmap = load_competition(parse_config(TrainConfig, ["--data", str(root), "--metric", "rmse"]),
                            with_test=False).class_maps["diagnosis"]
    assert cmap.scale is not None and cmap.kind.name == "number"
    with pytest.raises(KitError, match="--metric rmse: the target is one label per image: .*rmse scores a number per "
                                       "image .regression.: --task regression reads the target as numbers"):
        check_metric_for("rmse", _kind("label"))


# ---------------------------------------------------------------- metrics, losses, head (no training)


def test_number_metrics_direction_kaggle_names_and_scores():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, guess = np.array([[10.0], [20.0], [35.0], [50.0]]), np.array([[12.0], [18.0], [40.0], [47.0]])
    assert score(guess, y, "rmse") == pytest.approx(np.sqrt(mean_squared_error(y, guess)))
    assert score(guess, y, "mae") == pytest.approx(mean_absolute_error(y, guess))
    assert score(guess, y, "r2") == pytest.approx(r2_score(y, guess))
    assert not higher_is_better("rmse") and not higher_is_better("mae") and higher_is_better("r2")
    assert monitor("rmse") == "val_rmse"
    assert kit_name("Root Mean Squared Error") == "rmse" and kit_name("MAE") == "mae" and kit_name("R2") == "r2"
    with pytest.raises(KitError, match="expected accuracy"):
        check_metric_for("rmse")  # a label's metrics do not include rmse
    for name in ("rmse", "mae", "r2"):
        metric = epoch_metric(name, 1)
        metric.update_state(y.astype("float32"), guess.astype("float32"))
        assert float(metric.result()) == pytest.approx(score(guess, y, name), rel=1e-5)


@pytest.mark.parametrize("loss", ["mse", "huber", "bce-scaled"])
def test_each_loss_matches_its_formula_and_the_head_stays_in_range(loss):
    y, guess = np.array([[10.0], [60.0], [95.0]], "float32"), np.array([[20.0], [55.0], [99.0]], "float32")
    found = float(make_loss(parse_config(TrainConfig, ["--loss", loss]), kind=_kind("number"), scale=SCALE)(y, guess))
    if loss == "bce-scaled":
        t, p = (y - 1) / 99, (guess - 1) / 99
        expected = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    else:
        gap = np.abs((y - guess) / 20.0)
        expected = np.mean(gap ** 2) if loss == "mse" else np.mean(np.where(gap <= 1, 0.5 * gap ** 2, gap - 0.5))
    assert found == pytest.approx(expected, rel=1e-4)
    head = HeadSpec.for_target(parse_config(TrainConfig, ["--loss", loss]), _number_map())
    model = build_head(8, 1, head)
    wild = model.predict(np.random.default_rng(0).normal(0, 50, (64, 8)).astype("float32"), verbose=0)
    assert head.activation == ("sigmoid" if loss == "bce-scaled" else "linear")
    if loss == "bce-scaled":  # a sigmoid scaled to the training range cannot leave it
        assert wild.min() >= SCALE.low and wild.max() <= SCALE.high
    with pytest.raises(KitError, match="--loss focal: the target is a number"):
        number_loss("focal", SCALE)


def test_a_class_target_refuses_a_number_loss():
    with pytest.raises(KitError, match="--loss mse: the target is one label per image"):
        make_loss(parse_config(TrainConfig, ["--loss", "mse"]))


def test_number_loss_config_round_trips():
    loss = NumberLoss("huber", 41.0, 20.0)
    assert NumberLoss.from_config(loss.get_config()).get_config() == loss.get_config()


# ---------------------------------------------------------------- split, clipping, blend weights (no training)


def test_folds_are_stratified_over_bins_of_the_target(tmp_path):
    rng = np.random.default_rng(1)
    values = np.round(rng.gamma(2.0, 15.0, 200)) + 1  # skewed: a plain shuffle could leave the tail to one fold
    train = pd.DataFrame({"id": [f"i{i}" for i in range(200)], "y": values.astype(int)})
    cmap = _number_map("y", values)
    split = make_split(train, "y", DataOptions(folds=5, seed=3), cmap)
    bins = pd.Series(cmap.stratify_key(train["y"]))
    table = pd.crosstab(bins, split["fold"])
    assert (table.max(axis=1) - table.min(axis=1)).max() <= 1  # every bin spread evenly over the 5 folds
    assert split.groupby("fold")["y"].mean().std() < 2.5
    from src.data.numbers import number_bins

    assert len(set(number_bins(pd.Series([0, 1, 2] * 9), "y"))) == 3  # ties stay together: no arbitrary bins
    small = make_split(pd.DataFrame({"id": [f"i{i}" for i in range(27)], "y": [0, 1, 2] * 9}), "y",
                       DataOptions(val_fraction=0.25), _number_map("y", [0, 1, 2] * 9))
    assert set(small.loc[small["fold"] == 0, "y"]) == {0, 1, 2}  # each value on the holdout side


def test_predictions_are_clipped_to_the_training_range_and_written_as_numbers(tmp_path):
    root = write_number_competition(tmp_path / "paw", train=80, test=3, size=16)
    comp = load_competition(DataOptions(data=str(root)))
    cmap = comp.class_maps["Pawpularity"]
    fmt = detect_format(comp.schema, cmap, "", "rmse")
    assert fmt.name == "number" and fmt.metric == "rmse"
    frame = fill_submission(comp.schema, np.array([[-50.0], [42.5], [500.0]]), cmap, fmt)
    assert list(frame["Pawpularity"]) == [cmap.scale.low, 42.5, cmap.scale.high]
    frame = frame.astype({"Pawpularity": object})
    frame.loc[1, "Pawpularity"] = "n/a"
    with pytest.raises(KitError, match="row 3 holds 'n/a': expected a number"):
        check_submission(frame, comp.schema, cmap, fmt)


def test_fitted_blend_of_numbers_is_never_worse_than_the_better_run():
    rng = np.random.default_rng(0)
    y = rng.normal(40, 20, (300, 1))
    runs = np.stack([y + rng.normal(0, s, y.shape) + b for s, b in ((6, 0), (9, 3), (30, -10))])
    for metric in ("rmse", "mae", "r2"):
        def scorer(p, truth, metric=metric):
            return score(p, truth, metric)
        weights = fit_weights(runs, y, metric, scorer, higher_is_better(metric))
        blended = scorer(np.tensordot(weights, runs, axes=1), y)
        singles = [scorer(r, y) for r in runs]
        assert abs(sum(weights) - 1) < 1e-9
        assert (blended <= min(singles) + 1e-12) if metric != "r2" else (blended >= max(singles) - 1e-12)
    worst_alone = fit_weights(runs[[2, 2]], y, "rmse", lambda p, t: score(p, t, "rmse"), False)
    assert sum(worst_alone) == pytest.approx(1.0)


# ---------------------------------------------------------------- one network run and one ridge run, shared


@pytest.fixture(scope="module")
def paw(tmp_path_factory):
    """A tiny network run (--loss bce-scaled) and a --head ridge run on one split; the competition."""
    root = tmp_path_factory.mktemp("paw")
    comp = write_number_competition(root / "comp", train=96, test=12, size=24, seed=2)
    common = ["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
              "--stages", "1", "--stage1-size", "16", "16", "--batch-size", "16", "--split-file", str(root / "s.csv")]
    summary = train(parse_config(TrainConfig, [*common, "--stage1-epochs", "3", "--stage1-lr", "1e-2",
                                               "--loss", "bce-scaled", "--out", str(root / "net")]))
    keras.backend.clear_session()
    train_main([*common, "--head", "ridge", "--out", str(root / "ridge")])
    return comp, root, summary


def test_val_rmse_in_history_chooses_the_kept_epoch(paw):
    comp, root, summary = paw
    history = pd.read_csv(root / "net" / "history.csv")
    state = json.loads((root / "net" / "state.json").read_text())
    assert summary["metric"] == "rmse" and "val_rmse" in history
    best = int(history["val_rmse"].idxmin())
    assert state["epochs"]["stage1"] == best + 1 and state["best"]["stage1"] == pytest.approx(history["val_rmse"][best])
    holdout = pd.read_csv(root / "net" / "holdout_predictions.csv")
    assert summary["holdout_score"] == pytest.approx(score(holdout["predicted"], holdout["label"], "rmse"), rel=1e-4)
    assert json.loads((root / "net" / "config.json").read_text())["loss"] == "bce-scaled"
    from src.predict import main as predict_main

    image = sorted((comp / "test").iterdir())[0]
    (path, [(column, value)]), = predict_main(["--run", str(root / "net"), str(image)])
    scale = load_class_maps(root / "net" / "class_map.json")[1]["Pawpularity"].scale
    assert column == "Pawpularity" and scale.low <= value <= scale.high and value != int(value)  # a number


def test_ridge_run_blended_with_the_network_never_worse_than_the_better(paw, tmp_path):
    comp, root, _ = paw
    result = submit(parse_config(SubmitConfig, [
        "--data", str(comp), "--run", str(root / "net"), "--run", str(root / "ridge"), "--ensemble-weights", "fit",
        "--tta", "--out", str(tmp_path / "subs"), "--name", "blend", "--solution", str(comp / "solution.csv")]))
    rows = pd.DataFrame(result["scores"])
    tta = rows[rows["views"].str.contains("hflip") & (rows["run"] != "ensemble")].groupby("run")["score"].last()
    ensemble = float(rows.loc[rows["run"] == "ensemble", "score"].iloc[0])
    assert len(tta) == 2 and ensemble <= tta.min() + 1e-9
    written = pd.read_csv(tmp_path / "subs" / "blend.csv")
    assert written["Pawpularity"].dtype == float and written["Pawpularity"].nunique() > 3
    scale = load_class_maps(root / "net" / "class_map.json")[1]["Pawpularity"].scale
    assert written["Pawpularity"].between(scale.low, scale.high).all()
    assert np.isfinite(result["test_score"])
    ridge_holdout = pd.read_csv(root / "ridge" / "holdout_predictions.csv")
    identity = rows[(rows["run"] == str(root / "ridge")) & (rows["views"] == "identity")]["score"].iloc[0]
    assert identity == pytest.approx(score(ridge_holdout["predicted"], ridge_holdout["label"], "rmse"), rel=1e-4)


def _kind(name):
    from src.core.task_kind import kind_named

    return kind_named(name)


def _number_map(column="Pawpularity", values=None):
    from src.data.class_maps import ClassMap, make_number_map

    return make_number_map(pd.Series(values), column) if values is not None else ClassMap(column, (column,),
                                                                                          scale=SCALE)


@pytest.mark.parametrize("flag", [["--class-weights"], ["--sampling", "sqrt"], ["--head", "svr"]])
def test_classes_notions_are_refused_for_a_number_and_regressors_for_classes(tmp_path, flag):
    paw = write_number_competition(tmp_path / "paw", train=80, test=2, size=16)
    grades = grades_competition(tmp_path / "aptos", [0, 1, 2] * 4)
    data = grades if flag[0] == "--head" else paw
    with pytest.raises(KitError, match=f"{flag[0]}[^:]*: column .* holds (a number per image|classes)"):
        train_main(["--data", str(data), "--backbone", "tiny_resnet", "--weights", "none", *flag,
                    "--out", str(tmp_path / "run")]) if flag[0] == "--head" else \
            train(parse_config(TrainConfig, ["--data", str(data), "--backbone", "tiny_resnet", "--weights", "none",
                                             *flag, "--out", str(tmp_path / "run")]))


@pytest.mark.parametrize("head", ["ridge", "svr", "arcface"])
def test_issue_41_20_a_head_the_task_refuses_writes_nothing_so_the_corrected_command_starts(tmp_path, head):
    """A refused --head on a label task left config.json, class_map.json and split.csv: the corrected command was
    then 'already holds a run'. Refused before any file; a K-fold run writes no RUN/config.json either."""
    from src.runs.folder import RunFolder

    grades = grades_competition(tmp_path / "aptos", [0, 1, 2] * 4)
    common = ["--data", str(grades), "--backbone", "tiny_resnet", "--weights", "none", "--head", head]
    for extra in ([], ["--folds", "2"]):
        with pytest.raises(KitError, match=rf"--head {head}: column diagnosis holds (classes|one label per image); "
                                           r".*--head auto or dense.*; nothing was written"):
            train_main([*common, *extra, "--out", str(tmp_path / "run")])
        assert not (tmp_path / "run").exists()
    RunFolder(tmp_path / "run").check_start(resume=False)  # the corrected command is not 'already holds a run'


def test_issue_41_6_head_ridge_with_folds_fits_a_ridge_per_fold_and_submits(tmp_path):
    """--head ridge --folds 2 trained networks and fitted no ridge (submit: 'regressor.npz is missing'): each fold
    is a ridge on the features, out-of-fold scored, and the K-fold run submits."""
    root = write_number_competition(tmp_path / "paw", train=40, test=4, size=16, seed=3)
    summary = train_main(["--data", str(root), "--backbone", "tiny_resnet", "--weights", "none", "--head", "ridge",
                          "--folds", "2", "--stage1-size", "16", "16", "--batch-size", "16",
                          "--out", str(tmp_path / "kfold")])
    assert summary["metric"] == "rmse" and np.isfinite(summary["cv_mean"])
    for fold in range(2):
        run = tmp_path / "kfold" / f"fold-{fold}"
        assert (run / "regressor.npz").is_file() and not list(run.glob("history-stage1.csv"))  # no network trained
    result = submit(parse_config(SubmitConfig, ["--data", str(root), "--run", str(tmp_path / "kfold"),
                                                "--out", str(tmp_path / "subs"), "--name", "ridge"]))
    written = pd.read_csv(tmp_path / "subs" / "ridge.csv")
    assert result and written["Pawpularity"].dtype == float and len(written) == 4


def test_eda_says_the_number_and_counts_its_bins(tmp_path, capsys):
    from src.core.settings import EdaConfig
    from src.data.report import run_eda

    root = write_number_competition(tmp_path / "paw", train=80, test=2, size=16)
    summary = run_eda(parse_config(EdaConfig, ["--data", str(root), "--out", str(tmp_path / "eda")]))
    out = capsys.readouterr().out
    assert "target: column Pawpularity holds a number per image" in out and "10 quantile bins" in out
    assert summary["classes"] == 10 and summary["imbalance"] < 3  # bins, not 50-odd "classes" of 1-3 images


def test_scattered_integer_ids_stay_classes_and_task_label_keeps_classes(tmp_path):
    """CompCars-like model ids: 40 distinct over 1-400, some with one image, are classes (--min-class-count)."""
    from src.data.numbers import reads_as_number

    ids = pd.Series([i * 10 for i in range(1, 41)] + [20, 30, 40])
    assert reads_as_number(ids, "model_id") == (False, "")
    scores = pd.Series(list(range(1, 41)) + [20, 30, 40])
    assert reads_as_number(scores, "score")[0] and reads_as_number(scores, "score", task="label") == (False, "")
