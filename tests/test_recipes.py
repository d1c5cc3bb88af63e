"""The reference recipes' pieces: losses, extra training data."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from src.core.config import DataOptions
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.train import main as train
from tests.conftest import make_folder_competition, write_image


def test_focal_loss_with_gamma_0_and_no_alpha_is_the_cross_entropy():
    from src.models.recipe import make_loss

    rng = np.random.default_rng(0)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 16)]
    logits = rng.normal(size=(16, 5)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    focal = TrainConfig(loss="focal", focal_gamma=0.0, focal_alpha=1.0, label_smoothing=0.1)
    cce = dataclasses.replace(focal, loss="cce")
    assert float(make_loss(focal)(y, probs)) == pytest.approx(float(make_loss(cce)(y, probs)), rel=1e-5)
    focusing = dataclasses.replace(focal, focal_gamma=2.0)
    assert float(make_loss(focusing)(y, probs)) < float(make_loss(cce)(y, probs))  # easy examples count less
    weighted = dataclasses.replace(focal, focal_alpha=0.25)
    assert float(make_loss(weighted)(y, probs)) == pytest.approx(0.25 * float(make_loss(cce)(y, probs)), rel=1e-5)


def test_extra_data_trains_but_never_enters_the_holdout(tmp_path):
    from src.data.competition import load_competition
    from src.data.splits import load_or_make_split

    comp = make_folder_competition(tmp_path / "comp", per_class=6, n_test=2)
    extra = tmp_path / "extra"
    for c in ("0", "1", "2", "9"):
        for i in range(3):  # other sizes and colours than the competition's: other bytes
            write_image(extra / "train" / c / f"e{c}{i}.png", size=(30 + i, 26), colour=(90, 60 + 20 * i, int(c) * 20))
    split = load_or_make_split(load_competition(DataOptions(data=str(comp))), DataOptions(data=str(comp)))
    holdout_image = split[split["split"] == "val"].iloc[0]
    shutil.copy(holdout_image["path"], extra / "train" / str(holdout_image["Category"]) / "leak.jpg")
    summary = train(["--data", str(comp), "--extra-data", str(extra), "--backbone", "tiny_resnet",
                     "--weights", "none", "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "1",
                     "--batch-size", "4", "--augment", "none", "--loss", "focal", "--class-weights",
                     "--out", "runs/extra"])
    saved = pd.read_csv(tmp_path / "runs" / "extra" / "split.csv", dtype={"id": str})
    added = saved[saved["source"] == "extra"]
    assert len(added) == 9  # class 9 (3 images) and the copy of a holdout image (1) left out
    assert (added["split"] == "train").all() and not added["id"].str.endswith("leak.jpg").any()
    holdout = pd.read_csv(tmp_path / "runs" / "extra" / "holdout_predictions.csv", dtype={"id": str})
    assert sorted(holdout["id"]) == sorted(split.loc[split["split"] == "val", "id"])
    assert summary["holdout_accuracy"] >= 0


def test_extra_data_of_other_classes_only_is_refused(tmp_path):
    comp = make_folder_competition(tmp_path / "comp", per_class=5, n_test=1)
    extra = make_folder_competition(tmp_path / "extra", classes=("7", "8"), per_class=2, n_test=0)
    with pytest.raises(KitError, match="--extra-data .* none of its labels"):
        train(["--data", str(comp), "--extra-data", str(extra), "--backbone", "tiny_resnet", "--weights", "none",
               "--out", "runs/x"])


def test_pruning_zeroes_half_of_each_pruned_kernel_and_the_model_still_predicts(tmp_path):
    from src.inference.prediction import build_run_model, load_run, predict_frame
    from src.prune import main as prune
    from src.training.pruning import prunable, run_frames

    comp = make_folder_competition(tmp_path / "comp", per_class=6, n_test=2)
    train(["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--stages", "1",
           "--stage1-size", "16", "16", "--stage1-epochs", "1", "--batch-size", "4", "--augment", "none",
           "--out", "runs/p"])
    table = prune(["--run", "runs/p", "--sparsity", "0.5", "--sweep", "0.8", "--epochs", "1", "--batch-size", "4"])
    assert list(table["sparsity"]) == [0.0, 0.5, 0.8]
    assert (tmp_path / "runs" / "p" / "prune" / "prune.png").is_file()
    run = load_run("runs/p")
    model = build_run_model(run)
    model.load_weights(str(tmp_path / "runs" / "p" / "prune" / "pruned-0.50.weights.h5"))
    kernels = list(prunable(model, 1024))
    assert kernels
    for kernel in kernels:  # after fine-tuning, still exactly half zero in every pruned kernel
        values = kernel.numpy()
        assert (values == 0).sum() == int(0.5 * values.size)
    _, val = run_frames(run)
    probs = predict_frame(run, val, model=model)
    assert probs.shape == (len(val), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_hyperband_on_cached_features_writes_a_config_src_train_accepts(tmp_path):
    pytest.importorskip("keras_tuner")
    from src.core.config import parse_config
    from src.tune import main as tune

    comp = make_folder_competition(tmp_path / "comp", per_class=6, n_test=1)
    best = tune(["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--image-size", "16", "16",
                 "--augment", "none", "--batch-size", "8", "--max-epochs", "2", "--factor", "3", "--out", "runs/tune"])
    trials = pd.read_csv(tmp_path / "runs" / "tune" / "trials.csv")
    assert len(trials) == 2 and trials["val_accuracy"].is_monotonic_decreasing  # max-epochs 2, factor 3: 2 trials
    assert {"head_layers", "head_units", "dropout", "head_l2", "learning_rate", "optimizer"} <= set(trials.columns)
    assert list(tmp_path.glob("runs/features/tiny_resnet-*.npy"))  # trials trained on cached features
    path = tmp_path / "runs" / "tune" / "best_config.json"
    cfg = parse_config(TrainConfig, ["--config", str(path)])
    assert (cfg.head_layers, cfg.head_units, cfg.optimizer) == (best["head_layers"], best["head_units"],
                                                               best["optimizer"])
    summary = train(["--config", str(path), "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "1",
                     "--warmup-epochs", "1", "--batch-size", "4", "--augment", "none", "--out", "runs/tuned"])
    assert (tmp_path / "runs" / "tuned" / "stage1.weights.h5").is_file() and summary["holdout_accuracy"] >= 0


@pytest.mark.parametrize("scheme", ["parallel", "chained"])
def test_multi_task_trains_every_head_and_submits_the_competition_column(csv_comp, tmp_path, capsys, scheme):
    from src.inference.prediction import build_run_model, load_run
    from src.submit import main as submit

    summary = train(["--data", str(csv_comp), "--label-column", "make_id,model_id", "--targets", "make_id,model_id",
                     "--loss-weights", "0.5,1", "--head-scheme", scheme, "--backbone", "tiny_resnet",
                     "--weights", "none", "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "2",
                     "--batch-size", "4", "--augment", "none", "--out", "runs/mt"])
    out = capsys.readouterr().out
    assert "holdout accuracy of head make_id:" in out and "holdout accuracy of head model_id:" in out
    history = pd.read_csv(tmp_path / "runs" / "mt" / "history.csv")
    for column in ("make_id_accuracy", "model_id_accuracy", "val_make_id_accuracy", "val_model_id_accuracy"):
        assert history[column].notna().all()
    assert (history["val_accuracy"] == history["val_model_id_accuracy"]).all()  # early stopping follows model_id
    holdout = pd.read_csv(tmp_path / "runs" / "mt" / "holdout_predictions.csv", dtype=str)
    assert {"make_id_label", "make_id_predicted", "label", "predicted"} <= set(holdout.columns)
    assert set(holdout["label"]) <= {"audi a4", "audi a6", "bmw x5"} and summary["holdout_accuracy"] >= 0
    model = build_run_model(load_run("runs/mt"))
    assert set(model.output) == {"make_id", "model_id"}
    assert any(layer.name.startswith("chain_") for layer in model.layers) == (scheme == "chained")
    result = submit(["--data", str(csv_comp), "--label-column", "make_id,model_id", "--run", "runs/mt",
                     "--name", "mt", "--out", "subs"])
    written = pd.read_csv(result["path"], dtype=str)
    assert list(written.columns) == ["image_id", "model_id"]
    assert set(written["model_id"]) <= {"audi a4", "audi a6", "bmw x5"}


def test_targets_must_include_the_submission_column(csv_comp):
    with pytest.raises(KitError, match="--targets must include 'model_id'"):
        train(["--data", str(csv_comp), "--label-column", "make_id,model_id", "--targets", "make_id",
               "--backbone", "tiny_resnet", "--weights", "none", "--out", "runs/bad"])
    with pytest.raises(KitError, match="--loss-weights: 1 value"):
        train(["--data", str(csv_comp), "--label-column", "make_id,model_id", "--targets", "make_id,model_id",
               "--loss-weights", "1", "--backbone", "tiny_resnet", "--weights", "none", "--out", "runs/bad2"])


def test_bad_pruning_levels_are_named():
    from src.training.pruning import parse_levels
    from src.core.settings import PruneConfig

    with pytest.raises(KitError, match="--sweep '0.2,x'"):
        parse_levels(PruneConfig(sweep="0.2,x"))
    with pytest.raises(KitError, match="1.5 is not between 0 and 1"):
        parse_levels(PruneConfig(sparsity=1.5, sweep=""))
