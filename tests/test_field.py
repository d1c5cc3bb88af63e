"""The field issue: defects met running the kit as users do, each a sentence now or a job that works.

Numbered as the issue numbers them (0, the read-only ledger of a code competition's kernel, is in
tests/test_ledger.py: it reuses that module's trained run). One test trains (21: 16 px tiny_resnet, one epoch).
"""
from __future__ import annotations

import os
import sys

import pandas as pd
import pytest

from src.core.auto_settings import AutoConfig
from src.core.config import DataOptions, parse_config
from src.core.errors import KitError, run_cli
from src.core.settings import TrainConfig
from src.data.competition import load_competition
from tests.conftest import COLOURS, make_folder_competition, write_image


def auto_args(data, out, *more):
    return ["--data", str(data), "--budget", "60s", "--weights", "none", "--backbones", "tiny_resnet",
            "--max-folds", "0", "--batch-size", "4", "--out", str(out), *more]


# ---------------------------------------------------------------- 1. --out holding the user's own files
def test_1_an_out_folder_holding_the_users_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    from src.auto import main as auto_main

    data, out = make_folder_competition(tmp_path / "comp", per_class=4), tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    (out / "submission.csv").write_text("Id,Category\nmine,1\n")
    assert run_cli(auto_main, auto_args(data, out)) == 2
    assert capsys.readouterr().err == (
        f"error: --out {out}: holds files the kit did not write (notes.txt, submission.csv) and no auto_state.json: "
        "an auto run writes submission.csv, plan.csv and its runs into its own folder: pick a new or empty --out\n")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "submission.csv"]
    assert (out / "submission.csv").read_text() == "Id,Category\nmine,1\n"


# ---------------------------------------------------------------- 8. a 0-byte sample submission or labels CSV
def test_8_an_empty_sample_submission_is_a_kit_error_naming_the_file(tmp_path, capsys):
    from src.auto import main as auto_main

    data = make_folder_competition(tmp_path / "comp", per_class=4)
    sample = data / "sample-submission.csv"
    sample.write_bytes(b"")
    said = (f"{sample}: an empty file (no header, no rows): expected a CSV with a header line; download or write it "
            "again")
    with pytest.raises(KitError) as err:
        load_competition(DataOptions(data=str(data)))
    assert str(err.value) == said
    assert run_cli(auto_main, auto_args(data, tmp_path / "auto")) == 2
    assert capsys.readouterr().err == f"error: {said}\n"


def test_8_an_empty_labels_csv_is_a_kit_error_naming_the_file(csv_comp):
    (csv_comp / "train.csv").write_bytes(b"")
    with pytest.raises(KitError, match=f"^{csv_comp / 'train.csv'}: an empty file \\(no header, no rows\\)"):
        load_competition(DataOptions(data=str(csv_comp)))


# ---------------------------------------------------------------- 9. Ctrl-C swallowed while measuring
def test_9_a_ctrl_c_swallowed_by_a_gc_callback_while_measuring_ends_the_auto_run(tmp_path, monkeypatch, capsys,
                                                                                 request):
    """Python reports an exception raised in a garbage-collection callback ("Exception ignored") and goes on: a Ctrl-C
    landing in JAX's callback while a backbone was measured was lost and the auto run went on to exit code 0."""
    import gc
    import signal

    import src.autopilot.autopilot as autopilot
    from src.auto import main as auto_main
    from src.autopilot.planning import Speed

    # Python's own Ctrl-C handler, as in a terminal: a test worker process may have been started ignoring SIGINT
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    calls = []

    def pressed_during_collection(phase, info):  # the user's Ctrl-C arrives while the callback runs
        if phase == "start" and not calls:
            calls.append(phase)
            signal.raise_signal(signal.SIGINT)  # the handler runs here, raising inside the callback

    def measure(spec, sizes, *args):
        gc.callbacks.append(pressed_during_collection)
        try:
            gc.collect()  # the KeyboardInterrupt raised in the callback is swallowed by Python
        finally:
            gc.callbacks.remove(pressed_during_collection)
        return Speed(spec.name, tuple(sizes), (1e-3, 1e-3), (1e-3, 1e-3))

    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: swallowed.append(report.exc_type))
    monkeypatch.setattr(autopilot, "measure", measure)
    monkeypatch.setattr(autopilot, "make_plan", lambda *args, **kwargs: pytest.fail("the job went on after Ctrl-C"))
    data, out = make_folder_competition(tmp_path / "comp", per_class=4), tmp_path / "auto"
    assert run_cli(auto_main, auto_args(data, out)) == 130
    assert calls == ["start"] and swallowed == [KeyboardInterrupt]  # Python's report of what it swallowed
    assert capsys.readouterr().err == (f"interrupted: the auto run in {out} keeps its measurements and finished "
                                       "steps; the same command continues it\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- 10. --group-column with fewer groups than folds
@pytest.mark.parametrize("groups, folds, fix", [(3, ["--folds", "5"], "--folds 3 at most"),
                                                (1, ["--folds", "5"], "no --group-column: one group cannot be split"),
                                                (3, [], "--val-fraction 0.33 or more")])
def test_10_fewer_groups_than_folds_is_refused_naming_the_flag_column_and_counts(csv_comp, groups, folds, fix):
    from src.data.splits import prepare_split

    table = pd.read_csv(csv_comp / "train.csv", dtype=str)
    table["patient"] = [f"p{i % groups}" for i in range(len(table))]
    table.to_csv(csv_comp / "train.csv", index=False)
    cfg = parse_config(TrainConfig, ["--data", str(csv_comp), "--label-column", "model_id", "--group-column",
                                     "patient", *folds])
    spread = "--folds 5 folds" if folds else "the 5 folds a --val-fraction 0.2 holdout is drawn from"
    with pytest.raises(KitError) as err:
        prepare_split(cfg)
    assert str(err.value) == (f"--group-column patient: only {groups} group(s) in column 'patient' to spread over "
                              f"{spread}: each fold needs whole groups of its own ({fix}, or a column with more "
                              "groups)")


# ---------------------------------------------------------------- 14. the same --data spelled another way
def test_14_a_finished_auto_run_resumes_under_another_spelling_of_its_data_folder(tmp_path, monkeypatch, capsys):
    from src.runs.auto_state import AutoState

    data = make_folder_competition(tmp_path / "comp", per_class=2)
    monkeypatch.chdir(tmp_path)
    first = AutoState.load(tmp_path / "auto", AutoConfig(data=str(data), metric="accuracy"))
    first.steps["submit"] = {"status": "done"}
    first.save()
    for spelling in (f"{data}/", "comp", "./comp/", str(tmp_path / "x" / ".." / "comp")):
        state = AutoState.load(tmp_path / "auto", AutoConfig(data=spelling, metric="accuracy"))
        assert state.done("submit") and state.data == str(data)
    assert capsys.readouterr().out.count("resuming the auto run in") == 4
    other = make_folder_competition(tmp_path / "other", per_class=2)
    with pytest.raises(KitError, match="pick another --out$"):
        AutoState.load(tmp_path / "auto", AutoConfig(data=str(other), metric="accuracy"))


# ---------------------------------------------------------------- 21. WebP under .jpg names, a PDF and a page as .jpg
def webp_and_impostors(root):
    """Add WebP images (as .webp, and as .jpg large enough to be decoded at a JPEG scale), a PDF and an HTML page
    named .jpg; return the impostors' paths."""
    import numpy as np
    from PIL import Image

    for i in range(2):
        write_image(root / "train" / "1" / f"w{i}.webp", colour=COLOURS[1])
        Image.fromarray(np.full((64, 72, 3), COLOURS[2], np.uint8)).save(root / "train" / "2" / f"wj{i}.jpg",
                                                                         format="WEBP")
    pdf, page = root / "train" / "0" / "doc.jpg", root / "train" / "0" / "page.jpg"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    page.write_text("<html><body>404 Not Found</body></html>\n")
    return pdf, page


def test_21_a_webp_named_jpg_decodes_whole_at_a_jpeg_scale(tmp_path):
    """The JPEG scale (from the name and size) was applied to WebP bytes: a wrongly shaped image, a graph error."""
    import numpy as np
    import tensorflow as tf

    from src.core.config import PipelineOptions
    from src.pipeline.images import load_image

    root = make_folder_competition(tmp_path / "comp", per_class=1)
    webp_and_impostors(root)
    image = load_image({"path": tf.constant(str(root / "train" / "2" / "wj0.jpg")), "scale": tf.constant(2)},
                       PipelineOptions(image_size=(16, 16))).numpy()
    assert image.shape == (16, 16, 3) and np.abs(image.astype(int) - COLOURS[2]).max() <= 3


def test_21_training_over_webp_images_and_files_that_are_no_images_skips_and_names_them(tmp_path, capsys):
    from src.train import main as train_main

    root = make_folder_competition(tmp_path / "comp", per_class=4)
    pdf, page = webp_and_impostors(root)
    run = tmp_path / "run"
    assert run_cli(train_main, ["--data", str(root), "--backbone", "tiny_resnet", "--weights", "none", "--augment",
                                "none", "--stages", "1", "--stage1-size", "16", "16", "--stage1-epochs", "1",
                                "--batch-size", "4", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"warning: skipping 2 file(s): {pdf} (corrupt or truncated image (UnidentifiedImageError" in out
    assert f"{page} (corrupt or truncated image (UnidentifiedImageError" in out
    split = pd.read_csv(run / "split.csv")
    assert split["id"].str.endswith(".webp").sum() == 2 and split["id"].str.contains("/wj").sum() == 2
    assert (run / "stage1.weights.h5").is_file()


# ---------------------------------------------------------------- 22. a stale lock whose id names a live non-kit process
def test_22_a_lock_whose_id_names_a_live_process_that_is_no_kit_job_is_taken_over(tmp_path, monkeypatch, capsys):
    import src.runs.lock as lock
    from src.core.processes import host_name, process_program, process_start, ticks_since_boot
    from src.runs.folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    monkeypatch.setattr(lock, "process_program", lambda pid: "/sbin/init" if pid == 1 else process_program(pid))
    cases = {  # pid 1's own start and this machine: only its command line tells it is no kit job
        f"1\n{host_name()} {process_start(1)}\n": "which is no longer running (that id now names /sbin/init, which is "
                                                  "no kit job)",
        # a start after this machine's uptime: written before it restarted (/proc hiding pid 1's start and command)
        f"1\n{host_name()} {ticks_since_boot() + 10 ** 6}\n": "which is no longer running (its start is recorded "
                                                              "after this machine's uptime: written before the "
                                                              "machine restarted)"}
    for i, (written, why) in enumerate(cases.items()):
        if i == 1:
            monkeypatch.setattr(lock, "process_start", lambda pid: "")
            monkeypatch.setattr(lock, "process_program", lambda pid: "")
        (run.path / ".lock").write_text(written)
        with run.lock():
            assert (run.path / ".lock").read_text().split()[0] == str(os.getpid())
        assert capsys.readouterr().out == f"{run.path}: taking over the lock of process 1, {why}\n"
