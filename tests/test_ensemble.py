"""Probabilities fit for the metric (issue 20 item 6): temperature scaling, rank blends, run selection,
weights fitted for the metric; on generated prediction arrays, then once end to end with tiny runs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.core.submit_settings import SubmitConfig
from src.inference.calibration import apply_temperature, fit_temperature
from src.inference.ensemble import blend, fit_weights, hill_climb_weights, select_runs
from src.inference.metrics import score


def binary_runs(seed=0, n=400, noise=(0.6, 1.2, 2.0, 50.0)):
    """Return (per-run probabilities (runs, n, 2), labels): each run sees the truth through its own noise;
    the last is nearly pure noise. Runs' scores differ in scale (as a sharp and a soft model do)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    runs = []
    for i, sigma in enumerate(noise):
        logit = (2 * y - 1) * 1.0 + rng.normal(0, sigma, n)
        p = 1 / (1 + np.exp(-logit * (0.3 + i)))  # another scale per run: ranks and means disagree
        runs.append(np.stack([1 - p, p], axis=1))
    return np.stack(runs), y


def auc(probs, y):
    return score(probs, y, "auc", 1)


def test_temperature_scaling_lowers_log_loss_of_an_over_confident_model():
    rng = np.random.default_rng(3)
    n, classes = 600, 4
    logits = rng.normal(0, 1.5, (n, classes))
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in calibrated])  # labels drawn from the true probabilities
    confident = apply_temperature(calibrated, 0.25)  # the model says the same, four times as sharp
    holdout, later = slice(0, 300), slice(300, None)
    temperature = fit_temperature(confident[holdout], y[holdout])
    assert 3.0 < temperature < 5.5  # undoes most of the sharpening
    for part in (holdout, later):  # lower on the holdout it was fitted on, and on images it never saw
        before = score(confident[part], y[part], "log_loss")
        after = score(apply_temperature(confident[part], temperature), y[part], "log_loss")
        assert after < before - 0.3
    np.testing.assert_array_equal(apply_temperature(confident, temperature).argmax(axis=1), confident.argmax(axis=1))
    assert fit_temperature(apply_temperature(confident, temperature), y) == pytest.approx(1.0, abs=0.05)


def test_temperature_one_when_nothing_helps_or_the_holdout_cannot_tell():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert fit_temperature(probs, np.array([1, 0, 0])) > 1  # confident mistakes: soften
    assert fit_temperature(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 1])) == 1.0  # nothing moves
    # every holdout image right: log loss falls as T -> 0; a T at the bound would make the test set all-or-nothing
    assert fit_temperature(probs, np.array([0, 1, 0])) == 1.0


def test_rank_blend_ranks_and_keeps_rows_as_probabilities():
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])
    b = np.array([[0.5, 0.5], [0.49, 0.51], [0.48, 0.52]])
    out = blend(np.stack([a, b]), [0.5, 0.5], "rank", positive=1)
    np.testing.assert_allclose(out[:, 1], [1 / 3, 2 / 3, 1.0])  # both rank the images alike
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(blend(np.stack([a, b]), [0.5, 0.5], "mean"), (a + b) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_rank_blend_and_run_selection_never_below_the_best_single_run(seed):
    stacked, y = binary_runs(seed)
    singles = [auc(run, y) for run in stacked]
    best = max(singles)
    for mode in ("mean", "rank"):
        chosen, steps = select_runs(stacked, y, auc, True, mode)
        kept = blend(stacked[chosen], np.full(len(chosen), 1 / len(chosen)), mode)
        assert auc(kept, y) >= best and auc(kept, y) == pytest.approx(steps[-1]["score"])
        assert chosen[0] == int(np.argmax(singles)) and 3 not in chosen  # the noise run never helps
        weights = fit_weights(stacked, y, "auc", auc, True, mode)
        assert auc(blend(stacked, weights, mode), y) >= best and sum(weights) == pytest.approx(1)
    # the check can fail: every run at equal weight, noise included, falls below the best single run
    assert auc(blend(stacked, np.full(4, 0.25), "mean"), y) < best


def test_weights_are_fitted_for_the_metric_itself():
    """Accuracy is flat almost everywhere: hill climbing on it must not end below equal weights or the best run."""
    rng = np.random.default_rng(1)
    n, classes = 300, 3
    y = rng.integers(0, classes, n)
    stacked = []
    for sigma in (1.0, 1.5, 1.5):
        logits = rng.normal(0, sigma, (n, classes))
        logits[np.arange(n), y] += 1.2
        stacked.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    stacked = np.stack(stacked)

    def accuracy(p, t):
        return score(p, t, "accuracy")

    weights = hill_climb_weights(stacked, y, accuracy, True)
    fitted = accuracy(blend(stacked, weights), y)
    assert fitted >= max(accuracy(run, y) for run in stacked)
    assert fitted >= accuracy(blend(stacked, np.full(3, 1 / 3)), y)
    ll = fit_weights(stacked, y, "log_loss", None, False)
    assert score(blend(stacked, ll), y, "log_loss") <= min(score(run, y, "log_loss") for run in stacked) + 1e-9


TRAIN = ["--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages", "1",
         "--stage1-size", "16", "16", "--stage1-lr", "2e-3", "--batch-size", "8"]


def cactus_competition(root):
    """Aerial Cactus's shape: train/ flat, train.csv id,has_cactus, test/, sample id,has_cactus of 0.5."""
    from tests.conftest import write_image

    rows = []
    for i in range(30):
        label = int(i % 3 == 0)
        write_image(root / "train" / f"c{i:03d}.jpg", colour=(40, 200, 60) if label else (220, 40, 40),
                    size=(16, 16))
        rows.append(f"c{i:03d}.jpg,{label}")
    (root / "train.csv").write_text("id,has_cactus\n" + "\n".join(rows) + "\n")
    ids = [f"t{i:02d}.jpg" for i in range(6)]
    for i, image_id in enumerate(ids):
        write_image(root / "test" / image_id, colour=(40, 200, 60) if i % 2 else (220, 40, 40), size=(16, 16))
    (root / "sample_submission.csv").write_text("id,has_cactus\n" + "".join(f"{i},0.5\n" for i in ids))
    return root


def test_end_to_end_calibration_selection_and_rank_blend(tmp_path, capsys):
    from src.inference.submission import submit
    from src.training.two_stage import train

    root = cactus_competition(tmp_path / "aerial-cactus-identification")
    common = ["--data", str(root), "--split-file", str(tmp_path / "split.csv"), *TRAIN]
    for name, epochs in (("a", "3"), ("b", "1")):
        train(parse_config(TrainConfig, [*common, "--out", str(tmp_path / name), "--stage1-epochs", epochs]))

    def run(name, *flags):
        result = submit(parse_config(SubmitConfig, ["--data", str(root), "--out", str(tmp_path / "subs"),
                                                    "--name", name, *flags]))
        probs = pd.read_csv(tmp_path / "subs" / f"{name}.probs.csv")
        return result, json.loads((tmp_path / "subs" / f"{name}.json").read_text()), probs

    both = ["--run", str(tmp_path / "a"), "--run", str(tmp_path / "b")]
    result, report, _ = run("rank", *both, "--metric", "auc", "--blend", "rank", "--select-runs")
    singles = [r["score"] for r in result["scores"] if r["views"] == "identity"]
    assert result["scores"][-1]["run"] == "ensemble" and result["scores"][-1]["score"] >= max(singles)
    assert report["blend"] == "rank" and report["run_selection"][0]["score"] == max(singles)
    assert sum(result["weights"]) == pytest.approx(1) and report["calibration"] is None

    # run b (one epoch) gets holdout images wrong: a temperature has something to fit
    weak = ["--run", str(tmp_path / "b"), "--metric", "log_loss"]
    raw, _, raw_probs = run("raw", *weak, "--calibrate", "none")
    capsys.readouterr()
    fitted, report, probs = run("cal", *weak)
    out = capsys.readouterr().out
    calibration = report["calibration"]
    assert calibration["before"] == pytest.approx(raw["scores"][-1]["score"])
    columns = ["prob_0", "prob_1"]
    if calibration["temperature"] == 1.0:  # a one-epoch run may still get all 6 holdout images right: said, kept
        assert "the probabilities stay as predicted" in out and fitted["scores"][-1]["run"] == "ensemble"
        np.testing.assert_array_equal(probs[columns].to_numpy(), raw_probs[columns].to_numpy())
    else:
        assert fitted["scores"][-1]["run"] == f"ensemble, temperature {calibration['temperature']:.3f}"
        assert fitted["scores"][-1]["score"] == pytest.approx(calibration["after"])
        assert calibration["after"] < calibration["before"]
        assert f"fitted on the holdout: log_loss {calibration['before']:.4f} -> {calibration['after']:.4f}" in out
        expected = apply_temperature(raw_probs[columns].to_numpy(), calibration["temperature"])
        np.testing.assert_allclose(probs[columns].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(KitError, match="--blend rank: ranks keep only the order .* the metric here is log_loss"):
        run("bad", *both, "--metric", "log_loss", "--blend", "rank")
