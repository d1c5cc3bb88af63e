"""K-fold runs (issue 15): every fold trained, out-of-fold predictions, the CV table."""
from __future__ import annotations

import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.train import main as train_command
from tests.conftest import make_folder_competition


TRAIN = ["--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages", "1",
         "--stage1-size", "16", "16", "--stage1-epochs", "1", "--batch-size", "8"]


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    comp = make_folder_competition(root / "comp", per_class=6)
    argv = ["--data", str(comp), "--folds", "3", "--out", str(root / "run"), "--split-file", str(root / "split.csv"),
            *TRAIN]
    return comp, root, argv, train_command(argv)


def test_three_folds_train_and_every_image_is_predicted_once(cv_run):
    comp, root, _, result = cv_run
    run = root / "run"
    assert sorted(p.name for p in run.glob("fold-*")) == ["fold-0", "fold-1", "fold-2"]
    oof = pd.read_csv(run / "oof_predictions.csv", dtype={"id": str})
    split = pd.read_csv(root / "split.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(split["id"]) and not oof["id"].duplicated().any()
    held_out_by = dict(zip(oof["id"], oof["fold"]))
    assert all(held_out_by[i] == f for i, f in zip(split["id"], split["fold"]))  # by the fold that held it out
    assert (run / "cv.png").is_file() and (run / "config.json").is_file()


def test_cv_mean_is_the_mean_of_the_fold_scores(cv_run):
    _, root, _, result = cv_run
    table = pd.read_csv(root / "run" / "cv.csv", dtype={"fold": str})
    folds = table[table["fold"].isin(["0", "1", "2"])]["score"]
    assert table.loc[table["fold"] == "mean", "score"].iloc[0] == pytest.approx(folds.mean())
    assert table.loc[table["fold"] == "std", "score"].iloc[0] == pytest.approx(folds.std(ddof=1))
    assert result["cv_mean"] == pytest.approx(folds.mean()) and result["metric"] == "accuracy"


def test_a_second_run_without_resume_is_refused_and_with_resume_is_free(cv_run, capsys):
    _, root, argv, result = cv_run
    with pytest.raises(KitError, match="already holds a run: pass --resume"):
        train_command(argv)
    again = train_command([*argv, "--resume"])
    assert again["cv_mean"] == pytest.approx(result["cv_mean"])
    assert capsys.readouterr().out.count("finished earlier") == 3


def test_one_fold_still_trains_alone(tmp_path):
    comp = make_folder_competition(tmp_path / "comp", per_class=6)
    result = train_command(["--data", str(comp), "--folds", "3", "--fold", "1", "--out", str(tmp_path / "one"), *TRAIN])
    assert result["final_stage"] == "stage1" and not (tmp_path / "one" / "fold-1").exists()
    assert parse_config(TrainConfig, []).fold == -1


def test_submit_averages_the_folds_and_scores_out_of_fold(cv_run, tmp_path):
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit

    comp, root, _, result = cv_run
    args = ["--data", str(comp), "--run", str(root / "run"), "--out", str(tmp_path), "--name", "cv"]
    written = submit(parse_config(SubmitConfig, args))
    table = pd.read_csv(tmp_path / "cv.holdout.csv")
    assert "3-fold CV" in table["run"].iloc[0]
    assert table["score"].iloc[0] == pytest.approx(result["cv_mean"], abs=0.2)  # pooled vs mean of folds
    assert len(pd.read_csv(written["path"])) == 5
    blend = submit(parse_config(SubmitConfig, [*args, "--run", str(root / "run"), "--ensemble-weights", "fit",
                                               "--name", "blend"]))
    assert sum(blend["weights"]) == pytest.approx(1.0) and not pd.isna(blend["scores"][-1]["score"])


def test_k_fold_runs_on_other_folds_are_not_blended(cv_run, tmp_path):
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit

    comp, root, argv, _ = cv_run
    other = tmp_path / "other"
    train_command(["--data", str(comp), "--folds", "3", "--seed", "7", "--out", str(other),
                   "--split-file", str(tmp_path / "split7.csv"), *TRAIN])
    with pytest.raises(KitError, match=r"used other folds \(.*fold-0/split.csv and .*fold-0/split.csv\)"):
        submit(parse_config(SubmitConfig, ["--data", str(comp), "--run", str(root / "run"), "--run", str(other),
                                           "--ensemble-weights", "fit", "--out", str(tmp_path)]))


def test_pseudo_labels_join_training_only_and_the_holdout_table_counts_them(tmp_path):
    """issue 15: --pseudo-labels SUBMISSION --pseudo-threshold P: confident test images train, never validate."""
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit

    comp = make_folder_competition(tmp_path / "comp", per_class=6)
    common = ["--data", str(comp), "--split-file", str(tmp_path / "split.csv"), *TRAIN]
    train_command([*common, "--out", str(tmp_path / "base")])
    first = ["--data", str(comp), "--out", str(tmp_path / "subs")]
    submit(parse_config(SubmitConfig, [*first, "--run", str(tmp_path / "base"), "--name", "first"]))
    probs = pd.read_csv(tmp_path / "subs" / "first.probs.csv")
    assert len(probs) == 5 and list(probs.columns) == ["id", "prob_0", "prob_1", "prob_2"]
    train_command([*common, "--out", str(tmp_path / "pseudo"), "--pseudo-labels", str(tmp_path / "subs" / "first.csv"),
                   "--pseudo-threshold", "0"])
    split = pd.read_csv(tmp_path / "pseudo" / "split.csv", dtype={"id": str})
    pseudo = split[split["source"] == "pseudo"]
    assert len(pseudo) == 5 and set(pseudo["split"]) == {"train"} and (pseudo["fold"] == -1).all()
    base = pd.read_csv(tmp_path / "base" / "split.csv", dtype={"id": str})
    assert set(split.loc[split["split"] == "val", "id"]) == set(base.loc[base["split"] == "val", "id"])
    result = submit(parse_config(SubmitConfig, [*first, "--run", str(tmp_path / "base"), "--run",
                                                 str(tmp_path / "pseudo"), "--name", "both"]))
    counts = {row["run"]: row["pseudo_images"] for row in result["scores"] if row["run"] != "ensemble"}
    assert counts == {str(tmp_path / "base"): 0, str(tmp_path / "pseudo"): 5}
    with pytest.raises(KitError, match="no test probabilities"):
        train_command([*common, "--out", str(tmp_path / "bad"), "--pseudo-labels", str(tmp_path / "nothing.csv")])
