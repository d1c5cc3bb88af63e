"""`python -m src.ledger`: one table of runs and submissions, read from the files the kit's own jobs wrote.

One tiny two-stage run (16 and 20 px, tiny_resnet from random weights, --tensorboard) and two
submissions from it are made once for the module; each test copies what it damages or changes.
The command runs in a subprocess as a user would run it (no TensorFlow loaded by it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from src.core.config import DataOptions, parse_config
from src.core.errors import KitError
from src.data.competition import load_competition
from src.core.settings import TrainConfig
from src.core.submit_settings import LedgerConfig, SubmitConfig
from src.core.metric_choice import monitor
from src.inference.submission import submit
from src.reports.ledger import write_ledger
from src.training.two_stage import train
from tests.conftest import REPO, make_folder_competition

from tests.fake_kaggle import TOKEN


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Return (root, competition, run folder, submissions folder): one run and two submissions of it."""
    root = tmp_path_factory.mktemp("ledger")
    comp = make_folder_competition(root / "comp", per_class=8, n_test=6)
    run = root / "runs" / "tiny"
    train(parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stage1-size", "16", "16", "--stage1-epochs", "2", "--stage1-lr", "1e-2", "--stage2-size", "20", "20",
        "--stage2-epochs", "1", "--stage2-lr", "1e-3", "--batch-size", "8", "--out", str(run),
        "--split-file", str(root / "split.csv"), "--tensorboard", "--final-stage", "last"]))  # stage 2 kept
    subs = root / "submissions"
    for name, extra in (("plain", []), ("tta", ["--tta-views", "identity,center_crop_90"])):
        submit(parse_config(SubmitConfig, ["--data", str(comp), "--run", str(run), "--out", str(subs),
                                           "--name", name, *extra]))
    return root, comp, run, subs


def ledger(*args, env=None, cwd=None, expect=0):
    """Run `python -m src.ledger ARGS`; return the process (never a traceback)."""
    env = env or {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "src.ledger", *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == expect, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def read_table(path):
    return pd.read_csv(path, dtype={"name": str, "commit": str, "status": str}, keep_default_na=False,
                       na_values={c: [""] for c in ("score", "std", "public_score", "private_score", "seconds")})


def copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


def test_rows_and_scores_equal_what_the_files_hold(made, tmp_path):
    root, _, run, subs = made
    result = ledger("--runs", str(root / "runs"), "--submissions", str(subs), "--out", str(tmp_path))
    table = read_table(tmp_path / "runs.csv")
    row = table[table["kind"] == "run"].iloc[0]
    config = json.loads((run / "config.json").read_text())
    state = json.loads((run / "state.json").read_text())
    history = pd.read_csv(run / "history.csv")
    assert row["name"] == "tiny" and row["status"] == "finished" and row["backbone"] == config["backbone"]
    assert row["sizes"] == "16x16 > 20x20"
    counts = history["stage"].value_counts()
    assert row["epochs"] == f"{counts['stage1']}+{counts['stage2']}" == "2+1"
    assert row["metric"] == "accuracy" and row["final_stage"] == "stage2"
    best = history.loc[history["stage"] == "stage2", "val_accuracy"].max()
    assert row["score"] == pytest.approx(best) and row["score"] == pytest.approx(state["best"]["stage2"])
    assert row["seconds"] == pytest.approx(sum(state["seconds"].values())) and row["seconds"] > 0
    assert str(row["seconds_estimated"]) == "False" and len(row["commit"]) == 7 and state["git_commit"].startswith(row["commit"])
    shown = row["options"].split()  # what differs from TrainConfig's defaults, and only that
    assert sorted(shown) == sorted(["weights=none", "augment=none", "stage1-epochs=2", "stage1-lr=0.01",
                                    "stage2-epochs=1", "stage2-lr=0.001", "batch-size=8", "final-stage=last"]), shown
    subs_rows = table[table["kind"] == "submission"].set_index("name")
    assert set(subs_rows.index) == {"plain", "tta"}
    for name in ("plain", "tta"):
        manifest = json.loads((subs / f"{name}.json").read_text())
        ensemble = [r for r in manifest["holdout"] if r["run"] == "ensemble"][0]
        assert subs_rows.loc[name, "score"] == pytest.approx(ensemble["score"])
        assert subs_rows.loc[name, "runs"] == manifest["runs"][0] == str(run)
        assert subs_rows.loc[name, "views"] == manifest["views"][0]
        assert subs_rows.loc[name, "date"] == manifest["date"] and subs_rows.loc[name, "scored_on"] == "holdout"
    scores = table.loc[table["kind"] == "submission", "score"].tolist()
    assert scores == sorted(scores, reverse=True)  # accuracy: best first
    assert f"{row['score']:.4f}" in result.stdout and "submissions (2):" in result.stdout


def test_the_metric_and_kept_stage_of_a_run_are_used_in_the_metrics_direction(made, tmp_path):
    """A run whose config.json names log_loss, history.csv a val_log_loss column, state.json a kept stage 1."""
    root, _, run, _ = made
    runs = tmp_path / "runs"
    copy_run(run, runs / "acc")
    lossy = copy_run(run, runs / "lossy")
    config = json.loads((lossy / "config.json").read_text())
    (lossy / "config.json").write_text(json.dumps({**config, "metric": "log_loss"}))
    history = pd.read_csv(lossy / "history.csv")
    history[monitor("log_loss")] = [0.9, 0.4, 0.7][:len(history)]
    history.to_csv(lossy / "history.csv", index=False)
    state = json.loads((lossy / "state.json").read_text())
    (lossy / "state.json").write_text(json.dumps({**state, "kept": "stage1"}))
    ledger("--runs", str(runs), "--submissions", str(tmp_path / "none"), "--out", str(tmp_path))
    table = read_table(tmp_path / "runs.csv").set_index("name")
    assert table.loc["lossy", "metric"] == "log_loss" and table.loc["lossy", "final_stage"] == "stage1"
    assert table.loc["lossy", "score"] == pytest.approx(0.4)  # the lowest of stage 1's epochs, not stage 2's 0.7
    assert table.loc["acc", "metric"] == "accuracy"
    assert monitor("map@5") == "val_map_at_5" and monitor("auc") == "val_auc"


def test_damaged_and_unfinished_run_folders_are_rows_that_say_so(made, tmp_path):
    root, _, run, _ = made
    runs = tmp_path / "runs"
    broken = copy_run(run, runs / "broken-config")
    (broken / "config.json").write_text('{"backbone": "small_resnet", "stage1_si')
    cut = copy_run(run, runs / "cut")
    (cut / "history.csv").unlink()
    state = json.loads((cut / "state.json").read_text())
    (cut / "state.json").write_text(json.dumps({**state, "finished": ["stage1"]}))
    (cut / "history-stage2.csv").write_text("epoch,val_accuracy\n")
    orphan = runs / "orphan"
    orphan.mkdir(parents=True)
    shutil.copy(run / "stage1.weights.h5", orphan)  # weights but no config.json
    badhist = copy_run(run, runs / "bad-history")
    (badhist / "history.csv").write_text("stage,epoch\nstage2,1\n")
    bad_state = copy_run(run, runs / "bad-state")
    (bad_state / "state.json").write_text('{"finished": ["stage1", "st')
    (runs / "screen").mkdir()
    (runs / "screen" / "config.json").write_text('{"backbones": "a,b"}')
    result = ledger("--runs", str(runs), "--submissions", str(tmp_path / "none"), "--out", str(tmp_path))
    table = read_table(tmp_path / "runs.csv").set_index("name")
    assert set(table.index) == {"broken-config", "cut", "orphan", "bad-history", "bad-state"}
    assert table.loc["bad-state", "status"].startswith(f"damaged: {bad_state / 'state.json'}: damaged, not valid JSON (")
    assert table.loc["broken-config", "status"].startswith(f"damaged: {broken / 'config.json'}: damaged, not valid JSON")
    assert table.loc["cut", "status"] == "unfinished: stage2 stopped after epoch 0/1 (--resume continues it)"
    assert table.loc["orphan", "status"] == f"damaged: {orphan}: no config.json (the run's settings)"
    assert table.loc["bad-history", "status"] == f"damaged: {badhist / 'history.csv'}: no val_accuracy column " \
                                                 "(config.json's metric is accuracy)"
    assert table["score"].isna().all()
    assert f"other jobs' folders, not runs: {runs / 'screen'} (src.screen_backbones)" in result.stdout
    assert f"not a run: {tmp_path / 'missing'} (no such folder)" in ledger("--runs", str(tmp_path / "missing"),
                                                                          "--out", str(tmp_path)).stdout


def test_a_kfold_run_is_scored_by_its_cv_file(made, tmp_path):
    """Two fold folders (copies of the run) and cv.csv from the kit's cv_table: the row is cv.csv's mean and std."""
    from src.training.cross_validation import cv_table

    root, comp, run, _ = made
    kfold = tmp_path / "runs" / "cv"
    config = json.loads((run / "config.json").read_text())
    for fold in (0, 1):
        copy_run(run, kfold / f"fold-{fold}")
    (kfold / "config.json").write_text(json.dumps({**config, "folds": 2, "fold": -1}))
    oof = pd.read_csv(run / "holdout_predictions.csv", dtype={"id": str}, keep_default_na=False)
    oof["fold"] = np.arange(len(oof)) % 2
    comp_data = load_competition(DataOptions(data=str(comp)), with_test=False)
    table, metric = cv_table(parse_config(TrainConfig, ["--data", str(comp), "--metric", "accuracy"]), oof, comp_data)
    table.to_csv(kfold / "cv.csv", index=False)
    ledger("--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "none"), "--out", str(tmp_path))
    row = read_table(tmp_path / "runs.csv").set_index("name").loc["cv"]
    scores = dict(zip(table["fold"], table["score"]))
    assert row["metric"] == metric == "accuracy" and row["scored_on"] == "2-fold CV"
    assert row["score"] == pytest.approx(scores["mean"]) and row["std"] == pytest.approx(scores["std"])
    assert row["epochs"] == "2+1" and row["final_stage"] == "stage2" and row["status"] == "finished"
    (kfold / "fold-1" / "state.json").write_text(json.dumps({"finished": ["stage1"], "best": {}}))
    ledger("--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "none"), "--out", str(tmp_path))
    row = read_table(tmp_path / "runs.csv").set_index("name").loc["cv"]
    assert row["status"] == "unfinished: 1 of 2 folds finished" and np.isnan(row["score"])


def test_tensorboard_logs_hold_the_epochs_of_history(made):
    """--tensorboard: Keras's event files in RUN/tensorboard/<stage>/, their epoch_loss equal to history.csv's loss."""
    import tensorflow as tf

    _, _, run, _ = made
    history = pd.read_csv(run / "history.csv")
    for stage in ("stage1", "stage2"):
        files = sorted((run / "tensorboard" / stage / "train").glob("events.out.tfevents.*"))
        assert files, f"no TensorBoard events for {stage}"
        losses = [float(tf.make_ndarray(v.tensor)) for f in files for e in tf.compat.v1.train.summary_iterator(str(f))
                  for v in e.summary.value if v.tag == "epoch_loss"]
        expected = history.loc[history["stage"] == stage, "loss"].tolist()
        np.testing.assert_allclose(losses, expected, rtol=1e-5)


def test_kaggle_scores_land_on_the_right_rows_and_are_shown_offline(made, fake, tmp_path):
    root, comp, run, made_subs = made
    subs = tmp_path / "submissions"
    shutil.copytree(made_subs, subs)
    schema = pd.read_csv(comp / "sample-submission.csv", dtype=str)
    ids = list(schema["Id"])
    fake.competitions["toy"] = {"zip": b"", "rules_accepted": True, "private_ids": ids[3:],  # public: ids[:3]
                                "solution": {i: ("0" if n % 2 else "1") for n, i in enumerate(ids)}}
    for n in range(55):  # more than one page of the submissions list (the kit asks 20 a page)
        fake.add_submission("toy", f"hand-made {n}", public="0.10000")
    fake.add_submission("toy", "[ghost] deleted since", public="0.20000", private="0.30000")
    fake.pending_polls = 1
    env = {**fake.env}
    for name in ("plain", "tta"):  # what submit --upload --wait does, through the same client call
        out = subprocess.run([sys.executable, "-m", "src.kaggle_api", "submit", "toy", str(subs / f"{name}.csv"),
                              "-m", "tiny run", "--wait", "--poll-seconds", "0.05"], env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
    assert [s["description"] for s in fake.submissions[-2:]] == ["[plain] tiny run", "[tta] tiny run"]
    waited = pd.read_csv(subs / "kaggle_scores.csv", dtype={"name": str}).set_index("name")  # --wait kept these
    truth = fake.competitions["toy"]["solution"]
    for name, sub in zip(("plain", "tta"), fake.submissions[-2:]):
        written = pd.read_csv(subs / f"{name}.csv", dtype=str)
        got = dict(zip(written["Id"], written["Category"]))
        assert waited.loc[name, "ref"] == sub["ref"] and np.isnan(waited.loc[name, "private_score"])
        assert waited.loc[name, "public_score"] == pytest.approx(np.mean([got[i] == truth[i] for i in ids[:3]]),
                                                               abs=1e-5)
    # The deadline passed: the list now carries private scores, and Kaggle's rescoring moved the public ones.
    # Each upload gets scores of its own, so a row that took another's scores would show it.
    for sub, public, private in zip(fake.submissions[-2:], ("0.61000", "0.71000"), ("0.62000", "0.72000")):
        sub["fixed"] = {"status": "COMPLETE", "publicScore": public, "privateScore": private}
    result = ledger("--runs", str(root / "runs"), "--submissions", str(subs), "--competition", "toy",
                    "--out", str(tmp_path), env=env, cwd=tmp_path)
    assert "fetched 58 submission(s) of toy from Kaggle" in result.stdout
    assert "55 Kaggle submission(s) whose description names no kit submission" in result.stdout
    online = read_table(tmp_path / "runs.csv").set_index("name")
    for name, public, private in (("plain", 0.61, 0.62), ("tta", 0.71, 0.72)):
        assert online.loc[name, "public_score"] == public and online.loc[name, "private_score"] == private
        assert online.loc[name, "kaggle_status"] == "complete" and online.loc[name, "uploads"] == "1"
    assert online.loc["ghost", "status"] == f"on Kaggle only: no ghost.json in {subs}"
    assert online.loc["ghost", "public_score"] == pytest.approx(0.2)
    assert online.loc["ghost", "private_score"] == pytest.approx(0.3)
    plot = tmp_path / "cv_vs_lb.png"
    assert plot.stat().st_size > 0 and "wrote " + str(plot) in result.stdout
    local = online.loc[["plain", "tta"], "score"].to_numpy(float)
    if local[0] != local[1]:
        assert f"Spearman rho {1.0 if local[1] > local[0] else -1.0:.2f} (n=2)" in result.stdout
    else:
        assert "Spearman undefined: one score repeated (n=2)" in result.stdout
    fake.stop()  # the network off, and no credentials: the kept scores are shown again
    offline_env = {k: v for k, v in env.items() if not k.startswith("KAGGLE_")}
    plot.unlink()
    again = ledger("--runs", str(root / "runs"), "--submissions", str(subs), "--out", str(tmp_path / "off"),
                   env=offline_env, cwd=tmp_path)
    offline = read_table(tmp_path / "off" / "runs.csv").set_index("name")
    columns = ["public_score", "private_score", "score", "submitted", "kaggle_status"]
    pd.testing.assert_frame_equal(offline.loc[["plain", "tta", "ghost"], columns],
                                  online.loc[["plain", "tta", "ghost"], columns])
    assert (tmp_path / "off" / "cv_vs_lb.png").stat().st_size > 0 and "Kaggle" not in again.stderr
    tried = ledger("--runs", str(root / "runs"), "--submissions", str(subs), "--competition", "toy", "--out",
                   str(tmp_path / "off"), env=offline_env, cwd=tmp_path)
    assert "could not fetch the scores of toy from Kaggle (no Kaggle credentials" in tried.stdout
    assert read_table(tmp_path / "off" / "runs.csv").set_index("name").loc["plain", "public_score"] == \
        online.loc["plain", "public_score"]
    assert TOKEN not in result.stdout + again.stdout + tried.stdout


def test_a_table_the_ledger_did_not_write_is_kept(tmp_path):
    (tmp_path / "runs.csv").write_text("my,own\n1,2\n")
    result = ledger("--runs", str(tmp_path / "nothing"), "--out", str(tmp_path), expect=2)
    assert f"{tmp_path / 'runs.csv'} exists and is not the ledger's table" in result.stderr
    assert (tmp_path / "runs.csv").read_text() == "my,own\n1,2\n"


@pytest.mark.parametrize("public, rho", [((0.85, 0.80, 0.60), "1.00"), ((0.60, 0.80, 0.85), "-1.00"),
                                         ((0.80, 0.85, 0.60), "0.50")])
def test_the_plot_carries_the_rank_correlation(tmp_path, capsys, public, rho):
    from src.reports.ledger import plot_submissions

    frame = pd.DataFrame({"name": ["a", "b", "c", "d"], "metric": ["auc", "auc", "auc", "log_loss"],
                          "score": [0.9, 0.8, 0.7, 0.3], "public_score": [*public, 0.5]})
    plot_submissions(frame, tmp_path / "cv_vs_lb.png")
    said = capsys.readouterr().out
    assert f"(auc: local vs public, Spearman rho {rho} (n=3))" in said
    assert "1 submission(s) scored with another metric left out (d)" in said
    assert (tmp_path / "cv_vs_lb.png").stat().st_size > 0


def test_the_submit_kernels_ledger_over_read_only_inputs_goes_to_the_working_folder(made, tmp_path, monkeypatch,
                                                                                      capsys):
    """Field issue item 0: in a code competition's kernel the training kernel's output is attached read-only under
    /kaggle/input; submit.ipynb wrote its submission, then its ledger cell failed the kernel ("cannot write
    .../runs/runs.csv: the file system is read-only"). The ledger cell runs as the notebook calls it."""
    import errno

    from src.kaggle.notebooks import cell_source, read_notebook

    _, _, run, subs = made
    attached = tmp_path / "input" / "me-train-output" / "runs"
    copy_run(run, attached / "tiny")
    working = tmp_path / "working"
    shutil.copytree(subs, working)
    replace = os.replace

    def read_only(source, target, *args, **kwargs):  # a read-only file system refuses every write under the inputs
        if str(target).startswith(str(tmp_path / "input")):
            raise OSError(errno.EROFS, "Read-only file system", str(target))
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", read_only)
    before = sorted(p.relative_to(attached) for p in attached.rglob("*"))
    cell = next(cell_source(c) for c in read_notebook(REPO / "kernels" / "submit.ipynb")["cells"]
                if c.get("id") == "ledger")
    namespace = {"RUNS": [str(attached / "tiny")], "OUT": str(working)}
    exec(cell, namespace)
    said = capsys.readouterr().out
    assert (f"cannot write {attached / 'runs.csv'}: the file system is read-only: write to another folder (--out); "
            f"the ledger goes to {working} instead\n") in said
    assert said.rstrip().endswith(f"wrote {working / 'runs.csv'} (1 run(s), 2 submission(s))")
    table = read_table(working / "runs.csv")
    assert table[["kind", "name", "status"]].values.tolist()[0] == ["run", str(attached / "tiny"), "finished"]
    assert sorted(table[table["kind"] == "submission"]["name"]) == ["plain", "tta"]
    assert len(namespace["ledger"]) == 3  # the notebook's table, shown by its cell
    assert sorted(p.relative_to(attached) for p in attached.rglob("*")) == before  # nothing left in the inputs
    with pytest.raises(KitError, match=f"^cannot write {attached / 'runs.csv'}: the file system is read-only"):
        write_ledger(LedgerConfig(runs=(str(attached),), submissions=str(working), out=str(attached)))  # asked for
