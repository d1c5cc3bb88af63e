"""src.stack's second stage chosen out of fold (issue 38 item 4) and the metadata table's field probes (issue 41).

No network is trained: the competition's table is rewritten by hand, and a K-fold run is faked as its files
(config.json, fold-<i>/, oof_predictions.csv) with its test prediction handed in (run_test patched).
"""
from __future__ import annotations

import json
import re
import types

import numpy as np
import pandas as pd
import pytest

from src.core.errors import KitError


def linear_rows(frame: pd.DataFrame, rng) -> tuple:
    """Return (ids, patients and eight numbers whose sum is the risk, the top 8% positive; the 0/1 targets)."""
    numbers = rng.normal(size=(len(frame), 8))
    risk = numbers.sum(axis=1) + 0.5 * rng.normal(size=len(frame))
    out = frame[["isic_id", "patient_id"]].copy()
    for i in range(8):
        out[f"m{i}"] = numbers[:, i].round(3)
    return out, (risk > np.quantile(risk, 0.92)).astype(int)


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """An ISIC-2024-like competition whose table holds a linear signal (a sum of eight numbers: a logistic
    regression's case, which trees on a few hundred rows approximate in steps), with a training-only column
    (mel_thick_mm, as ISIC 2024's) and a solution."""
    from src.data.demo_table import write_table_competition

    root = tmp_path_factory.mktemp("linear") / "comp"
    write_table_competition(root, patients=36, test_patients=8, seed=3)
    rng = np.random.default_rng(0)
    train, y = linear_rows(pd.read_csv(root / "train-metadata.csv"), rng)
    test, y_test = linear_rows(pd.read_csv(root / "test-metadata.csv"), rng)
    train["mel_thick_mm"] = np.where(y == 1, 1.0, np.nan)  # a diagnosis: known only once the answer is
    train["target"] = y
    train.to_csv(root / "train-metadata.csv", index=False)
    test.to_csv(root / "test-metadata.csv", index=False)
    pd.DataFrame({"isic_id": test["isic_id"], "target": y_test}).to_csv(root / "solution.csv", index=False)
    return root


def fake_kfold_run(folder, root, oof: np.ndarray, test: np.ndarray, monkeypatch) -> str:
    """Write a K-fold run's files the stack reads (its out-of-fold probabilities of every training id) and hand
    its test probabilities to the stack in place of its folds' predictions."""
    from src.core.settings import TrainConfig
    from src.runs.folder import RunFolder
    import src.training.stacking as stacking

    ids = pd.read_csv(root / "train-metadata.csv", dtype={"isic_id": str})["isic_id"]
    for part in (folder, folder / "fold-0", folder / "fold-1"):
        part.mkdir(parents=True)
        (part / "config.json").write_text(json.dumps({"data": str(root)}))
    pd.DataFrame({"id": ids, "prob_0": 1 - oof, "prob_1": oof}).to_csv(folder / "oof_predictions.csv", index=False)
    config = TrainConfig(data=str(root), metric="auc", group_column="patient_id")
    member = types.SimpleNamespace(config=config, folder=RunFolder(folder / "fold-0"))
    monkeypatch.setattr(stacking, "load_group", lambda f: types.SimpleNamespace(folder=folder, members=[member]))
    monkeypatch.setattr(stacking, "run_test", lambda group, comp, positive: test)
    return str(folder)


def stack_args(root, out, *more) -> list:
    return ["--data", str(root), "--out", str(out), "--learning-rate", "0.1", "--patience", "20",
            "--solution", str(root / "solution.csv"), *more]


# ---------------------------------------------------------------- the second stage chosen out of fold


def test_the_stack_keeps_the_logistic_regression_when_a_linear_signal_wins_out_of_fold(linear, tmp_path, capsys,
                                                                                       monkeypatch):
    """A weak images input and a table whose signal is a sum: the logistic regression beats LightGBM and their
    blend out of fold and is kept; each candidate's score is one line; the choice is in NAME.json and
    NAME.scores.csv; the kept score is no lower than any input's; the training-only column is left out, said."""
    from src.stack import main as stack_command

    y = pd.read_csv(linear / "train-metadata.csv")["target"].to_numpy()
    rng = np.random.default_rng(1)
    oof = 1 / (1 + np.exp(-(1.0 * y + rng.normal(0, 1.0, len(y)) - 2)))
    run = fake_kfold_run(tmp_path / "cnn", linear, oof, rng.random(75), monkeypatch)
    result = stack_command(stack_args(linear, tmp_path / "subs", "--runs", run, "--metric", "auc"))
    said = capsys.readouterr().out
    scores = pd.read_csv(tmp_path / "subs" / "stack.scores.csv")
    assert result["kept"]["model"] == "logistic" and result["kept"]["features"] == "stack", said
    assert scores[["features", "model"]].values.tolist() == [
        ["images", "mean"], ["table", "lightgbm"], ["stack", "lightgbm"], ["stack", "logistic"], ["stack", "blend"]]
    assert scores.loc[scores["kept"], "model"].tolist() == ["logistic"]
    assert result["kept"]["score"] == scores["score"].max() >= scores.loc[scores["features"] == "images", "score"].max()
    lines = said.splitlines()
    for row in scores.itertuples():
        assert sum(f"{row.score:.4f}" in line for line in lines) >= 1
    assert any("stack: table and runs, logistic regression (5-fold CV)" in line and line.endswith("<- kept")
               for line in lines)
    assert "kept: stack: table and runs, logistic regression (5-fold CV): out-of-fold auc" in said
    assert re.search(r"reference: the training classes' prior for every image scores auc 0.5000; the stack 0\.9\d+ "
                     r"\(higher is better\)", said)
    assert "table: left out mel_thick_mm: not in test-metadata.csv (training-only columns)" in said
    manifest = json.loads((tmp_path / "subs" / "stack.json").read_text())
    assert manifest["second_stage"]["model"] == "logistic"
    assert manifest["holdout"][-1]["run"].startswith("ensemble: kept, stack: table and runs, logistic")
    importance = pd.read_csv(tmp_path / "subs" / "stack.importance.csv")
    assert {"feature", "gain", "logistic_coef"} <= set(importance.columns) and "mel_thick_mm" not in set(
        importance["feature"])


def test_the_stack_keeps_the_runs_alone_when_no_second_stage_beats_them(linear, tmp_path, capsys, monkeypatch):
    """Images whose out-of-fold probabilities already order every lesion right: no second stage can beat them,
    so the runs' own prediction is the submission, and the stack says so."""
    from src.stack import main as stack_command

    y = pd.read_csv(linear / "train-metadata.csv")["target"].to_numpy()
    rng = np.random.default_rng(2)
    oof = 0.1 + 0.8 * y + rng.uniform(0, 0.05, len(y))
    test = rng.random(75)
    run = fake_kfold_run(tmp_path / "cnn", linear, oof, test, monkeypatch)
    result = stack_command(stack_args(linear, tmp_path / "subs", "--runs", run, "--metric", "pauc@0.8"))
    said = capsys.readouterr().out
    assert result["kept"] == {"features": "images", "model": "mean", "score": pytest.approx(0.2)}, said
    assert "kept: the images alone (mean): no second stage beat their out-of-fold pauc@0.8 (0.2000)" in said
    written = pd.read_csv(tmp_path / "subs" / "stack.csv")
    assert written["target"].to_numpy() == pytest.approx(test)
    assert all(r["score"] <= result["kept"]["score"] for r in result["scores"])


def test_the_blend_is_a_mean_rank_for_ranking_metrics_and_a_mean_probability_else():
    from src.training.second_stage import blend, choose

    oof, test = blend([np.array([0.1, 0.9, 0.5]), np.array([0.3, 0.2, 0.1])], [np.array([1.0, 0.0])] * 2, "auc")
    assert oof == pytest.approx([(1 / 3 + 1) / 2, (1 + 2 / 3) / 2, (2 / 3 + 1 / 3) / 2]) and test == pytest.approx(
        [1.0, 0.5])
    assert blend([np.array([0.2]), np.array([0.4])], [np.array([0.0])] * 2, "log_loss")[0] == pytest.approx([0.3])
    assert choose([0.5, 0.7, 0.7], "auc") == 1 and choose([0.5, 0.3, float("nan")], "log_loss") == 1
    assert choose([0.7, 0.7], "pauc@0.8") == 0  # an input listed first is kept on a tie


# ---------------------------------------------------------------- flags the stack refuses at the start


def test_the_stack_refuses_one_fold_and_a_metric_it_cannot_score_at_the_flags(tmp_path):
    from src.stack import main as stack_command

    with pytest.raises(KitError, match=r"--folds: expected 2 or more \(each fold's rows are scored by a model "
                                       r"fitted on the other folds\), got 1"):
        stack_command(["--data", str(tmp_path), "--folds", "1"])
    with pytest.raises(KitError, match=r"--metric: expected one of auc, pauc@R \(pauc@0.8 \.\.\.\), log_loss, accuracy, "
                                       r"f1_macro, qwk: the stack scores one yes/no probability, which map@5 cannot "
                                       r"score, got 'map@5'"):
        stack_command(["--data", str(tmp_path), "--metric", "map@5"])
    with pytest.raises(KitError, match="--metric: expected one of auc, pauc@R"):
        stack_command(["--data", str(tmp_path), "--metric", "rmse"])


def test_a_fold_of_a_k_fold_run_is_refused_naming_the_k_fold_run_to_pass(tmp_path):
    from src.stack import main as stack_command

    run = tmp_path / "cnn"
    for part in (run, run / "fold-0", run / "fold-1"):
        part.mkdir()
        (part / "config.json").write_text(json.dumps({"data": "d"}))
    (run / "oof_predictions.csv").write_text("id,label,prob_0,prob_1\na,1,0.2,0.8\n")
    with pytest.raises(KitError, match=rf"--runs {run}/fold-0: one fold of the K-fold run {run}, whose "
                                       rf"oof_predictions.csv holds every training image predicted out of fold: "
                                       rf"pass --runs {run}$"):
        stack_command(["--data", str(tmp_path), "--runs", f"{run}/fold-0", "--out", str(tmp_path / "subs")])


# ---------------------------------------------------------------- the metadata table's field probes (issue 41)


def table_of(**columns) -> pd.DataFrame:
    """A training table of 60 lesions over 8 patients, with the given text columns."""
    table = pd.DataFrame({"isic_id": [f"L{i:02d}" for i in range(60)], "patient_id": [f"P{i % 8}" for i in range(60)],
                          **columns, "target": ["0"] * 60}).astype(str)
    table.attrs["id_column"], table.attrs["path"] = "isic_id", "train-metadata.csv"
    return table.set_index("isic_id", drop=False)


def test_an_infinite_cell_is_read_as_missing_and_said_naming_the_column_and_row(capsys):
    from src.data.table_features import fit_table, table_features

    area = [str(float(i)) for i in range(60)]
    area[7] = "inf"
    table = table_of(tbp_lv_area=area)
    spec = fit_table(table, exclude=("target",), group="patient_id")
    said = capsys.readouterr().out
    assert "table: train-metadata.csv: column tbp_lv_area: 1 infinite cell(s) (first: row L07) read as missing" in said
    (column, mean, std, had_missing), = spec.numbers
    assert np.isfinite(mean) and np.isfinite(std) and had_missing
    features = table_features(table, spec)
    assert np.isfinite(features.to_numpy()).all() and features.loc["L07", "tbp_lv_area_missing"] == 1.0
    assert features.loc["L07", "tbp_lv_area"] == 0.0 and features.loc["L08", "tbp_lv_area"] != 0.0


@pytest.mark.parametrize("unknown", [2, 7])  # 3% and 12% of the rows, as age_approx's "unknown" was
def test_a_number_column_with_unknown_cells_stays_a_number_with_missing_cells_said(unknown, capsys):
    from src.data.table_features import fit_table, table_features

    ages = [str(30 + i) for i in range(60)]
    ages[:unknown] = ["unknown"] * unknown
    table = table_of(age_approx=ages, sex=["male", "female"] * 30, image_type=["TBP tile"] * 60,
                     attribution=[f"clinic {i}" for i in range(60)])
    spec = fit_table(table, exclude=("target", "patient_id"))
    said = capsys.readouterr().out
    assert [n[0] for n in spec.numbers] == ["age_approx"] and [c[0] for c in spec.categories] == ["sex"]
    assert f"table: train-metadata.csv: column age_approx: {unknown} cell(s) 'unknown' read as missing (a number " \
           "column)" in said
    assert "table: left out of the features: image_type (one value), attribution (60 text levels: an id or free " \
           "text)" in said
    features = table_features(table, spec)
    assert features["age_approx_missing"].sum() == unknown and features.loc["L59", "age_approx"] > 0


def test_an_id_listed_twice_with_different_cells_is_refused_naming_the_file_column_and_id(linear, tmp_path):
    import shutil

    from src.stack import main as stack_command

    root = tmp_path / "comp"
    shutil.copytree(linear, root)
    table = pd.read_csv(root / "train-metadata.csv", dtype=str, keep_default_na=False)
    repeat = table.iloc[[3]].assign(m0="9.5")
    pd.concat([table, repeat, table.iloc[[5]]]).to_csv(root / "train-metadata.csv", index=False)
    the_id = table["isic_id"].iloc[3]
    with pytest.raises(KitError, match=rf"train-metadata.csv: id '{the_id}' \(column isic_id\) is listed 2 times with "
                                       r"different cells \(column m0: .* / 9.5\): expected one row per image"):
        stack_command(stack_args(root, tmp_path / "subs", "--group-column", "patient_id"))


def test_training_only_columns_are_left_out_of_the_metadata_branchs_features_and_said(linear, capsys):
    """ISIC 2024's train-metadata.csv holds diagnoses test-metadata.csv lacks: a fresh fit (src.train --metadata,
    src.stack, src.auto) leaves them out in one line; a run's saved spec that reads one is refused naming it."""
    from src.core.config import DataOptions
    from src.data.sample_submission import read_sample_submission
    from src.data.table_features import TableSpec, features_by_id

    schema = read_sample_submission(linear)
    opts = DataOptions(data=str(linear), group_column="patient_id")
    spec, features = features_by_id(linear, opts, schema, ["target"])
    said = capsys.readouterr().out
    assert "table: left out mel_thick_mm: not in test-metadata.csv (training-only columns)" in said
    assert "mel_thick_mm" not in spec.columns and not any("mel_thick" in c for c in features.columns)
    assert set(schema.ids) <= set(features.index)
    saved = TableSpec(spec.id_column, spec.numbers + (("mel_thick_mm", 1.0, 1.0, True),), (), spec.group)
    with pytest.raises(KitError, match="test-metadata.csv: no column 'mel_thick_mm'"):
        features_by_id(linear, opts, schema, ["target"], saved.as_record())
