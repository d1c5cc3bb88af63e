"""The trivial answer's score per task kind, the no-better verdict, and early stopping that a noisy start
cannot end (issue 38: never below a plain baseline)."""
from __future__ import annotations

import types

import keras
import numpy as np
import pandas as pd
import pytest

from src.core.settings import TrainConfig
from src.data.class_maps import ClassMap
from src.inference.reference import Reference, compare, identity_reference, no_better, reference_answer
from src.runs.folder import RunFolder
from src.runs.stages import plan_stages, stage_rates
from src.training.early_stopping import ResumableEarlyStopping, earliest_stop, stop_state
from src.training.holdout import judge_holdout


def test_the_class_prior_scores_each_label_metric_as_by_hand():
    y_train, y_val = np.array([0, 0, 0, 1]), np.array([0, 1, 0, 0])
    prior = np.array([0.75, 0.25])
    expected = -np.mean(np.log([prior[0], prior[1], prior[0], prior[0]]))
    assert reference_answer("log_loss", y_train, y_val, 2).score == pytest.approx(expected)
    assert reference_answer("accuracy", y_train, y_val, 2).score == 0.75  # the majority class every time
    assert reference_answer("auc", y_train, y_val, 2).score == 0.5       # one score for all: no ranking
    assert reference_answer("qwk", np.array([2, 2, 1]), np.array([0, 1, 2]), 3).score == 0.0
    # map@2 of the prior: the two most frequent classes, in their order
    ref = reference_answer("map@2", np.array([2, 2, 2, 0, 0, 1]), np.array([2, 0, 1]), 3)
    assert ref.score == pytest.approx((1 + 0.5 + 0) / 3) and "prior" in ref.what


def test_the_training_mean_is_a_numbers_reference_and_the_median_for_mae():
    y_train, y_val = np.array([1.0, 2.0, 3.0, 10.0]), np.array([4.0, 0.0])
    rmse = reference_answer("rmse", y_train, y_val, 1, number=True)
    assert rmse.score == pytest.approx(np.sqrt(((4 - 4) ** 2 + (0 - 4) ** 2) / 2)) and "mean (4)" in rmse.what
    mae = reference_answer("mae", y_train, y_val, 1, number=True)
    assert mae.score == pytest.approx((1.5 + 2.5) / 2) and "median" in mae.what


def test_each_tags_rate_with_fitted_thresholds_is_the_tags_reference():
    y_train = np.array([[1, 0], [1, 0], [1, 1], [1, 0]])
    y_val = np.array([[1, 0], [1, 1]])
    ref = reference_answer("f2_samples", y_train, y_val, 2)
    # both tags for every image (tag 1's threshold fitted down to its 0.25 rate): the best constant answer
    assert ref.score == pytest.approx((5 * 0.5 * 1 / (4 * 0.5 + 1) + 1.0) / 2) and "thresholds fitted" in ref.what


def test_the_most_frequent_identities_with_the_new_answer_where_it_scores_best():
    train = np.array([0, 0, 0, 1, 1, 2])
    truth = np.array([3, 3, 0, 3])  # 3 == classes: an identity the training set never shows (new_whale)
    ref = identity_reference(train, truth, classes=3, k=5)
    assert ref.score == pytest.approx((1 + 1 + 0.5 + 1) / 4) and "new answer at rank 1" in ref.what


def test_a_result_no_better_than_the_trivial_answer_is_said_loudly():
    reference = Reference(0.6931, "the training classes' prior for every image")
    line, worse = compare(0.6931, reference, "log_loss")
    assert worse and line.startswith("WARNING: NO BETTER THAN THE TRIVIAL ANSWER") and "0.6931" in line
    line, worse = compare(0.31, reference, "log_loss")
    assert not worse and line.startswith("reference: the training classes' prior") and "lower is better" in line
    assert no_better(0.5, Reference(0.5, ""), "auc") and not no_better(0.51, Reference(0.5, ""), "auc")
    assert not no_better(float("nan"), reference, "log_loss")  # no score: no verdict


def test_a_run_whose_holdout_is_the_constant_answer_is_judged_no_better(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    class_map = ClassMap("label", ("cat", "dog"))
    train = pd.DataFrame({"id": [f"t{i}" for i in range(8)], "label": ["cat", "dog"] * 4})
    val = pd.DataFrame({"id": ["v0", "v1", "v2", "v3"], "label": ["cat", "dog", "dog", "cat"]})
    pd.DataFrame({"id": val["id"], "label": val["label"], "predicted": "cat", "prob_cat": 0.47,
                  "prob_dog": 0.53}).to_csv(run.holdout_file, index=False)
    data = types.SimpleNamespace(class_map=class_map, train=train, val=val, target="label", positive=1,
                                 y_train=class_map.encode(train["label"]), y_val=class_map.encode(val["label"]))
    verdict = judge_holdout(types.SimpleNamespace(metric="log_loss"), data, run)
    assert verdict["no_better"] and verdict["reference_score"] == pytest.approx(np.log(2))
    assert verdict["holdout_score"] == pytest.approx(-np.log(0.47) / 2 - np.log(0.53) / 2)
    assert "NO BETTER THAN THE TRIVIAL ANSWER" in verdict["line"]


def run_stopper(stopper, logs):
    """Feed epochs' logs to an early stop; return the 1-based epoch it stopped at (0: it never stopped)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, row in enumerate(logs):
        stopper.on_epoch_end(epoch, dict(row))
        if getattr(model, "stop_training", False):
            return epoch + 1
    return 0


def test_a_near_constant_first_epoch_does_not_end_the_stage_before_a_third_of_its_epochs():
    # seen from random weights: epoch 1's near-constant answer (0.713) beats the overconfident epochs after it
    values = [0.713, 0.80, 0.76, 0.75, 0.74, 0.72, 0.73, 0.74, 0.71, 0.70, 0.69, 0.68]
    logs = [{"val_log_loss": v, "val_loss": v} for v in values]
    assert run_stopper(ResumableEarlyStopping(patience=4, metric="log_loss"), logs) == 5  # Keras's rule: epoch 5
    planned = 30
    assert earliest_stop(planned, 4) == 10
    stopper = ResumableEarlyStopping(patience=4, metric="log_loss", min_epochs=earliest_stop(planned, 4))
    assert run_stopper(stopper, logs) == 0 and stopper.best.value == pytest.approx(0.68)  # learnt past epoch 1


def test_a_noisy_metric_does_not_stop_a_stage_whose_val_loss_still_falls():
    qwk = [0.30, 0.64, 0.41, 0.55, 0.50, 0.58, 0.60, 0.62, 0.66]
    logs = [{"val_qwk": q, "val_loss": 1.0 - 0.05 * i} for i, q in enumerate(qwk)]
    stopper = ResumableEarlyStopping(patience=3, metric="qwk")
    assert run_stopper(stopper, logs) == 0 and stopper.best.value == pytest.approx(0.66)
    flat = [{"val_qwk": q, "val_loss": 0.5} for q in qwk]  # neither moving: patience ends it
    assert run_stopper(ResumableEarlyStopping(patience=3, metric="qwk"), flat) == 5
    best, loss, wait, lowest = stop_state(pd.DataFrame(logs[:5]), "qwk")
    assert (best, wait, lowest) == (0.64, 0, pytest.approx(0.8))  # a resume keeps the loss-backed wait


def test_stage_rates_follow_the_weights_unless_given():
    scratch = TrainConfig(weights="none")
    assert stage_rates(scratch)[:2] == (1e-3, 3e-4) and "random weights" in stage_rates(scratch)[2]
    assert [s.lr for s in plan_stages(scratch)] == [1e-3, 3e-4]
    assert stage_rates(TrainConfig())[:2] == (1e-3, 1e-6)
    given = TrainConfig(weights="none", stage1_lr=1e-2, stage2_lr=1e-5)
    assert stage_rates(given) == (1e-2, 1e-5, "the rates given")


def test_a_fold_far_below_its_siblings_is_named_and_ordinary_spread_is_not():
    from src.training.cross_validation import far_folds

    def table(scores):
        rows = [{"fold": str(i), "images": 10, "score": s} for i, s in enumerate(scores)]
        return pd.DataFrame(rows + [{"fold": "mean", "images": 50, "score": np.mean(scores)},
                                    {"fold": "std", "images": 50, "score": np.std(scores)}])

    found = far_folds(table([0.97, 0.99, 0.64, 0.98, 0.97]), "qwk")  # issue 38's APTOS-like run
    assert list(found) == [2] and "qwk 0.6400, far below its siblings (median 0.9750" in found[2]
    assert far_folds(table([0.93, 0.97, 0.91, 0.95, 0.96]), "qwk") == {}
    assert list(far_folds(table([6.1, 6.3, 9.8, 6.2]), "rmse")) == [2]  # lower is better: the high one
    assert far_folds(table([0.5, 0.9]), "auc") == {}  # two folds: no siblings to compare with


def test_the_autopilot_never_keeps_a_candidate_no_better_than_the_trivial_answer(tmp_path, capsys):
    from src.runs.auto_state import AutoState

    state = AutoState(tmp_path / "auto_state.json", metric="log_loss")
    candidate = tmp_path / "candidates" / "auto-a.csv"
    candidate.parent.mkdir()
    candidate.write_text("id,label\n1,0.5\n")
    assert not state.offer(str(candidate), 0.693, "submit", no_better=True)
    assert not (tmp_path / "submission.csv").exists() and state.best == {}
    assert "NOT KEPT: its holdout log_loss 0.6930 is no better than the trivial answer's" in capsys.readouterr().out
    assert state.offer(str(candidate), 0.41, "submit") and (tmp_path / "submission.csv").is_file()


def fake_fold(path, score):
    """Write a finished fold run folder whose state.json holds its holdout score."""
    import json

    path.mkdir(parents=True)
    (path / "state.json").write_text(json.dumps({"finished": ["stage1"], "best": {"stage1": score},
                                                 "verdict": {"holdout_score": score}}))


@pytest.mark.parametrize("second, kept", [(0.95, 0.95), (0.5, 0.64)])
def test_the_autopilot_trains_a_far_fold_again_and_keeps_the_better(tmp_path, monkeypatch, second, kept):
    import json
    import time

    from src.autopilot import auto_jobs

    folder = tmp_path / "train"
    for fold, score in enumerate((0.97, 0.98, 0.2)):  # fold 2: a second run half-trained when a session was cut,
        fake_fold(folder / f"fold-{fold}", score)
    fake_fold(folder / "fold-2.first", 0.64)        # beside the first run it moved aside: the first comes back
    calls = []

    def train_folds(cfg, callbacks=()):
        calls.append(cfg.time_limit)
        if not (folder / "fold-2").exists():
            fake_fold(folder / "fold-2", second)
        return {"metric": "qwk", "far_folds": []}

    monkeypatch.setattr(auto_jobs, "train_folds", train_folds)
    summary = auto_jobs.retrain_far_folds(TrainConfig(time_limit=1.0), {"metric": "qwk", "far_folds": [2]}, folder,
                                          fold_seconds=1.0, until=time.monotonic() + 600, callbacks=())
    state = json.loads((folder / "fold-2" / "state.json").read_text())
    assert state["verdict"]["holdout_score"] == kept and summary["retrained"] == [2]
    assert not (folder / "fold-2.first").exists()
    assert 0 < calls[0] <= 600 / 3600  # the retrain is bounded by what the auto run has left, not its first hours


def test_patience_counts_only_once_an_epoch_beats_the_trivial_answer():
    # seen on a generated number competition: epoch 1's near-constant answer (RMSE 31.5, the training mean's is
    # 26.9) stayed best while BatchNorm settled, and patience 4 ended stage 1 at epoch 5 of 12, keeping epoch 1
    rmse = [31.46, 55.60, 61.77, 49.10, 33.79, 25.02, 16.37, 14.38, 12.66, 12.91, 12.32, 14.27]
    logs = [{"val_rmse": v, "val_loss": (v / 27.0) ** 2 + 1.0 * (i == 0) * -0.5} for i, v in enumerate(rmse)]
    assert run_stopper(ResumableEarlyStopping(patience=4, metric="rmse", min_epochs=earliest_stop(12, 4)), logs) == 5
    stopper = ResumableEarlyStopping(patience=4, metric="rmse", min_epochs=earliest_stop(12, 4), floor=26.89)
    assert run_stopper(stopper, logs) == 0 and stopper.best.value == pytest.approx(12.32)
    learnt = [{"val_rmse": v, "val_loss": 1.0} for v in (20.0, 30.0, 31.0, 32.0, 33.0, 34.0)]
    assert run_stopper(ResumableEarlyStopping(patience=4, metric="rmse", floor=26.89), learnt) == 5  # it had learnt


def test_the_epoch_floor_is_the_trivial_answer_as_the_epoch_metric_scores_it():
    from src.training.holdout import epoch_floor

    class_map = ClassMap("label", ("cat", "dog"))
    data = types.SimpleNamespace(class_map=class_map, val=[0] * 4, positive=1, y_train=np.array([0, 0, 0, 1]),
                                 y_val=np.array([0, 1, 0, 0]))
    cfg = types.SimpleNamespace(metric="accuracy", full_fit="")
    assert epoch_floor(cfg, data) == 0.75
    assert epoch_floor(types.SimpleNamespace(metric="auc", full_fit=""), data) == 0.5
    assert epoch_floor(types.SimpleNamespace(metric="auc", full_fit="runs/ref"), data) is None  # no holdout


def test_auto_calibration_softens_but_never_sharpens_on_the_holdout_that_chose_the_epoch(capsys):
    from src.inference.combine import calibrate
    from src.inference.metrics import score

    y = np.array([0] * 9 + [1] * 9 + [0, 1])
    right = np.where(y[:, None] == np.arange(2), 0.7, 0.3)
    soft = np.vstack([right[:18], [[0.45, 0.55], [0.55, 0.45]]])  # too timid: a sharpening temperature fits
    scorer = lambda p, t: score(p, t, "log_loss")  # noqa: E731
    holdout, test, record = calibrate(soft, soft, y, scorer, out_of_fold=False)
    assert record["fitted"] < 1.0 and record["temperature"] == 1.0
    np.testing.assert_array_equal(test, soft)
    assert "would sharpen the probabilities on the holdout" in capsys.readouterr().out
    sure = np.vstack([np.where(y[:18, None] == np.arange(2), 0.99, 0.01), [[0.02, 0.98], [0.98, 0.02]]])
    _, softened, record = calibrate(sure, sure, y, scorer, out_of_fold=False)  # overconfident: softened
    assert record["temperature"] > 1.0 and softened[0, 0] < 0.99
