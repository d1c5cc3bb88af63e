"""Issue 22 items 8 and 9: --full-fit RUN (every image, RUN's chosen epochs) and soft targets (--soft-labels,
--pseudo-soft), read back from the files and datasets the kit makes."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from src.core.config import parse_config, save_config
from src.core.errors import KitError
from src.core.settings import PruneConfig, TrainConfig
from src.core.submit_settings import SubmitConfig
from src.data.competition import load_competition
from src.data.splits import prepare_split
from src.hardware.accelerator import pick_accelerator
from src.reports.run_rows import run_row
from src.inference.submission import submit
from src.runs.folder import RunFolder
from src.runs.reference import reference_score
from src.runs.stages import plan_stages
from src.training.full_fit import full_fit_config, full_fit_stages
from src.training.pruning import prune
from src.training.stages import stage_datasets
from src.training.two_stage import prepare_run, train
from tests.test_train import config, comp  # noqa: F401  (comp: the fixture)


def write_reference(comp, folder, stage1=(0.5, 0.8, 0.7, 0.6), stage2=(0.85, 0.9, 0.9), kept="stage2"):
    """Write a finished reference run's record (config, state, history): stage 1's best epoch is 2 of 4 and
    stage 2's 2 of 3 (the tie at 0.9 goes to the lower val_loss, epoch 2)."""
    cfg = config(comp, folder.parent, "--stage1-epochs", "4", "--stage2-epochs", "3", "--metric", "accuracy",
                 "--out", str(folder))
    save_config(cfg, folder)
    rows = [{"stage": s, "epoch": e + 1, "lr": 1e-3, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0 - 0.1 * (e == 1),
             "val_accuracy": v} for s, values in (("stage1", stage1), ("stage2", stage2)) for e, v in enumerate(values)]
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
    (folder / "state.json").write_text(json.dumps({"finished": ["stage1", "stage2"], "metric": "accuracy", "kept": kept,
                                                   "best": {"stage1": max(stage1), "stage2": max(stage2)}}))
    return folder


def test_full_fit_trains_the_reference_runs_chosen_epochs_on_every_image_and_submits_with_its_score(
        comp, tmp_path, capsys):
    ref = write_reference(comp, tmp_path / "ref", kept="stage1")  # its stage 1 scored best: no stage 2 (cheaper)
    # Only --full-fit, --out and the data: the rest (sizes, rates, backbone) is the reference's.
    summary = train(parse_config(TrainConfig, ["--full-fit", str(ref), "--data", str(comp),
                                               "--out", str(tmp_path / "full")]))
    out = capsys.readouterr().out
    assert "epochs per stage as its early stopping chose them: stage1 2; each stage keeps its last epoch; final " \
           f"stage stage1 (as {ref} kept); stage 2 is not trained" in out
    assert "the last epoch kept (full-fit: no holdout)" in out and "holdout accuracy" not in out
    history = pd.read_csv(tmp_path / "full" / "history.csv")
    assert list(zip(history["stage"], history["epoch"])) == [("stage1", 1), ("stage1", 2)]  # 2 of the 4 planned
    assert history["val_accuracy"].isna().all()  # nothing was validated
    split = pd.read_csv(tmp_path / "full" / "split.csv")
    assert len(split) == 24 and (split["split"] == "train").all()  # every image trained, none held out
    assert not (tmp_path / "full" / "holdout_predictions.csv").exists()
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert (saved["full_fit"], saved["stage1_epochs"], saved["stages"], saved["stage1_size"], saved["stage1_lr"]) == \
        (str(ref), 4, 1, [16, 16], 1e-2)  # the reference's planned epochs: the schedule's length
    assert "stage1: 16x16, up to 2 epoch(s)" in out
    assert summary["kept"] == "stage1" and json.loads((tmp_path / "full" / "state.json").read_text())["epochs"] == \
        {"stage1": 2}

    result = submit(SubmitConfig(data=str(comp), run=(str(tmp_path / "full"),), out=str(tmp_path / "subs"),
                                 tta_views="identity,rot90"))
    out = capsys.readouterr().out
    assert f"reference score: {ref}'s holdout val_accuracy 0.8000 (full-fit has no holdout)" in out
    assert result["scores"][0]["score"] == pytest.approx(0.8) and "full-fit; reference" in result["scores"][0]["run"]
    assert len(pd.read_csv(tmp_path / "subs" / "submission.csv")) == 5
    with pytest.raises(KitError, match=r"--tta auto \(views chosen on the holdout\): needs the runs' holdout, and "
                                       f"--run {tmp_path / 'full'} is a full-fit"):
        submit(SubmitConfig(data=str(comp), run=(str(tmp_path / "full"),), out=str(tmp_path / "subs"), name="auto",
                            tta="auto"))
    with pytest.raises(KitError, match="no holdout is left to score the pruning on; prune its reference run"):
        prune(PruneConfig(run=str(tmp_path / "full")))
    row = run_row(RunFolder(tmp_path / "full"), "full")
    assert row["score"] == pytest.approx(0.8) and row["scored_on"] == f"reference: {ref} holdout"
    ref.rename(tmp_path / "moved")  # the full-fit stays usable; its reference is said to be gone, not made up
    row = run_row(RunFolder(tmp_path / "full"), "full")
    assert np.isnan(row["score"]) and row["scored_on"] == f"reference: {ref} (not found)"


def test_a_full_fit_plans_both_chosen_counts_and_says_the_flags_that_differ(comp, tmp_path, capsys):
    ref = write_reference(comp, tmp_path / "ref")  # kept stage 2; its best epoch: 2 of 3 (a tie, lower val_loss)
    cfg = full_fit_config(parse_config(TrainConfig, ["--full-fit", str(ref), "--stage1-lr", "3e-3",
                                                     "--stage1-patience", "9"]))
    assert (cfg.stages, cfg.final_stage, cfg.out, cfg.stage1_lr, cfg.data) == \
        (2, "last", f"{ref}-fullfit", 3e-3, str(comp))  # no --data: the reference's
    stages = full_fit_stages(cfg, plan_stages(cfg))
    assert [(s.name, s.epochs, s.schedule_epochs) for s in stages] == [("stage1", 2, 4), ("stage2", 2, 3)]
    out = capsys.readouterr().out
    assert f"--stage1-lr 0.003 differs from {ref}'s 0.01: the reference score was measured without it" in out
    assert f"--stage1-patience 9 differs from {ref}'s 4: unused, a full-fit holds nothing out" in out
    assert "stage1 2, stage2 2; each stage keeps its last epoch; final stage stage2" in out
    # Roles (src.core.roles): --steps-per-execution is how this process runs, the full-fit's own, never said;
    # --head-units is the model's, refused; both by the field's declared role, no list of the full-fit's own.
    cfg = full_fit_config(parse_config(TrainConfig, ["--full-fit", str(ref), "--steps-per-execution", "4"]))
    assert cfg.steps_per_execution == 4 and "steps-per-execution" not in capsys.readouterr().out
    with pytest.raises(KitError, match="--head-units 64 differs from the reference run's 256"):
        full_fit_config(parse_config(TrainConfig, ["--full-fit", str(ref), "--head-units", "64"]))
    again = full_fit_config(dataclasses.replace(cfg, resume=True))  # --resume with its own config.json: the same
    assert again == dataclasses.replace(cfg, resume=True)


def test_a_fold_of_a_k_fold_run_serves_as_reference_and_names_the_cv_score(comp, tmp_path):
    ref = write_reference(comp, tmp_path / "cv" / "fold-1")
    pd.DataFrame({"fold": ["0", "1", "mean", "std"], "score": [0.8, 0.9, 0.85, 0.07]}).to_csv(tmp_path / "cv" / "cv.csv")
    cfg = full_fit_config(parse_config(TrainConfig, ["--full-fit", str(ref)]))
    assert full_fit_stages(cfg, plan_stages(cfg))[0].epochs == 2
    assert reference_score(RunFolder(ref))["line"] == (f"reference score: {ref}'s holdout val_accuracy 0.9000 (full-fit "
                                                       f"has no holdout); its K-fold run {tmp_path / 'cv'}: CV accuracy "
                                                       "0.8500")


@pytest.mark.parametrize("make, flags, said", [
    (None, [], "no such folder; expected a finished run folder"),
    ("kfold", [], "a K-fold run (fold-0, fold-1), whose folds stopped at different epochs: pass one fold's folder"),
    ("unfinished", [], "not finished (stage1 finished, no kept stage in state.json"),
    ("ref", ["--backbone", "mobilenetv3_small"], "--backbone 'mobilenetv3_small' differs from the reference run's "
                                                 "'tiny_resnet'"),
    ("ref", ["--stage1-size", "32", "32"], "--stage1-size (32, 32) differs"),
])
def test_a_full_fit_reference_that_cannot_serve_is_named_before_any_folder(comp, tmp_path, make, flags, said):
    ref = tmp_path / "ref"
    if make == "kfold":
        for fold in range(2):
            write_reference(comp, ref / f"fold-{fold}")
    elif make:
        write_reference(comp, ref)
    if make == "unfinished":
        (ref / "state.json").write_text(json.dumps({"finished": ["stage1"], "best": {"stage1": 0.8}}))
    with pytest.raises(KitError) as err:
        train(parse_config(TrainConfig, ["--full-fit", str(ref), "--out", str(tmp_path / "full"), *flags]))
    assert said in str(err.value) and str(ref) in str(err.value)
    assert not (tmp_path / "full").exists()


def write_oof(comp, path, drop=()):
    """Write an oof_predictions.csv over the competition's training images: a distinct probability row each."""
    competition = load_competition(parse_config(TrainConfig, ["--data", str(comp)]), with_test=False)
    train = competition.train
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=len(train))
    frame = pd.DataFrame({"id": train["id"].astype(str), "label": train[competition.target],
                          **{f"prob_{c}": probs[:, i] for i, c in enumerate("abc")}, "fold": 0})
    frame[~frame["id"].isin(drop)].to_csv(path, index=False)
    return frame.set_index("id")


def test_soft_targets_mix_the_oof_probabilities_and_pseudo_soft_keeps_the_test_probabilities(comp, tmp_path):
    oof = write_oof(comp, tmp_path / "oof.csv")
    test_probs = pd.DataFrame({"id": [f"t{i}.jpg" for i in range(5)], "prob_a": [0.6, 0.1, 0.2, 0.3, 0.25],
                               "prob_b": [0.3, 0.7, 0.2, 0.3, 0.3], "prob_c": [0.1, 0.2, 0.6, 0.4, 0.45]})
    test_probs.to_csv(tmp_path / "first.probs.csv", index=False)
    cfg = config(comp, tmp_path, "--soft-labels", str(tmp_path / "oof.csv"), "--soft-weight", "0.3",
                 "--pseudo-labels", str(tmp_path / "first.csv"), "--pseudo-soft", "--pseudo-threshold", "0.5")
    cfg, data = prepare_run(cfg, RunFolder(tmp_path / "run"))
    train_ds, val_ds = stage_datasets(plan_stages(cfg)[0], cfg, data, 64, pick_accelerator(request="cpu"))
    got = np.concatenate([y.numpy() for _, y in train_ds])
    own = data.train[data.train["source"] == "competition"]
    onehot = np.eye(3)[data.class_map.encode(own[data.target])]
    mixed = 0.3 * oof.loc[own["id"].astype(str), ["prob_a", "prob_b", "prob_c"]].to_numpy() + 0.7 * onehot
    pseudo = test_probs.iloc[[0, 1, 2]][["prob_a", "prob_b", "prob_c"]].to_numpy()  # max >= 0.5: t0, t1, t2
    expected = np.concatenate([mixed, pseudo])
    assert got.shape == expected.shape == (len(own) + 3, 3)
    order = lambda rows: rows[np.lexsort(rows.T[::-1])]  # noqa: E731  (the dataset is shuffled)
    np.testing.assert_allclose(order(got), order(expected), atol=1e-6)
    val = np.concatenate([y.numpy() for _, y in val_ds])  # the holdout keeps the true labels
    np.testing.assert_array_equal(val, np.eye(3)[data.y_val])


def test_soft_labels_missing_training_images_are_counted_naming_the_file(comp, tmp_path):
    training = prepare_split(config(comp, tmp_path)).train["id"].astype(str)
    write_oof(comp, tmp_path / "oof.csv", drop=list(training[:2]))
    cfg = config(comp, tmp_path, "--soft-labels", str(tmp_path / "oof.csv"))
    with pytest.raises(KitError) as err:
        train(cfg)
    assert f"--soft-labels {tmp_path / 'oof.csv'}: 2 of the {len(training)} training image(s) have no out-of-fold" \
        in str(err.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, said", [
    (["--pseudo-soft"], "--pseudo-soft: keeps --pseudo-labels' probabilities as targets; pass --pseudo-labels FILE"),
    (["--soft-weight", "1"], "--soft-weight: expected a number between 0 and 1, got 1"),
    (["--full-fit", "runs/a", "--folds", "3"], "--full-fit runs/a: trains one model on every training image, so "
                                               "--folds 3 (every fold in turn) has no meaning"),
    (["--soft-labels", "a.csv", "--targets", "x,y"], "--soft-labels: soft targets are for the one submission column"),
])
def test_refit_flags_that_cannot_work_are_named_when_the_config_is_made(flags, said, tmp_path):
    with pytest.raises(KitError) as err:
        parse_config(TrainConfig, ["--out", str(tmp_path / "run"), *flags])
    assert said in str(err.value)
    assert not (tmp_path / "run").exists()
