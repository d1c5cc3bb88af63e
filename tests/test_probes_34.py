"""Issue 34: defects found by probing the kit, each a sentence now (or no noise at all).

Most checks need no model; the one that trains uses a tiny run (16x16 tiny_resnet, few steps).
"""
from __future__ import annotations

import pytest

from src.core.config import parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.data.competition import load_competition


# ---------------------------------------------------------------- 1. --targets names an auxiliary target
def test_1_a_column_targets_names_is_a_target_not_metadata(csv_comp, capsys):
    from src.training.multitask import task_columns

    cfg = parse_config(TrainConfig, ["--data", str(csv_comp), "--targets", "make_id,model_id"])
    comp = load_competition(cfg)
    assert task_columns(cfg, comp) == ["make_id", "model_id"]
    assert comp.label_columns == ["make_id", "model_id"] and comp.target == "model_id"
    assert comp.class_maps["make_id"].values == (0, 1)
    assert ("metadata: car of train.csv (not named by sample_submission.csv: not labels; --targets or "
            "--label-column names labels") in capsys.readouterr().out
    # without --targets the sample decides: make_id is metadata, and --targets is refused by name
    plain = load_competition(parse_config(TrainConfig, ["--data", str(csv_comp)]))
    assert plain.label_columns == ["model_id"]
    with pytest.raises(KitError, match=r"^--targets: 'colour' is not a label column of .* \(label columns: "
                                       r"make_id, model_id\)"):
        bad = parse_config(TrainConfig, ["--data", str(csv_comp), "--targets", "make_id,model_id,colour"])
        task_columns(bad, load_competition(bad))


# ---------------------------------------------------------------- 3. many classes: no pandas noise, plural said right
def test_3_the_holdout_of_many_classes_is_built_without_fragmenting(tmp_path, monkeypatch):
    """116 classes made write_holdout add 116 columns one by one: pandas' PerformanceWarning on every run."""
    import types
    import warnings

    import numpy as np
    import pandas as pd

    import src.training.stages as stages
    from src.data.class_maps import make_class_map

    classes = 116
    val = pd.DataFrame({"id": [f"v{i}" for i in range(classes)], "label": list(range(classes))})
    class_map = make_class_map(val["label"], "label")
    probs = np.eye(classes, dtype="float32")[::-1]
    model = types.SimpleNamespace(predict=lambda images, verbose=0: probs)
    monkeypatch.setattr(stages, "build_stage_model", lambda *args: model)
    monkeypatch.setattr(stages, "make_eval_dataset", lambda *args: types.SimpleNamespace(map=lambda f: None))
    data = stages.RunData(comp=None, split=val, train=val, val=val, target="label", class_map=class_map)
    run = types.SimpleNamespace(weights=lambda name: tmp_path / f"{name}.weights.h5",
                                holdout_file=tmp_path / "holdout_predictions.csv")
    accelerator = types.SimpleNamespace(replicas=1, batch_multiple=1, kind="cpu")
    cfg = parse_config(TrainConfig, ["--batch-size", "8"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        accuracy = stages.write_holdout(cfg, None, data, run, types.SimpleNamespace(name="stage1", size=(16, 16)),
                                        accelerator)
    holdout = pd.read_csv(run.holdout_file)
    assert list(holdout.columns) == ["id", "label", "predicted", *(f"prob_{c}" for c in range(classes))]
    assert list(holdout["predicted"]) == list(range(classes))[::-1] and accuracy == 0.0
    assert holdout["prob_0"].iloc[-1] == 1.0


def test_3_eda_says_classes_not_classs(folder_comp, tmp_path, capsys):
    from src.core.settings import EdaConfig
    from src.data.report import run_eda

    run_eda(EdaConfig(data=str(folder_comp), out=str(tmp_path / "eda")))
    out = capsys.readouterr().out
    assert "class counts (3 classes):" in out and "classs" not in out


# ---------------------------------------------------------------- 4. rare positives, a ranking metric: --sampling said
@pytest.mark.parametrize("extra, said", [([], "auc"), (["--metric", "log_loss"], "log_loss"),
                                         (["--sampling", "sqrt"], ""), (["--metric", "accuracy"], "")])
def test_4_rare_positives_under_a_ranking_metric_suggest_balanced_sampling(isic_comp, tmp_path, capsys, extra, said):
    from src.core.metric_choice import write_kaggle_metric
    from src.runs.folder import RunFolder
    from src.training.two_stage import prepare_run

    # as `src.kaggle_api download` leaves it: Kaggle's record names the metric
    write_kaggle_metric(isic_comp, isic_comp.name, "Area Under Receiver Operating Characteristic Curve")
    cfg = parse_config(TrainConfig, ["--data", str(isic_comp), "--backbone", "tiny_resnet", "--out",
                                     str(tmp_path / "run"), *extra])
    prepare_run(cfg, RunFolder(tmp_path / "run"))  # no model: the folder, split and metric only
    hints = [line for line in capsys.readouterr().out.splitlines() if "--sampling balanced" in line]
    if said:
        assert len(hints) == 1 and hints[0].startswith("note: class 1 is ")
        assert hints[0].endswith(f"% of the training images and --metric {said} ranks its probabilities: "
                                 "--sampling balanced (or sqrt) shows it more often and may learn it better")
    else:
        assert hints == []


# ---------------------------------------------------------------- 5. inf is refused like nan, naming the flag
@pytest.mark.parametrize("flag, value", [("--stage1-lr", "inf"), ("--sharpen", "inf"), ("--mixup", "inf"),
                                         ("--time-limit", "inf"), ("--head-l2", "Infinity")])
def test_5_a_float_flag_that_is_not_finite_is_refused_by_name(flag, value, tmp_path):
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, [f"{flag}={value}"])  # "=": argparse reads a lone -inf as a flag
    assert str(err.value) == f"{flag}: expected a finite number, got {float(value)!r}"
    assert list(tmp_path.iterdir()) == []


def test_5_a_config_file_infinity_is_refused_by_field(tmp_path):
    (tmp_path / "c.json").write_text('{"mixup": Infinity}')
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, ["--config", str(tmp_path / "c.json")])
    assert str(err.value).endswith("mixup (--mixup): expected a finite number, got inf")


# ---------------------------------------------------------------- 6. class folders 00, 01, 02 and a sample of integers
@pytest.mark.parametrize("sample_label, written", [("0", [2, 0, 1, 2, 0]), ("00", ["02", "00", "01", "02", "00"])])
def test_6_zero_padded_class_folders_are_written_as_the_samples_integers(tmp_path, capsys, sample_label, written):
    import numpy as np
    import pandas as pd

    from src.core.config import DataOptions
    from src.inference.formats import detect_format, fill_submission
    from src.inference.submission import validate_submission
    from tests.conftest import make_folder_competition

    root = make_folder_competition(tmp_path / "comp", classes=("00", "01", "02"), per_class=2)
    sample = root / "sample-submission.csv"
    sample.write_text(sample.read_text().replace(",0\n", f",{sample_label}\n"))
    comp = load_competition(DataOptions(data=str(root)))
    class_map = comp.class_maps[comp.target]
    assert class_map.values == ("00", "01", "02")
    fmt = detect_format(comp.schema, class_map)
    frame = fill_submission(comp.schema, np.eye(3)[[2, 0, 1, 2, 0]], class_map, fmt)
    validate_submission(frame, comp.schema, class_map, fmt)
    frame.to_csv(tmp_path / "s.csv", index=False)
    assert pd.read_csv(tmp_path / "s.csv", dtype=str)["Category"].tolist() == [str(w) for w in written]
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("labels:")]
    if sample_label == "0":
        assert said == ["labels: written as integers, as in sample-submission.csv's Category: 00 as 0, 01 as 1, "
                        "02 as 2"]
    else:
        assert said == []


# ---------------------------------------------------------------- 7. src.prune --epochs 0 is what its help says
def test_7_prune_epochs_0_means_no_fine_tuning_as_its_help_says():
    from src.core.config import build_parser
    from src.core.settings import PruneConfig

    assert "fine-tuning epochs after pruning (0: none)" in " ".join(build_parser(PruneConfig).format_help().split())
    assert parse_config(PruneConfig, ["--run", "r", "--epochs", "0"]).epochs == 0
    with pytest.raises(KitError) as err:
        parse_config(PruneConfig, ["--run", "r", "--epochs=-1"])
    assert str(err.value) == "--epochs: expected a number of 0 or more, got -1"


# ---------------------------------------------------------------- 8. WebP images are images, in training and test
def test_8_webp_images_are_listed_for_training_and_the_test_set(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from src.core.config import DataOptions
    from tests.conftest import COLOURS, make_folder_competition, write_image

    root = make_folder_competition(tmp_path / "comp", per_class=4)
    for i in range(3):
        write_image(root / "train" / "1" / f"w{i}.webp", colour=COLOURS[1], mode="RGBA" if i == 0 else "RGB")
    write_image(root / "test_upload" / "t5.webp")
    frames = [Image.fromarray(np.full((20, 24, 3), c, np.uint8)) for c in (10, 200)]
    frames[0].save(root / "train" / "2" / "anim.webp", save_all=True, append_images=frames[1:], duration=100)
    sample = root / "sample-submission.csv"
    sample.write_text(sample.read_text() + "t5.webp,0\n")
    comp = load_competition(DataOptions(data=str(root)))
    assert sorted(p.rsplit("/", 1)[-1] for p in comp.train["path"] if p.endswith(".webp")) == \
        ["w0.webp", "w1.webp", "w2.webp"]
    assert len(comp.test) == 6 and comp.test["path"].str.endswith("t5.webp").any()
    assert ("train/2/anim.webp (an animated WebP: TensorFlow decodes still WebP images only; convert to JPEG or "
            "PNG)") in capsys.readouterr().out


def test_8_a_webp_with_transparency_decodes_to_rgb(tmp_path):
    """TensorFlow refuses channels=3 for a WebP with alpha ('Number of channels requested does not match input')."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from src.core.config import PipelineOptions
    from src.pipeline.images import load_image

    pixels = np.zeros((16, 20, 4), np.uint8)
    pixels[:] = (40, 160, 220, 128)
    pixels[:8, :6, :3] = (215, 95, 35)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.webp", lossless=True)
    image = load_image({"path": tf.constant(str(tmp_path / "a.webp"))}, PipelineOptions(image_size=(16, 20))).numpy()
    assert image.shape == (16, 20, 3)
    assert np.abs(image.astype(int) - pixels[:, :, :3]).max() <= 1


# ---------------------------------------------------------------- 9. Ctrl-C while training: one line, exit 130
def test_9_ctrl_c_while_training_says_how_to_resume_and_exits_130(tmp_path, monkeypatch, capsys):
    import keras
    import pandas as pd

    import src.training.two_stage as two_stage
    from src.core.errors import run_cli
    from src.train import main as train_main
    from tests.conftest import make_folder_competition

    comp, run = make_folder_competition(tmp_path / "comp", per_class=8), tmp_path / "run"
    args = ["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages",
            "1", "--stage1-size", "16", "16", "--stage1-epochs", "2", "--batch-size", "8", "--out", str(run)]

    class CtrlC(keras.callbacks.Callback):  # the user presses Ctrl-C during the second epoch
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1:
                raise KeyboardInterrupt

    original = two_stage.train
    monkeypatch.setattr(two_stage, "train", lambda cfg: original(cfg, callbacks=[CtrlC()]))
    assert run_cli(train_main, args) == 130
    assert capsys.readouterr().err == (f"interrupted: the run in {run} keeps its last finished epoch; continue it "
                                       f"with python -m src.train --config {run / 'config.json'} --resume\n")
    monkeypatch.setattr(two_stage, "train", original)
    assert run_cli(train_main, ["--config", str(run / "config.json"), "--resume"]) == 0  # the line's command
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2]  # the first epoch kept, the second done


def test_9_ctrl_c_before_the_run_exists_says_to_run_again(tmp_path, monkeypatch, capsys):
    import src.training.two_stage as two_stage
    from src.core.errors import run_cli
    from src.train import main as train_main

    def pressed(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(two_stage, "train", pressed)
    assert run_cli(train_main, ["--out", str(tmp_path / "new")]) == 130
    assert capsys.readouterr().err == f"interrupted: {tmp_path / 'new'} holds no run yet: run the command again\n"


# ================================================================ issue 34, second part
# ---------------------------------------------------------------- 10. one run, no TTA: its row once, no ensemble row
@pytest.mark.parametrize("flags", [[], ["--tta", "auto"]])  # --tta auto that keeps identity: the demo's case
def test_10_one_run_without_tta_prints_its_row_once_and_no_ensemble_row(monkeypatch, capsys, flags):
    import types

    import numpy as np
    import pandas as pd

    import src.inference.submission as submission
    import src.kinds.label.kind as label_kind
    from src.core.submit_settings import SubmitConfig
    from src.inference.combine import combine_runs

    y = np.array([0, 1, 1, 0])
    probs = np.eye(2)[[0, 1, 0, 0]]
    run = types.SimpleNamespace(folder="runs/demo-small_resnet", is_cv=False, members=[None],
                                extra_images=lambda kind="extra": 0, holdout_folds=lambda: [])
    monkeypatch.setattr(submission, "predict_holdout", lambda *args: (pd.DataFrame(), y, probs[None], [None]))
    monkeypatch.setattr(submission, "predict_views", lambda *args: probs[None])
    monkeypatch.setattr(submission, "run_reference", lambda run: None)
    comp = types.SimpleNamespace(test=pd.DataFrame({"id": ["a", "b"]}))
    monkeypatch.setattr(submission, "select_views", lambda *args: (["identity"], [{"step": 0, "views": "identity",
                                                                                   "score": 0.75}]))
    cfg = parse_config(SubmitConfig, ["--run", "r", *flags])
    scorer = lambda p, t: float((p.argmax(1) == t).mean())
    holdout, test, scores = submission.predict_all([run], comp, ("identity",), cfg, scorer)
    scores += combine_runs([run], holdout, test, cfg, "accuracy", scorer).rows
    table = submission.shown_table(pd.DataFrame(scores), 1).splitlines()
    assert len(table) == 2 and table[1].split() == ["runs/demo-small_resnet", "0", "0", "identity", "0.75"]
    assert [row["run"] for row in scores] == ["runs/demo-small_resnet", "ensemble"]  # NAME.json keeps its score


# ---------------------------------------------------------------- 11. the kit's own other jobs' folders are no faults
def test_11_the_ledger_names_the_kits_other_jobs_quietly(tmp_path, capsys):
    from src.core.config import save_config
    from src.core.settings import EdaConfig, ScreenConfig
    from src.core.submit_settings import LedgerConfig
    from src.reports.ledger import write_ledger

    runs = tmp_path / "runs"
    save_config(EdaConfig(), runs / "eda")
    save_config(ScreenConfig(), runs / "screen")
    (runs / "odd").mkdir()
    (runs / "odd" / "config.json").write_text('{"colour": "red"}')
    write_ledger(LedgerConfig(runs=(str(runs),), submissions=str(tmp_path / "subs"), out=str(tmp_path)))
    out = capsys.readouterr().out
    assert f"other jobs' folders, not runs: {runs / 'eda'} (src.eda), {runs / 'screen'} (src.screen_backbones)\n" \
        in out
    assert out.count("not a run:") == 1 and f"not a run: {runs / 'odd'} (a config.json of no kit job" in out


# ---------------------------------------------------------------- 12. --runs FOLDER: its table beside it; reasons below
def test_12_the_ledger_of_another_folder_is_written_beside_it_with_reasons_below(tmp_path, capsys):
    import pandas as pd

    from src.core.submit_settings import LedgerConfig
    from src.reports.ledger import write_ledger

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "runs.csv").write_text("kind,name,status\nrun,mine,finished\n")  # the default folder's
    orphan = tmp_path / "other" / "orphan"
    orphan.mkdir(parents=True)
    (orphan / "stage1.weights.h5").write_bytes(b"")  # weights but no config.json: a damaged run
    write_ledger(parse_config(LedgerConfig, ["--runs", "other", "--submissions", "subs"]))
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "runs.csv").read_text() == "kind,name,status\nrun,mine,finished\n"
    assert pd.read_csv(tmp_path / "other" / "runs.csv")["status"].tolist() == [
        "damaged: other/orphan: no config.json (the run's settings)"]  # the file keeps the whole status
    lines = out.splitlines()
    header = lines[lines.index("runs (1):") + 1]
    assert lines[lines.index("runs (1):") + 2].split()[:2] == ["orphan", "damaged"]
    assert len(header) < 150 and "damaged: orphan: other/orphan: no config.json (the run's settings)" in lines
    assert f"wrote {'other/runs.csv'} (1 run(s), 0 submission(s))" in lines


# ---------------------------------------------------------------- 13. auc on 3 classes: the macro one-vs-rest mean
def test_13_auc_on_three_classes_is_the_macro_one_vs_rest_mean_every_epoch_and_said(folder_comp, tmp_path, capsys):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from src.inference.metrics import score
    from src.models.epoch_metrics import epoch_metric
    from src.runs.folder import RunFolder
    from src.training.two_stage import prepare_run

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    probs = rng.dirichlet((1, 1, 1), 300) + np.eye(3)[y] * rng.uniform(0, 0.6, (300, 1))
    probs /= probs.sum(axis=1, keepdims=True)
    macro = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert abs(macro - roc_auc_score(y == 1, probs[:, 1])) > 0.01  # the two readings differ here
    assert score(probs, y, "auc") == pytest.approx(macro, abs=1e-9)
    metric = epoch_metric("auc", num_classes=3)
    for rows in (slice(0, 128), slice(128, 300)):  # two batches, integer labels as the pipeline gives them
        metric.update_state(y[rows], probs[rows].astype("float32"))
    assert float(metric.result()) == pytest.approx(macro, abs=1e-3)
    cfg = parse_config(TrainConfig, ["--data", str(folder_comp), "--metric", "auc", "--out", str(tmp_path / "run")])
    prepare_run(cfg, RunFolder(tmp_path / "run"))
    assert ("auc on 3 classes: the mean of each class's one-vs-rest AUC (macro, as Plant Pathology scores), every "
            "epoch and on the holdout") in capsys.readouterr().out.splitlines()


# ---------------------------------------------------------------- 14. qwk on text grades: an order given, or refused
def test_14_qwk_on_text_grades_needs_their_order(tmp_path, capsys):
    import json

    from src.core.errors import run_cli
    from src.runs.folder import RunFolder
    from src.train import main as train_main
    from src.training.two_stage import prepare_run
    from tests.conftest import make_folder_competition

    comp = make_folder_competition(tmp_path / "comp", classes=("No_DR", "Mild", "Severe"), per_class=4)
    base = ["--data", str(comp), "--metric", "qwk", "--backbone", "tiny_resnet"]
    assert run_cli(train_main, [*base, "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--metric qwk weighs how far apart two classes are in their order; the classes of column Category are not "
        "numbers (Mild, No_DR, Severe, sorted as text): give their grade order with --class-order, e.g. "
        "--class-order Mild,No_DR,Severe")
    with pytest.raises(KitError, match=r"^--class-order No_DR,Mild: expected each class of column Category once "
                                       r"\(Mild, No_DR, Severe\); missing: Severe$"):
        prepare_run(parse_config(TrainConfig, [*base, "--class-order", "No_DR,Mild"]), RunFolder(tmp_path / "b"))
    cfg, data = prepare_run(parse_config(TrainConfig, [*base, "--class-order", "No_DR,Mild,Severe", "--out",
                                                       str(tmp_path / "c")]), RunFolder(tmp_path / "c"))
    assert data.class_map.values == ("No_DR", "Mild", "Severe")
    assert "qwk: classes weighed in the order No_DR < Mild < Severe (--class-order)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "c" / "class_map.json").read_text())["maps"][0]["values"]
    assert saved == ["No_DR", "Mild", "Severe"] and json.loads((tmp_path / "c" / "config.json").read_text())[
        "class_order"] == "No_DR,Mild,Severe"
    prepare_run(parse_config(TrainConfig, ["--data", str(make_folder_competition(tmp_path / "grades")), "--metric",
                                           "qwk", "--out", str(tmp_path / "d")]), RunFolder(tmp_path / "d"))
    assert "qwk:" not in capsys.readouterr().out  # numbers are grades already


# ---------------------------------------------------------------- 15. a one-class holdout: said, nothing chosen on it
def test_15_a_group_split_that_cannot_hold_out_both_classes_is_refused_by_name(tmp_path):
    from src.data.splits import prepare_split
    from tests.conftest import make_isic_competition

    comp = make_isic_competition(tmp_path / "isic", positives=(3, 13, 23))  # all three: patient IP_003's
    args = ["--data", str(comp), "--label-column", "target", "--group-column", "patient_id"]
    with pytest.raises(KitError) as err:
        prepare_split(parse_config(TrainConfig, args))
    assert str(err.value).startswith("split (runs/splits/isic-seed42-")
    assert ".csv): the holdout holds class 0 only (10 images; none of class(es) 1), " in str(err.value)
    assert str(err.value).endswith(
        "so no metric can choose epochs, stages or a temperature on it: --group-column patient_id keeps each group "
        "on one side, and every image of class(es) 1 is in 1 group(s): no split of whole groups can put them on "
        "both sides (drop --group-column, or check the column)")


def test_15_a_class_of_two_images_in_fifty_is_held_out_too(tmp_path):
    """StratifiedShuffleSplit rounded 2 positives in 50 at --val-fraction 0.2 to none held out."""
    from src.data.splits import prepare_split
    from tests.conftest import make_isic_competition

    comp = make_isic_competition(tmp_path / "isic")  # positives: images 3 and 27
    split = prepare_split(parse_config(TrainConfig, ["--data", str(comp)])).split
    assert split.groupby("split")["target"].agg(["nunique", "size"]).to_dict() == {
        "nunique": {"train": 2, "val": 2}, "size": {"train": 40, "val": 10}}


def test_15_submit_fits_nothing_on_a_one_class_holdout(capsys):
    import types

    import numpy as np

    from src.core.submit_settings import SubmitConfig
    from src.data.class_maps import ClassMap
    from src.inference.combine import combine_runs
    from src.inference.metrics import score

    run = types.SimpleNamespace(folder="runs/a", is_cv=False, class_map=ClassMap("target", (0, 1)),
                                holdout_folds=lambda: [0])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3]])
    holdout = {"tta": [probs, probs], "y": [np.zeros(3, int)] * 2, "views": ["identity"] * 2}
    test = [np.array([[0.2, 0.8]]), np.array([[0.4, 0.6]])]
    cfg = parse_config(SubmitConfig, ["--run", "a", "--metric", "log_loss", "--ensemble-weights", "fit"])
    made = combine_runs([run, run], holdout, test, cfg, "log_loss", lambda p, y: score(p, y, "log_loss"))
    assert made.record["calibration"] is None and made.weights == [0.5, 0.5]
    np.testing.assert_allclose(made.test, [[0.3, 0.7]])  # no temperature applied to the test
    assert capsys.readouterr().out == ("the holdout holds one class only (3 images of 0): no holdout score, equal "
                                       "weights, nothing chosen on it; no temperature is fitted (--calibrate)\n")


# ---------------------------------------------------------------- 16. --accumulate no stage reaches; a slow --ema
def test_16_accumulate_beyond_the_stage_is_refused_and_a_slow_ema_is_said(tmp_path, monkeypatch, capsys):
    import src.training.stages as stages
    from src.core.errors import run_cli
    from src.train import main as train_main
    from tests.conftest import make_folder_competition

    comp = make_folder_competition(tmp_path / "comp", per_class=8)  # 24 images: 19 to train, 3 batches of 8
    args = ["--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages",
            "1", "--stage1-size", "16", "16", "--stage1-epochs", "2", "--batch-size", "8"]
    assert run_cli(train_main, [*args, "--accumulate", "1000", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err == (
        "error: --accumulate 1000: more than the 6 batch(es) of stage1 (3 an epoch: 19 images, batch 8; 2 epoch(s)), "
        "so no update would ever be applied; use --accumulate 3 or less, or a smaller --batch-size\n")

    def built(*args):
        raise InterruptedError("no model needed")

    monkeypatch.setattr(stages, "build_stage_model", built)
    with pytest.raises(InterruptedError):
        train_main([*args, "--ema", "0.999", "--accumulate", "4", "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out.splitlines()
    assert "note: --accumulate 4 is more than the 3 batch(es) of an epoch of stage1: 1 update(s) in its 2 epoch(s)" \
        in out
    assert ("note: --ema 0.999 over at most 1 update(s) of stage1: the average stays 100% the weights of its first "
            "update (it forgets them over about 1000 updates); --ema 0.05 or less would average this stage's "
            "updates") in out


# ---------------------------------------------------------------- 17. soft and pseudo labels that cannot be right
@pytest.mark.parametrize("change, said", [
    ("logits", "row(s) hold no probabilities (each from 0 to 1, summing to 1: not logits or scores); the first: id "),
    ("nan", "1 row(s) hold a cell that is no number; the first: id "),
    ("empty", "1 row(s) hold a cell that is no number; the first: id "),
    ("prob_3", "column prob_3 is no class of Category (0, 1, 2): expected a K-fold run's oof_predictions.csv"),
])
def test_17_soft_labels_that_are_no_probabilities_of_these_classes_are_refused(folder_comp, tmp_path, change, said):
    import numpy as np
    import pandas as pd

    from src.data.soft_labels import add_soft_labels
    from src.data.splits import prepare_split

    data = prepare_split(parse_config(TrainConfig, ["--data", str(folder_comp)]))
    oof = pd.DataFrame({"id": data.split["id"].astype(str), **{f"prob_{c}": 1 / 3 for c in range(3)}})
    if change == "logits":
        oof[["prob_0", "prob_1", "prob_2"]] = np.log(1 / 3)
    elif change == "prob_3":
        oof["prob_3"] = 0.0
    else:
        oof["prob_1"] = oof["prob_1"].astype(object)  # a training image's cell: "NaN" as written, or empty
        oof.loc[oof["id"] == str(data.train["id"].iloc[0]), "prob_1"] = "NaN" if change == "nan" else ""
    oof.to_csv(tmp_path / "oof.csv", index=False)
    cfg = parse_config(TrainConfig, ["--data", str(folder_comp), "--soft-labels", str(tmp_path / "oof.csv")])
    with pytest.raises(KitError) as err:
        add_soft_labels(data.split, data.comp, cfg)
    assert str(err.value).startswith(f"--soft-labels {tmp_path / 'oof.csv'}: ") and said in str(err.value)


def test_17_soft_weight_alone_and_pseudo_labels_of_other_images_are_refused(folder_comp, tmp_path):
    import pandas as pd

    from src.data.pseudo_labels import add_pseudo_labels
    from src.data.splits import prepare_split

    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, ["--soft-weight", "0.5"])
    assert str(err.value) == ("--soft-weight 0.5: the share of --soft-labels' probabilities in each target; pass "
                              "--soft-labels OOF.csv too (without it every target is the one-hot label)")
    pd.DataFrame({"id": ["other1.jpg", "other2.jpg"], **{f"prob_{c}": 1 / 3 for c in range(3)}}).to_csv(
        tmp_path / "s.probs.csv", index=False)
    cfg = parse_config(TrainConfig, ["--data", str(folder_comp), "--pseudo-labels", str(tmp_path / "s.csv")])
    data = prepare_split(cfg)
    with pytest.raises(KitError) as err:
        add_pseudo_labels(data.split, data.comp, cfg)
    assert str(err.value) == (f"--pseudo-labels {tmp_path / 's.csv'}: none of its 2 id(s) is a test image of "
                              f"{folder_comp} (first 'other1.jpg'; the test's first 't0.jpg'): expected a submission "
                              "of this competition's test images")


# ---------------------------------------------------------------- 18. a symbolic link loop under runs/: each run once
def test_18_a_symlink_loop_lists_each_run_once(tmp_path):
    import os

    from src.runs.search import find_runs

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "state.json").write_text("{}")
    os.symlink(tmp_path / "runs", tmp_path / "runs" / "loop")  # runs/loop -> runs
    os.symlink(run, tmp_path / "runs" / "again")  # a second name of runs/a
    runs, skipped = find_runs([str(tmp_path / "runs")])
    assert [r.path.name for r in runs] == ["a"] and skipped == []


# ---------------------------------------------------------------- 19. two submits of one name; a killed submit's folder
def test_19_a_second_submit_of_a_name_being_written_is_refused(folder_comp, tmp_path, monkeypatch):
    import subprocess
    import sys
    import types

    import src.inference.submission as submission
    import src.kinds.label.kind as label_kind
    from src.core.submit_settings import SubmitConfig
    from src.data.class_maps import ClassMap

    member = types.SimpleNamespace(config=parse_config(TrainConfig, ["--data", str(folder_comp)]))
    group = types.SimpleNamespace(class_map=ClassMap("Category", (0, 1, 2)), folder="runs/a", members=[member])
    monkeypatch.setattr(submission, "load_group", lambda folder: group)
    monkeypatch.setattr(submission, "runs_metric", lambda runs: ("accuracy", "runs/a/config.json"))
    monkeypatch.setattr(label_kind, "check_full_fits", lambda *args: None)  # the label kind's check_submit
    subs = tmp_path / "subs"
    subs.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another src.submit, running,
    (subs / ".s.lock").write_text(f"{other.pid}\n")                                  # claimed the name
    cfg = parse_config(SubmitConfig, ["--data", str(folder_comp), "--run", "runs/a", "--out", str(subs), "--name",
                                      "s", "--accelerator", "cpu"])
    try:
        with pytest.raises(KitError) as err:
            submission.submit(cfg)
    finally:
        other.kill()
        other.wait()
    assert str(err.value) == (f"{subs / 's.csv'} is being written by another src.submit (process {other.pid}): "
                              "wait for it to finish, or pass another --name")
    assert sorted(p.name for p in subs.iterdir()) == [".s.lock"]  # the other job's claim is left to it


def test_19_a_killed_submits_partial_folder_is_removed_by_the_next(tmp_path):
    import subprocess
    import sys

    from src.core.files import staged_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".s.partial-{int(dead.stdout)}"  # what a SIGTERM during a submit left
    stale.mkdir()
    (stale / "s.csv").write_text("id,label\n")
    with staged_files(tmp_path, "s") as stage:
        (stage / "s.csv").write_text("id,label\nx,1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


# ---------------------------------------------------------------- 20. src.predict / src.prune on a K-fold run's folder
@pytest.mark.parametrize("command", ["predict", "prune"])
def test_20_predict_and_prune_name_a_kfold_runs_folds(tmp_path, capsys, command):
    import importlib

    from src.core.errors import run_cli

    root = tmp_path / "cv"
    for fold in range(3):  # as src.train --folds 3 leaves it: the folds hold the runs
        (root / f"fold-{fold}").mkdir(parents=True)
        (root / f"fold-{fold}" / "state.json").write_text('{"finished": ["stage1", "stage2"]}')
    (root / "config.json").write_text('{"folds": 3, "stage1_size": [16, 16]}')
    main = importlib.import_module(f"src.{command}").main
    assert run_cli(main, ["--run", str(root), *(["x.png"] if command == "predict" else [])]) == 2
    assert capsys.readouterr().err == (
        f"error: --run {root} is a K-fold run (3 folds: fold-0, fold-1, fold-2) and this command uses one model: pass "
        f"one fold, e.g. --run {root / 'fold-0'} (src.submit averages every fold)\n")


# ---------------------------------------------------------------- 21. a lock whose id now names another process
def test_21_a_lock_whose_pid_is_now_another_process_is_taken_over_saying_so(tmp_path, capsys, live_python):
    import os

    from src.core.processes import host_name, process_start
    from src.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    parent = os.getppid()  # alive: it runs these tests, and is no training
    cases = {f"{parent}\n{host_name()} {process_start(parent)}9\n": "which is no longer running (that id now names "
                                                                     "another process)",
             "1\nkaggle-machine 5\n": "which ran on another machine (kaggle-machine): the run was copied"}
    for written, why in cases.items():
        (run.path / ".lock").write_text(written)
        with run.lock():
            holder, machine_and_start = (run.path / ".lock").read_text().splitlines()
            assert holder == str(os.getpid()) and machine_and_start == f"{host_name()} {process_start(os.getpid())}"
        pid = written.split()[0]
        assert capsys.readouterr().out == f"{run.path}: taking over the lock of process {pid}, {why}\n"
    writer = live_python  # its writer, alive: a Python
    (run.path / ".lock").write_text(f"{writer.pid}\n{host_name()} {process_start(writer.pid)}\n")
    with pytest.raises(KitError, match=f"^{run.path} is in use by process {writer.pid} "):
        with run.lock():
            pass


def test_15_tta_auto_chooses_no_views_on_a_one_class_holdout(monkeypatch, capsys):
    """--tta auto is a choice by the metric: on a holdout of one class it is not made; every view is averaged."""
    import types

    import numpy as np
    import pandas as pd

    import src.inference.submission as submission
    import src.kinds.label.kind as label_kind
    from src.core.submit_settings import SubmitConfig
    from src.data.class_maps import ClassMap

    member = object()
    run = types.SimpleNamespace(folder="runs/a", is_cv=False, members=[member], class_map=ClassMap("target", (0, 1)),
                                extra_images=lambda kind="extra": 0)
    per_view = np.array([[[0.9, 0.1]] * 3, [[0.2, 0.8]] * 3])  # identity, hflip
    monkeypatch.setattr(submission, "predict_holdout",
                        lambda *args: (pd.DataFrame({"id": ["a", "b", "c"]}), np.zeros(3, int), per_view, [None]))
    monkeypatch.setattr(submission, "predict_views", lambda member, frame, views, passes, model: per_view[:len(views)])
    monkeypatch.setattr(submission, "run_reference", lambda run: None)
    monkeypatch.setattr(submission, "select_views", lambda *args: pytest.fail("views chosen on one class"))
    cfg = parse_config(SubmitConfig, ["--run", "a", "--tta", "auto", "--tta-views", "identity,hflip"])
    comp = types.SimpleNamespace(test=pd.DataFrame({"id": ["t"]}))
    holdout, test, _ = submission.predict_all([run], comp, ("identity", "hflip"), cfg, lambda p, y: 0.5)
    assert "runs/a: --tta auto chooses nothing on a holdout of one class: every view kept, averaged" in \
        capsys.readouterr().out
    assert holdout["views"] == ["identity+hflip"] and holdout["steps"] == [[]]
    np.testing.assert_allclose(test[0], [[0.55, 0.45]] * 3)
