"""Images and the table together (issue 30): pauc@R, the ISIC 2024 layout, table features, the stack."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.core.errors import KitError
from src.core.metric_choice import check_metric, is_ranking, kit_name, monitor
from src.inference.metrics import score


# ---------------------------------------------------------------- pauc@R


def test_pauc_matches_a_hand_computed_value_and_its_keras_twin():
    """Scores .9 P, .8 P, .7 N, .6 P, .5 N, .4 N: the ROC climbs from TPR 2/3 to 1 at FPR 1/3, so the
    area above TPR 0.8 is 0.2 * (1 - 1/3) = 0.1333 (Kaggle's scale: 0 to 0.2)."""
    from src.models.epoch_metrics import epoch_metric

    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    probs = np.stack([1 - p, p], axis=1)
    assert score(probs, y, "pauc@0.8") == pytest.approx(0.2 * (1 - 1 / 3))
    assert score(probs[:, ::-1], 1 - y, "pauc@0.8", positive_index=0) == pytest.approx(0.2 * (1 - 1 / 3))
    assert score(np.stack([1 - y, y], 1).astype(float), y, "pauc@0.8") == pytest.approx(0.2)
    assert score(np.stack([y, 1 - y], 1).astype(float), y, "pauc@0.9") == pytest.approx(0.0)
    metric = epoch_metric("pauc@.80", 2, 1)
    metric.update_state(y, probs.astype("float32"))
    assert metric.name == "pauc_at_0_8" and float(metric.result()) == pytest.approx(0.2 * (1 - 1 / 3), abs=1e-4)
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.clip(rng.random(300) * 0.7 + y * 0.3, 0, 1)
    metric = epoch_metric("pauc@0.8", 2, 1)
    metric.update_state(y, np.stack([1 - p, p], 1).astype("float32"))
    assert float(metric.result()) == pytest.approx(score(np.stack([1 - p, p], 1), y, "pauc@0.8"), abs=2e-3)


def test_pauc_is_one_spelling_a_ranking_metric_and_kaggles_name():
    assert check_metric("pauc@.80") == "pauc@0.8" and monitor("pauc@0.8") == "val_pauc_at_0_8"
    assert is_ranking("pauc@0.8") and is_ranking("auc") and not is_ranking("log_loss")
    assert kit_name("pAUC above 80% TPR") == "pauc@0.8" and kit_name("partial AUC above 90% TPR") == "pauc@0.9"
    for bad in ("pauc@1", "pauc@0", "pauc@0.0", "pauc@R", "pauc@1.5"):
        with pytest.raises(KitError, match="pauc@R"):
            check_metric(bad)


# ---------------------------------------------------------------- layout and table features


@pytest.fixture(scope="module")
def isic24(tmp_path_factory):
    """A small ISIC-2024-like competition (images two folders down, train- and test-metadata.csv)."""
    from src.data.demo_table import write_table_competition

    root = tmp_path_factory.mktemp("isic24") / "isic-2024"
    write_table_competition(root, patients=24, test_patients=8, seed=1)
    return root


def test_the_isic_2024_layout_is_found_with_no_path_flags(isic24):
    from src.core.config import DataOptions
    from src.data.competition import load_competition

    comp = load_competition(DataOptions(data=str(isic24), group_column="patient_id"))
    assert comp.train["path"].str.contains("train-image/image/").all() and comp.target == "target"
    assert comp.test["path"].str.contains("test-image/image/").all() and len(comp.test) == len(comp.schema.ids)


def test_later_jobs_take_the_runs_data_settings_unless_told():
    from src.core.run_data import inherit_data_settings
    from src.core.settings import TrainConfig
    from src.core.submit_settings import SubmitConfig

    run = TrainConfig(data="d", images_dir="d/x/y", group_column="patient_id")
    cfg, line = inherit_data_settings(SubmitConfig(data="d"), run)
    assert cfg.images_dir == "d/x/y" and cfg.group_column == "patient_id" and "--images-dir d/x/y" in line
    cfg, _ = inherit_data_settings(SubmitConfig(data="d", images_dir="mine"), run)
    assert cfg.images_dir == "mine"


def lesion_table(colours: dict) -> pd.DataFrame:
    """A table of lesions per patient with one number, a category and a target."""
    rows = [(f"L{p}{i}", p, c, "torso" if i % 2 else "head", 0) for p, cs in colours.items() for i, c in enumerate(cs)]
    table = pd.DataFrame(rows, columns=["isic_id", "patient_id", "color", "site", "target"]).astype(str)
    table.attrs["id_column"] = "isic_id"
    return table.set_index("isic_id", drop=False)


def test_a_lesion_unlike_its_own_patients_others_ranks_first_though_the_raw_column_does_not():
    from src.data.table_features import fit_table, table_features

    table = lesion_table({"A": [10, 10.1, 9.9, 10.05, 11.5], "B": [20, 20.2, 19.8, 20.1, 19.9]})
    spec = fit_table(table, exclude=("target",), group="patient_id")
    features = table_features(table, spec)
    assert features["color"].idxmax() != "LA4"  # raw: every lesion of B is redder
    assert features.loc["LA4", "color_group_rank"] == 1.0
    assert features["color_group_z"].idxmax() == "LA4" and features["group_size"].eq(5).all()
    assert features.loc["LA4", "color_group_ratio"] == pytest.approx(11.5 / np.mean([10, 10.1, 9.9, 10.05, 11.5]))
    assert {"site=head", "site=other", "site=missing"} <= set(features.columns)  # torso: 4 rows, under 5: rare
    assert "site=torso" not in features and features.loc["LA1", "site=other"] == 1.0
    assert features["color"].mean() == pytest.approx(0, abs=1e-6)  # standardised on the training rows
    assert not (set(features.columns) & {"target", "patient_id", "isic_id"})


def test_a_column_missing_on_the_test_side_is_an_error_naming_it(isic24, tmp_path):
    import shutil

    from src.core.config import DataOptions
    from src.data.sample_submission import read_sample_submission
    from src.data.table_features import fit_table, read_test_table, read_train_table, table_features

    root = tmp_path / "comp"
    shutil.copytree(isic24, root, ignore=shutil.ignore_patterns("*-image"))
    schema = read_sample_submission(root)
    table = read_train_table(root, DataOptions(data=str(root)), schema)
    spec = fit_table(table, exclude=("target",), group="patient_id")
    test = read_test_table(root, schema, spec, table.attrs["path"])
    assert list(test.index) == list(schema.ids) and table_features(test, spec).shape[1] == \
        table_features(table, spec).shape[1]
    pd.read_csv(root / "test-metadata.csv").drop(columns="tbp_lv_color").to_csv(root / "test-metadata.csv", index=False)
    with pytest.raises(KitError, match="test-metadata.csv: no column 'tbp_lv_color'"):
        read_test_table(root, schema, spec, table.attrs["path"])


# ---------------------------------------------------------------- the stack


def test_the_stacks_folds_never_split_a_group_and_keep_every_fold_stratified():
    from src.training.boosting import group_folds

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(3, 12, 40))
    y = (rng.random(len(groups)) < 0.1).astype(int)
    folds = group_folds(y, groups, 5, seed=3)
    assert set(folds) == set(range(5))
    assert pd.Series(folds).groupby(groups).nunique().max() == 1  # each patient in one fold
    assert all(y[folds == f].sum() > 0 for f in range(5))
    with pytest.raises(KitError, match="only 4 groups"):
        group_folds(np.array([0, 1] * 6), np.repeat(np.arange(4), 3), 5, seed=0)


def test_the_stack_is_no_worse_than_its_best_input_out_of_fold():
    """On lesions whose images and table each hold part of the answer: a noisy image probability (out of fold)
    and the table's features, each scored alone, then stacked, all under the same patient-grouped folds."""
    from src.data.demo_table import lesions
    from src.data.table_features import fit_table, table_features
    from src.training.boosting import fit_boosted, group_folds, score_positive

    rng = np.random.default_rng(5)
    table = lesions(rng, 110, 0, 0).astype({"tbp_lv_color": str, "age_approx": str, "tbp_lv_area": str})
    table.attrs["id_column"] = "isic_id"
    y = table.pop("target").to_numpy()
    image = 1 / (1 + np.exp(-(1.6 * table["image_part"] + rng.normal(0, 0.8, len(table)))))
    table = table.drop(columns=["image_part", "table_part"]).set_index("isic_id", drop=False)
    X = table_features(table, fit_table(table, group="patient_id")).reset_index(drop=True)
    folds = group_folds(y, table["patient_id"].to_numpy(), 5, seed=0)
    alone = fit_boosted(X, y, X.head(3), folds, "pauc@0.8", learning_rate=0.1, patience=20).oof
    X["image"] = image.to_numpy()
    both = fit_boosted(X, y, X.head(3), folds, "pauc@0.8", learning_rate=0.1, patience=20).oof
    scores = {name: score_positive(p, y, "pauc@0.8") for name, p in
              {"image": image.to_numpy(), "table": alone, "stack": both}.items()}
    assert scores["stack"] >= max(scores["image"], scores["table"]), scores


# ---------------------------------------------------------------- --metadata and the stack on a trained K-fold run

TRAIN = ["--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages", "1",
         "--stage1-size", "16", "16", "--stage1-epochs", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def metadata_run(isic24, tmp_path_factory):
    """A 2-fold --metadata run on the ISIC-2024-like data, with only --metric, --sampling and --group-column."""
    from src.train import main as train_command

    root = tmp_path_factory.mktemp("metadata")
    argv = ["--data", str(isic24), "--metric", "pauc@0.8", "--sampling", "balanced", "--group-column", "patient_id",
            "--metadata", "--folds", "2", "--out", str(root / "run"), "--split-file", str(root / "split.csv"), *TRAIN]
    return root, train_command(argv)


def test_the_metadata_branch_is_built_saved_and_restored_by_submit(isic24, metadata_run):
    from src.inference.prediction import build_run_model, load_group
    from src.submit import main as submit_command

    root, result = metadata_run
    assert result["metric"] == "pauc@0.8"
    run = load_group(root / "run")
    model = build_run_model(run.members[0])
    assert [t.name for t in model.inputs] == ["image", "table"] and model.get_layer("table_dense0")
    assert model.inputs[1].shape[-1] == run.members[0].table.shape[1] > 20  # numbers, one-hot, per-patient
    assert (root / "run" / "fold-0" / "table_features.json").is_file()
    out = submit_command(["--data", str(isic24), "--run", str(root / "run"), "--out", str(root / "subs")])
    oof = pd.read_csv(root / "run" / "oof_predictions.csv")
    # submit's out-of-fold score is the one training wrote: the same network, fed the same table rows
    assert out["scores"][0]["score"] == pytest.approx(score(np.stack([1 - oof["prob_1"], oof["prob_1"]], 1),
                                                            oof["label"].to_numpy(), "pauc@0.8"), abs=1e-4)
    assert len(pd.read_csv(out["path"])) == len(pd.read_csv(isic24 / "sample_submission.csv"))


def test_the_stack_over_the_runs_out_of_fold_predictions_writes_a_checked_submission(isic24, metadata_run, capsys):
    from src.stack import main as stack_command

    root, _ = metadata_run
    result = stack_command(["--data", str(isic24), "--runs", str(root / "run"), "--folds", "3", "--out",
                            str(root / "subs"), "--name", "stacked", "--learning-rate", "0.2", "--patience", "10"])
    said = capsys.readouterr().out
    assert "data settings from the run's config: --group-column patient_id" in said and "metric: pauc@0.8" in said
    assert [(r["features"], r["model"]) for r in result["scores"]] == [
        ("images", "mean"), ("table", "lightgbm"), ("stack", "lightgbm"), ("stack", "logistic"), ("stack", "blend")]
    assert result["kept"]["score"] >= result["scores"][0]["score"]  # never below the images alone out of fold
    written = pd.read_csv(root / "subs" / "stacked.csv")
    assert written.columns.tolist() == ["isic_id", "target"] and written["target"].between(0, 1).all()
    assert (root / "subs" / "stacked.importance.png").is_file() and (root / "subs" / "stacked.json").is_file()
    with pytest.raises(KitError, match=rf"one fold of the K-fold run {root / 'run'}.*pass --runs {root / 'run'}$"):
        stack_command(["--data", str(isic24), "--runs", str(root / "run" / "fold-0"), "--out", str(root / "subs")])


def test_predict_feeds_each_images_own_table_row_and_names_a_file_without_one(isic24, metadata_run, tmp_path):
    """src.predict on a --metadata run: a test image and a training image named by the user, each fed its own
    table row (found by its file name's id), give what the run gives those ids; a file whose name is in neither
    table is refused by name."""
    import shutil

    from src.data.imagefiles import scan_images
    from src.inference.prediction import load_run, predict_frame
    from src.predict import main as predict_command

    root, _ = metadata_run
    run = load_run(root / "run" / "fold-0")
    test_ids = pd.read_csv(isic24 / "sample_submission.csv")["isic_id"].astype(str).tolist()[:2]
    train_id = pd.read_csv(isic24 / "train-metadata.csv")["isic_id"].astype(str).iloc[0]
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(isic24 / "train-image" / "image" / f"{train_id}.jpg", mine / f"{train_id}.jpg")
    files = [str(isic24 / "test-image" / "image" / f"{i}.jpg") for i in test_ids] + [str(mine / f"{train_id}.jpg")]
    shutil.copy(files[0], mine / f"{test_ids[1]}.jpg")  # the first test image's pixels under the second's id
    said = predict_command(["--run", str(root / "run" / "fold-0"), *files, str(mine / f"{test_ids[1]}.jpg")])
    expected = predict_frame(run, scan_images(files).assign(id=test_ids + [train_id]))[:, 1]
    assert [path for path, _ in said[:3]] == files
    assert [dict(best)[1] for _, best in said[:3]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert dict(said[3][1])[1] != pytest.approx(expected[0], abs=1e-6)  # the row is read by the file's name
    shutil.copy(files[0], mine / "photo.jpg")
    with pytest.raises(KitError, match=r"photo\.jpg: no row for this image in \S*train-metadata\.csv or "
                       r"\S*test-metadata\.csv \(looked for the id 'photo\.jpg', then 'photo', in column isic_id\)"):
        predict_command(["--run", str(root / "run" / "fold-0"), files[1], str(mine / "photo.jpg")])


# ---------------------------------------------------------------- what the stack cannot use (run folders faked)


def fake_run(folder, folds: int = 0, oof: bool = False, pseudo_rows: int = 0, **config):
    """Write the files the stack's checks read: config.json, fold-<i>/split.csv (with pseudo_rows pseudo-labelled
    test images), oof_predictions.csv."""
    import json

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"data": "d", **config}))
    for i in range(folds):
        (folder / f"fold-{i}").mkdir()
        source = ["train"] * 3 + ["pseudo"] * pseudo_rows
        pd.DataFrame({"id": list("abcdef"[:len(source)]), "split": "train", "source": source}).to_csv(
            folder / f"fold-{i}" / "split.csv", index=False)
    if oof:
        pd.DataFrame({"id": ["a"], "label": [1], "prob_0": [0.2], "prob_1": [0.8]}).to_csv(
            folder / "oof_predictions.csv", index=False)
    return str(folder)


def test_the_stack_refuses_a_full_fit_run_by_name_saying_what_it_can_use(tmp_path):
    from src.stack import main as stack_command

    cv = fake_run(tmp_path / "cv", folds=2, oof=True)
    full = fake_run(tmp_path / "cv-fullfit", full_fit=f"{cv}/fold-0")
    with pytest.raises(KitError, match=rf"--runs {full}: a full-fit run \(of {cv}/fold-0: .*no out-of-fold "
                                       rf"predictions.*--runs {cv} \(its oof_predictions.csv\); or stack the others "
                                       rf"without it \(--runs {cv}\)"):
        stack_command(["--data", str(tmp_path), "--runs", f"{cv},{full}", "--out", str(tmp_path / "subs")])
    one = fake_run(tmp_path / "one")
    full = fake_run(tmp_path / "one-fullfit", full_fit=one)
    with pytest.raises(KitError, match=rf"--runs {full}: a full-fit.*its reference {one} is not a fold of a K-fold "
                                       r"run.*--folds K"):
        stack_command(["--data", str(tmp_path), "--runs", full, "--out", str(tmp_path / "subs")])
    with pytest.raises(KitError, match=rf"--runs {one}: no oof_predictions.csv.*--folds K"):
        stack_command(["--data", str(tmp_path), "--runs", one, "--out", str(tmp_path / "subs")])
    assert not (tmp_path / "subs").exists()


def test_the_stack_says_when_pseudo_labels_or_soft_labels_touched_a_run(tmp_path, capsys):
    from src.training.stacking import check_stackable

    pseudo = fake_run(tmp_path / "pseudo", folds=2, oof=True, pseudo_rows=2, pseudo_labels="subs/first.csv")
    check_stackable(pseudo, [pseudo])
    said = capsys.readouterr().out
    assert f"note: {pseudo} trained with --pseudo-labels subs/first.csv (2 test images" in said
    assert "may be a little optimistic" in said
    none_taken = fake_run(tmp_path / "none", folds=2, oof=True, pseudo_labels="subs/first.csv")  # none confident
    soft = fake_run(tmp_path / "soft", folds=2, oof=True, soft_labels="runs/cv/oof_predictions.csv")
    check_stackable(none_taken, [none_taken])
    assert capsys.readouterr().out == ""
    check_stackable(soft, [soft])
    assert f"note: {soft} trained on --soft-labels runs/cv/oof_predictions.csv" in capsys.readouterr().out
