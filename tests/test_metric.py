"""The competition's metric decides: which source names it, what every epoch logs, which epoch, stage and
backbone are kept, the submission's format, and how training draws its images (--sampling)."""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.core.config import parse_config, save_config
from src.core.errors import KitError
from src.core.metric_choice import check_metric_for, kit_name, monitor, resolve_metric
from src.core.settings import TrainConfig
from src.training.callbacks import ResumableCheckpoint, ResumableEarlyStopping, resume_state
from src.training.two_stage import train
from tests.test_train import FailAt, Snapshot, weights_of

AUC_NAME = "Area Under Receiver Operating Characteristic Curve"


def lesion(rng, target: int) -> Image.Image:
    """A 20 px noisy 'lesion': positives are redder on average, with noise that makes single pixels unreliable."""
    base = np.array([90, 60, 40]) + (70 if target else 0) * np.array([1, -0.5, 0])
    return Image.fromarray(np.clip(base + rng.normal(0, 30, (20, 20, 3)), 0, 255).astype("uint8"))


def make_isic(root, negatives=72, positives=8, n_test=6, seed=0, metadata=False, test_targets=None):
    """An ISIC-2020-like competition: train/ISIC_N.jpg, train.csv image_name,target with rare 1s, a sample of 0s.

    metadata: train.csv also holds ISIC 2020's patient_id, sex (some cells empty) and age_approx before the
    target. test_targets: the held-back labels of the test images (drawn like the training ones); without
    them the test images are noise."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(negatives + positives):
        target = int(i >= negatives)
        lesion(rng, target).save(root / "train" / f"ISIC_{i:04d}.jpg")
        sex = "" if i % 7 == 3 else ("male", "female")[i % 2]
        rows.append(f"ISIC_{i:04d},IP_{i % 13:03d},{sex},{35 + 5 * (i % 8)}.0,{target}\n" if metadata
                    else f"ISIC_{i:04d},{target}\n")
    header = "image_name,patient_id,sex,age_approx,target\n" if metadata else "image_name,target\n"
    (root / "train.csv").write_text(header + "".join(rows))
    for i in range(n_test):
        image = (lesion(rng, test_targets[i]) if test_targets is not None
                 else Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype="uint8")))
        image.save(root / "test" / f"ISIC_T{i}.jpg")
    (root / "sample_submission.csv").write_text("image_name,target\n" + "".join(f"ISIC_T{i},0\n" for i in range(n_test)))
    return root


def isic_config(comp, tmp_path, *extra):
    return parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stage1-size", "16", "16", "--stage2-size", "20", "20", "--stage1-epochs", "4", "--stage2-epochs", "2",
        "--stage1-lr", "1e-3", "--stage2-lr", "1e-3", "--batch-size", "16", "--val-fraction", "0.25",
        "--stage1-patience", "4", "--out", str(tmp_path / "run"), *extra])


def best_index(rows: pd.DataFrame, column: str, higher: bool = True) -> int:
    """Return the row the kit must keep: best in the column's direction, ties to the lower val_loss, then first."""
    sign = -1 if higher else 1
    return min(range(len(rows)), key=lambda i: (sign * rows[column].iloc[i], rows["val_loss"].iloc[i], i))


def test_an_isic_like_run_keeps_the_best_val_auc_epoch_and_stage_across_a_resume(tmp_path, capsys):
    """val_accuracy is the majority rate at every epoch; the checkpoint follows val_auc (Kaggle's metric)."""
    from src.submit import main as submit

    keras.utils.set_random_seed(0)  # the same initial weights every time: the val_accuracy tie is reproducible
    comp = make_isic(tmp_path / "isic")
    (comp / "kaggle_metric.json").write_text(json.dumps({"competition": "isic", "evaluation_metric": AUC_NAME}))
    snapshot = Snapshot()
    with pytest.raises(RuntimeError, match="cut"):  # the session ends during stage 1's third epoch
        train(isic_config(comp, tmp_path), callbacks=[snapshot, FailAt(2, RuntimeError("cut"))])
    summary = train(isic_config(comp, tmp_path, "--resume"), callbacks=[snapshot])
    out = capsys.readouterr().out
    assert f"metric: auc (Kaggle's evaluation metric {AUC_NAME!r} in {comp / 'kaggle_metric.json'})" in out
    assert "best epoch by val_auc" in out
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["metric"] == "auc"
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns) == ["stage", "epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "auc",
                                     "val_auc"]
    stage1 = history[history["stage"] == "stage1"].reset_index(drop=True)
    assert len(stage1) == 4 and stage1["val_accuracy"].nunique() == 1  # the tie Keras would keep epoch 1 of
    assert stage1["val_auc"].nunique() > 1
    best = best_index(stage1, "val_auc")
    epochs = [w for fit in snapshot.epochs[:2] for w in fit]  # the cut fit's two epochs, then the resumed two
    for a, b in zip(epochs[best], weights_of(run / "stage1.weights.h5", (16, 16), classes=2)):
        np.testing.assert_array_equal(a, b)
    state = json.loads((run / "state.json").read_text())
    assert state["metric"] == "auc" and state["best"]["stage1"] == pytest.approx(stage1["val_auc"][best])
    kept = "stage1" if (-state["best"]["stage1"], state["best_val_loss"]["stage1"]) < \
        (-state["best"]["stage2"], state["best_val_loss"]["stage2"]) else "stage2"
    assert state["kept"] == kept == summary["final_stage"]
    assert f"final weights: {kept} (best val_auc per stage: stage1 {state['best']['stage1']:.4f}, stage2 " \
           f"{state['best']['stage2']:.4f}" in out

    # src.submit reads the metric from the run; auc wants the probability, though the sample holds 0s
    submit(["--data", str(comp), "--run", str(run), "--out", str(tmp_path / "subs")])
    out = capsys.readouterr().out
    assert f"metric: auc (from the run's config, {run / 'config.json'})" in out
    assert "submission: probability of class 1 in column target (the metric auc scores probabilities, though the " \
           "sample in sample_submission.csv holds labels)" in out
    written = pd.read_csv(tmp_path / "subs" / "submission.csv")
    assert written["target"].between(0, 1).all() and (written["target"] % 1 != 0).any()
    submit(["--data", str(comp), "--run", str(run), "--out", str(tmp_path / "subs"), "--name", "acc",
            "--metric", "accuracy"])
    out = capsys.readouterr().out
    assert "metric: accuracy (--metric); the run(s) trained for auc" in out
    assert "submission: one label per row in column target (the sample's values in sample_submission.csv)" in out


def test_a_new_user_with_only_metric_auc_ranks_held_back_lesions(tmp_path, capsys):
    """ISIC 2020 as a new user runs it: metadata columns with empty cells beside the target, 10% positives,
    only --metric auc and --sampling balanced (no --label-column, no --submission-format); the submission's
    AUC is scored on held-back test labels (before the metric issue: it stopped at the empty `sex` cells, and
    with --label-column the submission was hard 0/1 labels, AUC 0.50)."""
    from sklearn.metrics import roc_auc_score

    from src.submit import main as submit
    from src.train import main as train_main

    keras.utils.set_random_seed(0)
    held_back = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    comp = make_isic(tmp_path / "siim-isic-melanoma-classification", negatives=54, positives=6,
                     n_test=len(held_back), metadata=True, test_targets=held_back)
    train_main(["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
                       "--stage1-size", "16", "16", "--stage2-size", "20", "20", "--stage1-epochs", "4",
                       "--stage2-epochs", "1", "--stage1-lr", "3e-3", "--stage2-lr", "1e-3", "--batch-size", "12",
                       "--metric", "auc", "--sampling", "balanced", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "metadata: patient_id, sex, age_approx of train.csv" in out
    assert "metric: auc (--metric)" in out and "balanced" in out
    submit(["--data", str(comp), "--run", str(tmp_path / "run"), "--out", str(tmp_path / "subs")])
    assert "submission: probability of class 1 in column target" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "subs" / "submission.csv")
    assert list(written.columns) == ["image_name", "target"] and written["target"].between(0, 1).all()
    assert list(written["image_name"]) == [f"ISIC_T{i}" for i in range(len(held_back))]
    auc = roc_auc_score(held_back, written["target"])
    assert auc >= 0.9, f"AUC {auc:.3f} on the held-back labels"


def feed(callback, model, logs_per_epoch, marks):
    """Run a callback over epochs whose logs are given; before each epoch's end the model's weights are marked."""
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (logs, mark) in enumerate(zip(logs_per_epoch, marks)):
        model.set_weights([np.full((2, 1), mark, "float32"), np.zeros(1, "float32")])
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end()


def tiny_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_log_loss_is_kept_in_the_min_direction(tmp_path):
    logs = [{"val_log_loss": v, "val_loss": v} for v in (0.6, 0.3, 0.45, 0.5)]
    model = tiny_model()
    feed(ResumableCheckpoint(tmp_path / "best.weights.h5", "log_loss"), model, logs, marks=(1, 2, 3, 4))
    model.load_weights(tmp_path / "best.weights.h5")
    assert float(model.get_weights()[0][0, 0]) == 2  # epoch 2's weights: the lowest log loss
    stopper = ResumableEarlyStopping(patience=2, metric="log_loss")
    feed(stopper, model, logs, marks=(1, 2, 3, 4))
    assert stopper.stopped_epoch == 3 and stopper.best.value == 0.3
    assert float(model.get_weights()[0][0, 0]) == 2  # restored to the best epoch


def test_a_tie_goes_to_the_lower_val_loss_not_to_the_first_epoch(tmp_path):
    logs = [{"val_auc": a, "val_loss": b} for a, b in ((0.8, 0.5), (0.9, 0.4), (0.9, 0.3), (0.9, 0.35))]
    model = tiny_model()
    feed(ResumableCheckpoint(tmp_path / "best.weights.h5", "auc"), model, logs, marks=(1, 2, 3, 4))
    model.load_weights(tmp_path / "best.weights.h5")
    assert float(model.get_weights()[0][0, 0]) == 3
    stopper = ResumableEarlyStopping(patience=5, metric="auc")
    feed(stopper, model, logs, marks=(1, 2, 3, 4))
    assert (stopper.best.value, stopper.best.loss, stopper.wait) == (0.9, 0.3, 1)
    assert float(model.get_weights()[0][0, 0]) == 3
    keras_own = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=5, restore_best_weights=True)
    feed(keras_own, model, logs, marks=(1, 2, 3, 4))
    assert keras_own.best_epoch == 1  # what the kit used to keep: the first of the ties
    rows = pd.DataFrame(logs)
    assert resume_state(rows, "auc") == (0.9, 0.3, 1)


def test_a_resumed_checkpoint_keeps_the_best_metric_value(tmp_path):
    rows = pd.DataFrame({"epoch": [0, 1, 2], "val_accuracy": [0.9, 0.9, 0.9], "val_auc": [0.7, 0.95, 0.8],
                         "val_loss": [0.4, 0.3, 0.2]})
    best, loss, wait = resume_state(rows, "auc")
    assert (best, loss, wait) == (0.95, 0.3, 1)  # not the lowest val_loss, not val_accuracy's first tie
    model = tiny_model()
    path = tmp_path / "best.weights.h5"
    model.set_weights([np.full((2, 1), 7, "float32"), np.zeros(1, "float32")])
    model.save_weights(path)  # the best epoch's file, from before the cut
    resumed = [{"val_auc": 0.95, "val_loss": 0.31}, {"val_auc": 0.9, "val_loss": 0.1}]
    feed(ResumableCheckpoint(path, "auc", best, loss), model, resumed, marks=(8, 9))
    model.load_weights(path)
    assert float(model.get_weights()[0][0, 0]) == 7  # neither a tie with a higher loss nor a worse auc replaced it
    with pytest.raises(KitError, match="no val_qwk column"):
        resume_state(rows, "qwk")


def test_the_metric_comes_from_the_flag_the_run_kaggle_then_the_format(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    fmt = ("accuracy", "the label format's")
    assert resolve_metric("", data, *fmt).line == "metric: accuracy (the label format's default; --metric sets it)"
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": "c", "evaluation_metric": "Log Loss"}))
    choice = resolve_metric("", data, *fmt)
    assert (choice.name, choice.source, monitor(choice.name)) == ("log_loss", "kaggle", "val_log_loss")
    choice = resolve_metric("", data, *fmt, run_metric="qwk", run_where="runs/a/config.json")
    assert choice.line == "metric: qwk (from the run's config, runs/a/config.json)"
    choice = resolve_metric("map@5", data, *fmt, run_metric="qwk", run_where="runs/a/config.json")
    assert choice.name == "map@5" and "(--metric); the run(s) trained for qwk (runs/a/config.json)" in choice.line
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": "c", "evaluation_metric": "Hamming Loss"}))
    choice = resolve_metric("", data, *fmt)
    assert choice.name == "accuracy" and "'Hamming Loss'" in choice.line and "does not know" in choice.line
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": "c", "evaluation_metric": "Dice Coefficient"}))
    choice = resolve_metric("", data, *fmt)  # masks' metric since issue 40: said for a label target, not used
    assert choice.name == "accuracy" and "maps to dice, a metric for a mask per image (segmentation)" in choice.line
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": "c", "evaluation_metric": "Mean F2"}))
    choice = resolve_metric("", data, *fmt)  # a multi-label metric for a one-label target: said, not used
    assert choice.name == "accuracy" and "maps to f2_samples, a metric for tags" in choice.line
    assert [kit_name(n, "map@5") for n in ("AUC", "Multiclass Loss", "Categorization Accuracy",
                                           "Quadratic Weighted Kappa", "MAP@{K}", "MAP@3", "Macro F1", "MAE", "Dice",
                                           "IoU")] == \
        ["auc", "log_loss", "accuracy", "qwk", "map@5", "map@3", "f1_macro", "mae", "dice", ""]  # MAE: 31, Dice: 40
    with pytest.raises(KitError, match="--metric f2_samples: the target is one label per image"):
        resolve_metric("f2_samples", data, *fmt)
    with pytest.raises(KitError, match="--metric: expected one of accuracy"):
        parse_config(TrainConfig, ["--metric", "hamming"])  # dice is masks' metric since issue 40


def test_the_format_follows_the_metric(tmp_path):
    from src.data.competition import ClassMap, SubmissionSchema
    from src.inference.formats import default_metric, detect_format

    sample = pd.DataFrame({"image_name": ["a", "b"], "target": ["0", "0"]})
    schema = SubmissionSchema(tmp_path / "sample_submission.csv", "image_name", "target", ("a", "b"), sample)
    binary = ClassMap("target", (0, 1))
    assert default_metric(schema, binary) == ("accuracy", "the label format's")
    fmt = detect_format(schema, binary, metric="log_loss")
    assert (fmt.name, fmt.positive) == ("probability", 1)
    assert fmt.describe() == ("probability of class 1 in column target (the metric log_loss scores probabilities, "
                              "though the sample in sample_submission.csv holds labels)")
    assert detect_format(schema, binary, metric="accuracy").name == "label"
    assert detect_format(schema, binary, "label", metric="auc").describe().endswith("(--submission-format label)")
    three = detect_format(schema, ClassMap("target", (0, 1, 2)), metric="log_loss")
    assert three.name == "label" and "one column holds one of 3 classes" in three.why


def test_epoch_metrics_match_the_kits_own_scores():
    from src.inference.metrics import score
    from src.models.epoch_metrics import epoch_metric

    rng = np.random.default_rng(0)
    for name, k in (("auc", 2), ("log_loss", 3), ("f1_macro", 4), ("qwk", 5), ("map@3", 6)):
        logits = rng.normal(size=(60, k))
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
        y = rng.integers(0, k, 60)
        metric = epoch_metric(name, k, 1)
        metric.update_state(y[:40], probs[:40])  # class indices, then one-hot rows plus weight-0 padding
        metric.update_state(np.eye(k)[np.r_[y[40:], 0]], np.r_[probs[40:], probs[:1]], sample_weight=[1] * 20 + [0])
        assert float(metric.result()) == pytest.approx(score(probs, y, name, 1), abs=2e-3 if name == "auc" else 1e-5)
    tags, probs = (rng.random((30, 4)) > 0.6).astype("float32"), rng.random((30, 4)).astype("float32")
    metric = epoch_metric("f2_samples", 4)
    metric.update_state(tags, probs)
    assert float(metric.result()) == pytest.approx(score(probs, tags, "f2_samples"), abs=1e-6)
    assert epoch_metric("accuracy", 3) is None and epoch_metric("map@5", 6).name == "map_at_5"


def test_the_better_stage_is_kept_and_named(tmp_path, capsys):
    from src.runs.folder import RunFolder
    from src.runs.stages import plan_stages
    from src.runs.state import RunState, StageRecord
    from src.training.two_stage import choose_final_stage

    cfg = parse_config(TrainConfig, ["--metric", "log_loss", "--out", str(tmp_path / "r")])
    stages = plan_stages(cfg)
    state = RunState(stages={"stage1": StageRecord(best=0.386, best_val_loss=0.4),
                             "stage2": StageRecord(best=0.9, best_val_loss=0.9)})
    kept, why = choose_final_stage(state, stages, "best", "log_loss")
    assert kept.name == "stage1" and why == ("best val_log_loss per stage: stage1 0.3860, stage2 0.9000; stage1 "
                                             "scored better than stage2 (--final-stage best; last keeps the recipe's)")
    kept, why = choose_final_stage(state, stages, "last", "log_loss")
    assert kept.name == "stage2" and "stage1 scored better: --final-stage best would keep it" in why
    tie = RunState(stages={name: StageRecord(best=0.9, best_val_loss=0.3) for name in ("stage1", "stage2")})
    assert choose_final_stage(tie, stages, "best", "auc")[0].name == "stage2"  # a full tie keeps the recipe
    run = RunFolder(tmp_path / "r")
    save_config(cfg, run.path)
    for stage in stages:
        run.weights(stage.name).write_bytes(b"weights")
    state.finished = ["stage1", "stage2"]
    state.keep("stage1", by="best")
    run.save_state(state)
    assert run.final_stage().name == "stage1"  # what src.submit and src.predict load
    # a run from before the choice: the last stage
    record = {"finished": ["stage1", "stage2"], "best": state.by_stage("best")}
    run.state_file.write_text(json.dumps(record))
    assert run.final_stage().name == "stage2"


@pytest.mark.parametrize("sampling, share", [("natural", 0.1), ("balanced", 0.5), ("sqrt", 0.25)])
def test_sampling_draws_the_classes_as_asked_over_an_epoch(tmp_path, sampling, share):
    from src.core.config import PipelineOptions
    from src.data.imagefiles import scan_images
    from src.pipeline.images import make_train_dataset

    paths = []
    for i in range(20):  # 18 of class 0, 2 of class 1
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8, 3), 40 if i < 18 else 200, "uint8")).save(paths[-1])
    frame = scan_images([str(p) for p in paths])
    frame["id"] = [p.name for p in paths]
    y = np.array([0] * 18 + [1] * 2)
    opts = PipelineOptions(image_size=(8, 8), batch_size=4, augment="none", cache="memory")
    ds = make_train_dataset(frame, y, opts, seed=1, sampling=sampling, classes=y)
    drawn = np.concatenate([labels.numpy() for _ in range(10) for _, labels in ds])  # ten epochs
    assert len(drawn) == pytest.approx(200, rel=0.15)  # an epoch stays about as long as the natural one
    assert (drawn == 1).mean() == pytest.approx(share, abs=0.06)
    pairs = np.concatenate([np.stack([x.numpy()[:, 0, 0, 0], labels.numpy()], 1) for x, labels in ds])
    assert len(pairs) and ((np.round(pairs[:, 0]) == 200) == (pairs[:, 1] == 1)).all()  # images keep their labels


def test_sampling_is_refused_for_tags_by_name(tmp_path):
    from types import SimpleNamespace

    from src.core.task_kind import kind_named

    cfg = parse_config(TrainConfig, ["--sampling", "balanced"])
    with pytest.raises(KitError, match=r"--sampling balanced \(per-class weights\): column tags holds tags"):
        kind_named("tags").check_settings(cfg, SimpleNamespace(target="tags"), {})


def test_a_multi_task_run_scores_the_submissions_head():
    from src.data.competition import ClassMap
    from src.inference.metrics import score
    from src.models.backbones import get_spec
    from src.models.classifier import HeadSpec, build_classifier
    from src.models.recipe import CompileOptions, compile_classifier
    from src.training.callbacks import TargetMetrics

    heads = {"make": ClassMap("make", (0, 1)), "model": ClassMap("model", (0, 1, 2))}
    model = build_classifier(get_spec("tiny_resnet"), (16, 16), {"make": 2, "model": 3}, "none", HeadSpec(), True)
    compile_classifier(model, TrainConfig(), CompileOptions(1e-3, "f1_macro", heads=heads, loss_weights=[1.0, 1.0],
                                                           target="model"))
    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16, 3)).astype("float32") * 255
    y = {"make": np.eye(2)[rng.integers(0, 2, 8)], "model": np.eye(3)[rng.integers(0, 3, 8)]}
    history = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0,
                        callbacks=[TargetMetrics("model", "f1_macro")])
    logs = {k: v[-1] for k, v in history.history.items()}
    assert "val_model_f1_macro" in logs and not any(k.startswith("val_make_f1") for k in logs)
    assert logs["val_f1_macro"] == logs["val_model_f1_macro"] and logs["val_accuracy"] == logs["val_model_accuracy"]
    probs = model.predict(x, verbose=0)["model"]
    assert logs["val_model_f1_macro"] == pytest.approx(score(probs, y["model"].argmax(1), "f1_macro"), abs=1e-5)


def test_screening_ranks_by_the_metric_in_its_direction(tmp_path, capsys):
    from src.core.settings import ScreenConfig
    from src.training.screening import merge_row, screen
    from tests.conftest import make_folder_competition

    rows = pd.DataFrame(columns=["backbone", "best_score", "val_loss", "error"])
    for name, value, loss, error in (("a", 0.4, 0.5, ""), ("b", 0.2, 0.9, ""), ("c", 0.2, 0.3, ""),
                                     ("d", np.nan, np.nan, "OOM")):
        rows = merge_row(rows, {"backbone": name, "best_score": value, "val_loss": loss, "error": error}, "log_loss")
    assert list(rows["backbone"]) == ["c", "b", "a", "d"]  # lowest log loss first, its tie to the lower val_loss
    assert list(merge_row(rows, rows.iloc[0].to_dict(), "auc")["backbone"]) == ["a", "c", "b", "d"]

    comp = make_folder_competition(tmp_path / "c", classes=("a", "b", "c"), per_class=8)
    table = screen(parse_config(ScreenConfig, [
        "--data", str(comp), "--backbones", "tiny_resnet,mobilenetv3_small", "--weights", "none", "--epochs", "2",
        "--image-size", "32", "32", "--batch-size", "8", "--mode", "features", "--metric", "log_loss",
        "--out", str(tmp_path / "screen"), "--features-cache", str(tmp_path / "features")]))
    written = pd.read_csv(tmp_path / "screen" / "screening.csv", keep_default_na=False)
    assert (written["metric"] == "log_loss").all() and (written["error"] == "").all()
    assert list(written["best_score"]) == sorted(written["best_score"])  # ascending: lower is better
    out = capsys.readouterr().out
    assert "metric: log_loss (--metric)" in out and "best val_log_loss" in out
    assert f"winner: {table.iloc[0]['backbone']} (best val_log_loss {table.iloc[0]['best_score']:.4f}" in out
    assert json.loads((tmp_path / "screen" / "config.json").read_text())["metric"] == "log_loss"


def test_the_task_kind_is_read_from_the_labels_said_and_checked_against_the_flag(capsys):
    """The task kind's one home (src.core.task_kind): read from the target column, said in one line, recorded in
    the config; the metrics it allows and the network's output follow from it."""
    from src.core.task_kind import kind_named, settle_task
    from src.data.class_maps import ClassMap
    from src.models.classifier import HeadSpec

    grades = ClassMap("grade", (0, 1, 2))
    cfg, kind = settle_task(TrainConfig(), grades)
    assert (cfg.task, HeadSpec.from_config(cfg, kind).activation) == ("label", "softmax")
    assert "task: label, one label per image in column grade, 3 classes (read from the labels)" in capsys.readouterr().out
    tags = ClassMap("tags", ("clear", "road", "water"), multi_label=True)
    cfg, kind = settle_task(parse_config(TrainConfig, ["--task", "tags"]), tags)
    assert (kind.name, HeadSpec.from_config(cfg, kind).activation) == ("tags", "sigmoid")
    assert "task: tags, tags (multi-label) in column tags, 3 tags (--task)" in capsys.readouterr().out
    with pytest.raises(KitError, match="--task tags: column grade holds one label per image, read from its values"):
        settle_task(parse_config(TrainConfig, ["--task", "tags"]), grades)
    with pytest.raises(KitError, match="--task: expected one of label, segmentation, tags"):
        parse_config(TrainConfig, ["--task", "detection"])  # (number is a kind since issue 31, segmentation 40)
    assert check_metric_for("qwk", kind_named("label")) == "qwk" and not kind_named("tags").scores_with("map@5")


def test_a_partial_auc_on_more_than_two_classes_is_refused_naming_what_to_use(tmp_path):
    """Issue 41 probe 4: --metric pauc@0.8 on 3 classes scored one class (the second sorted) against the rest."""
    import dataclasses

    from src.core.metric_choice import settle_metric
    from src.core.settings import TrainConfig

    cfg = dataclasses.replace(TrainConfig(), data=str(tmp_path), metric="pauc@0.8")
    with pytest.raises(KitError, match=r"^metric pauc@0.8 \(.*\): a partial AUC scores one class against the rest "
                                       r".* the target has 3 classes; use --metric auc"):
        settle_metric(cfg, ("accuracy", "the format's"), classes=3)
    assert settle_metric(cfg, ("accuracy", "the format's"), classes=2)[0].metric == "pauc@0.8"
