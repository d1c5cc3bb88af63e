"""src.kaggle.client end to end: the real kaggle client, over HTTP, against a fake Kaggle on localhost.

Every command runs as `python -m src.kaggle_api ...` in a subprocess with its own HOME, so the
client's import-time authentication and config lookup happen as they would for a user. Every
run's output is checked for the token.
"""
from __future__ import annotations

import importlib.util
import io
import os
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_kaggle import TOKEN


def kaggle(fake, *args, env=None, expect=0):
    """Run `python -m src.kaggle_api ARGS`; check the exit code and that the token never shows."""
    result = subprocess.run([sys.executable, "-m", "src.kaggle_api", *args], env=env or fake.env,
                            capture_output=True, text=True, timeout=180)
    shown = result.stdout + result.stderr
    assert TOKEN not in shown
    assert result.returncode == expect, shown
    return result


def competition_zip(hostile: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train/cat/c1.jpg", b"\xff\xd8 not really a jpeg")
        zf.writestr("sample_submission.csv", "Id,Category\nt0.jpg,0\nt1.jpg,0\nt2.jpg,0\n")
        if hostile:
            zf.writestr("../evil.txt", "owned")
            zf.writestr("/abs/evil2.txt", "owned")
    return buf.getvalue()


def test_download_unpacks_refuses_escaping_entries_and_skips_what_is_there(fake, tmp_path):
    fake.competitions["toy-comp"] = {"zip": competition_zip(), "rules_accepted": True, "solution": {}}
    result = kaggle(fake, "download", "toy-comp", "--data", "data/toy")
    data = tmp_path / "data" / "toy"
    assert (data / "train" / "cat" / "c1.jpg").read_bytes() == b"\xff\xd8 not really a jpeg"
    assert (data / "sample_submission.csv").is_file()
    assert not (tmp_path / "data" / "evil.txt").exists() and not (data / "evil.txt").exists()
    assert not Path("/abs/evil2.txt").exists()
    assert "refused archive entry '../evil.txt'" in result.stderr
    assert "refused archive entry '/abs/evil2.txt'" in result.stderr
    assert "2 file(s) written" in result.stdout and not (data / "toy-comp.zip").exists()
    calls = len(fake.calls)
    again = kaggle(fake, "download", "toy-comp", "--data", "data/toy")
    assert "already in" in again.stdout and len(fake.calls) == calls  # nothing asked of Kaggle
    forced = kaggle(fake, "download", "toy-comp", "--data", "data/toy", "--force")
    assert "0 file(s) written, 2 already there" in forced.stdout


@pytest.mark.parametrize("kaggle_name, kit", [("Area Under Receiver Operating Characteristic Curve", "auc"),
                                              ("Santa's Sleigh Distance", "")])
def test_download_records_the_competitions_evaluation_metric(fake, tmp_path, kaggle_name, kit):
    fake.competitions["toy-comp"] = {"zip": competition_zip(), "rules_accepted": True, "solution": {},
                                     "evaluation_metric": kaggle_name}
    result = kaggle(fake, "download", "toy-comp", "--data", "data/toy")
    record = json.loads((tmp_path / "data" / "toy" / "kaggle_metric.json").read_text())
    assert record == {"competition": "toy-comp", "evaluation_metric": kaggle_name}
    assert any(method.endswith("/GetCompetition") and body == {"competitionName": "toy-comp"}
               for method, body, _ in fake.calls)
    said = f"the kit scores it as {kit}" if kit else "not one the kit knows: jobs need --metric"
    assert f"toy-comp: evaluation metric {kaggle_name!r} ({said})" in result.stdout


def test_download_whose_record_cannot_be_read_still_brings_the_data(fake, tmp_path):
    """Issue 34 item 2: the record only notes the metric; a 501 from it costs one line, not the download."""
    fake.competitions["fake-comp"] = {"zip": competition_zip(False), "rules_accepted": True, "solution": {},
                                      "record_status": 501}
    result = kaggle(fake, "download", "fake-comp", "--data", "data/fake")
    data = tmp_path / "data" / "fake"
    assert (data / "sample_submission.csv").is_file() and not (data / "kaggle_metric.json").exists()
    assert "2 file(s) written" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "fake-comp" in line]
    assert warnings == ["warning: read the record of fake-comp: HTTP 501 Not Implemented: the evaluation metric is "
                        "unknown; jobs use --metric or the submission format's default"]
    assert "already in" in kaggle(fake, "download", "fake-comp", "--data", "data/fake").stdout


def test_download_403_says_to_accept_the_rules(fake):
    fake.competitions["toy-comp"] = {"zip": competition_zip(False), "rules_accepted": False, "solution": {}}
    result = kaggle(fake, "download", "toy-comp", expect=2)
    assert "accept the competition rules on the website first" in result.stderr
    assert "https://www.kaggle.com/competitions/toy-comp/rules" in result.stderr
    assert "Traceback" not in result.stderr


def test_submit_polls_until_the_public_score(fake, tmp_path):
    fake.competitions["toy-comp"] = {"zip": b"", "rules_accepted": True,
                                     "solution": {"t0.jpg": "1", "t1.jpg": "0", "t2.jpg": "2"}}
    csv = tmp_path / "sub.csv"
    csv.write_text("Id,Category\nt0.jpg,1\nt1.jpg,0\nt2.jpg,0\n")
    result = kaggle(fake, "submit", "toy-comp", str(csv), "-m", "first try", "--wait", "--poll-seconds", "0.05")
    assert "public score: 0.66667" in result.stdout
    assert result.stdout.count("pending") == fake.pending_polls
    sub = fake.submissions[0]
    assert sub["description"] == "[sub] first try" and sub["csv"] == csv.read_bytes()  # the name first
    kept = pd.read_csv(tmp_path / "kaggle_scores.csv", dtype={"name": str})  # beside the file, for the ledger
    assert kept[["name", "competition", "ref", "status"]].values.tolist() == [["sub", "toy-comp", 1000, "complete"]]
    assert kept["public_score"].tolist() == [0.66667]


def test_submit_reports_kaggle_scoring_error(fake, tmp_path):
    fake.competitions["toy-comp"] = {"zip": b"", "rules_accepted": True, "solution": {"t0.jpg": "1"}}
    fake.pending_polls = 0
    csv = tmp_path / "bad.csv"
    csv.write_text("Id,Category\nzzz,1\n")
    result = kaggle(fake, "submit", "toy-comp", str(csv), "--wait", expect=2)
    assert "failed: Submission error: ids do not match" in result.stderr
    kept = pd.read_csv(tmp_path / "kaggle_scores.csv", dtype={"name": str})
    assert kept[["name", "status"]].values.tolist() == [["bad", "error"]]
    assert kept["error"].tolist() == ["Submission error: ids do not match the solution"]


NO_EFFICIENTNET = importlib.util.find_spec("efficientnet") is None  # as in Kaggle's images (make test-kaggle)


def test_upload_src_without_efficientnet_says_how_to_get_it(fake):
    """upload-src runs where requirements.txt installed efficientnet; elsewhere it says so, uploading nothing."""
    if not NO_EFFICIENTNET:
        pytest.skip("efficientnet is installed here: the upload itself is tested below")
    result = kaggle(fake, "upload-src", "tester/image-kit-src", expect=2)
    assert "efficientnet is not installed here" in result.stderr and not fake.datasets


@pytest.mark.skipif(NO_EFFICIENTNET, reason="upload-src ships efficientnet, not installed here (Kaggle's versions): "
                                            "the refusal is tested above")
def test_upload_src_creates_a_private_dataset_then_versions_it(fake, tmp_path):
    kaggle(fake, "upload-src", "tester/image-kit-src")
    created = fake.datasets["tester/image-kit-src"][0]
    assert created["isPrivate"] is True and created["title"] == "Image classification kit source"
    assert created["licenseName"] == "CC0-1.0" and len(created["files"]) == 2
    uploaded = fake.uploaded_text()
    assert "def connect()" in uploaded and "tensorflow==" in uploaded  # src/kaggle/client.py, requirements.txt
    assert TOKEN not in uploaded
    names = [n for raw in fake.blobs.values() if raw[:2] == b"PK"
             for n in zipfile.ZipFile(io.BytesIO(raw)).namelist()]
    assert "src/kaggle/client.py" in names and "src/kaggle_api.py" in names and not any("__pycache__" in n for n in names)
    # unpacked or not by Kaggle, a kernel imports the kit: here straight from the archive
    archive = tmp_path / "kit.zip"
    archive.write_bytes(next(raw for raw in fake.blobs.values() if raw[:2] == b"PK"))
    env = {k: v for k, v in fake.env.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(archive)!r}); "
                            "import src.kaggle.notebooks, src.core.config; print(src.kaggle.notebooks.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and "kit.zip" in probe.stdout, probe.stderr
    result = kaggle(fake, "upload-src", "tester/image-kit-src", "--notes", "second")
    assert "new version of private dataset tester/image-kit-src" in result.stdout
    assert fake.datasets["tester/image-kit-src"][1]["body"]["versionNotes"] == "second"


@pytest.mark.parametrize("flags,gpu,tpu,shape", [
    (["--accelerator", "tpu"], False, True, "TpuV5E8"),
    (["--accelerator", "gpu"], True, False, "NvidiaTeslaT4"),
    (["--accelerator", "none"], False, False, None),
    ([], True, False, "NvidiaTeslaT4"),
    (["--machine-shape", "TpuV5E8"], False, True, "TpuV5E8"),     # the shape decides: no enable_gpu on a TPU
])
def test_push_sends_the_metadata_field_by_field(fake, tmp_path, flags, gpu, tpu, shape):
    kaggle(fake, "push", "train", "--competition", "toy-comp", "--src-dataset", "tester/image-kit-src",
           *flags, "--model", "tester/effnet/keras/b0/1", "--param", "STAGE1_EPOCHS=7",
           "--out", "pushed")
    sent = fake.kernels["tester/toy-comp-train"]
    assert sent["slug"] == "tester/toy-comp-train"
    assert sent["newTitle"] == "toy-comp train"
    assert sent["language"] == "python"
    assert sent["kernelType"] == "notebook"
    assert sent["isPrivate"] is True
    assert sent["enableGpu"] is gpu
    assert sent["enableTpu"] is tpu
    assert sent["enableInternet"] is False
    assert sent.get("machineShape") == shape
    assert sent["datasetDataSources"] == ["tester/image-kit-src"]
    assert sent["competitionDataSources"] == ["toy-comp"]
    assert sent["modelDataSources"] == ["tester/effnet/keras/b0/1"]
    notebook = json.loads(sent["text"])
    injected = [c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "STAGE1_EPOCHS = 7" in injected[0]["source"] and "COMPETITION = 'toy-comp'" in injected[0]["source"]
    assert TOKEN not in sent["text"]
    meta = json.loads((tmp_path / "pushed" / "toy-comp-train" / "kernel-metadata.json").read_text())
    assert meta["code_file"] == "train.ipynb" and meta["enable_tpu"] is tpu and meta["machine_shape"] == shape
    assert meta["enable_internet"] is False and "docker_image" not in meta and "docker_image_pinning_type" not in meta
    assert TOKEN not in json.dumps(meta)


def test_status_and_output_of_a_pushed_kernel(fake, tmp_path):
    kaggle(fake, "push", "submit", "--competition", "toy-comp", "--src-dataset", "tester/image-kit-src")
    fake.kernel_status = "ERROR"
    result = kaggle(fake, "status", "tester/toy-comp-submit")
    assert "tester/toy-comp-submit: error (cell 5 raised)" in result.stdout
    kaggle(fake, "output", "tester/toy-comp-submit", "--out", "got")
    assert (tmp_path / "got" / "submission.csv").read_bytes() == fake.outputs["submission.csv"]
    assert (tmp_path / "got" / "toy-comp-submit.log").is_file()


def test_missing_token_is_one_clear_message(fake):
    env = {k: v for k, v in fake.env.items() if k != "KAGGLE_API_TOKEN"}
    result = kaggle(fake, "download", "toy-comp", env=env, expect=2)
    assert result.stderr.startswith("error: no Kaggle credentials")
    assert "KAGGLE_API_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert fake.calls == []  # nothing was sent


def test_refused_token_is_named_by_source_not_value(fake):
    env = dict(fake.env, KAGGLE_API_TOKEN="KGAT_wrong-token-77")
    result = kaggle(fake, "status", "tester/some-kernel", env=env, expect=2)
    assert "Kaggle refused the credentials from KAGGLE_API_TOKEN" in result.stderr
    assert "KGAT_wrong-token-77" not in result.stdout + result.stderr


def test_token_file_in_home_is_found(fake):
    env = {k: v for k, v in fake.env.items() if k != "KAGGLE_API_TOKEN"}
    token_file = Path(env["HOME"]) / ".kaggle" / "access_token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(TOKEN + "\n")
    fake.kernels["tester/some-kernel"] = {}
    result = kaggle(fake, "status", "tester/some-kernel", env=env)
    assert "tester/some-kernel: complete" in result.stdout


def test_legacy_kaggle_json_is_found(fake):
    env = {k: v for k, v in fake.env.items() if k != "KAGGLE_API_TOKEN"}
    config = Path(env["HOME"]) / ".kaggle" / "kaggle.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"username": "tester", "key": TOKEN}))
    fake.kernels["tester/some-kernel"] = {}
    result = kaggle(fake, "status", "tester/some-kernel", env=env)
    assert "tester/some-kernel: complete" in result.stdout
    assert fake.calls[-1][2].startswith("Basic ")  # the client used the key, not a token


@pytest.mark.parametrize("argv,message", [
    (["upload-src", "tester/kit"], "slug 'kit' must be 6-50 lowercase letters"),
    (["upload-src", "no-owner-here"], "upload-src DATASET: expected owner/slug, got 'no-owner-here'"),
    (["push", "train"], "--src-dataset: name the dataset `upload-src` published"),
    (["push", "nosuch", "--src-dataset", "tester/image-kit-src"], "push nosuch: no such notebook"),
    (["push", "train", "--src-dataset", "tester/image-kit-src", "--machine-shape", "NvidiaTeslaP100"],
     "--machine-shape NvidiaTeslaP100: Kaggle retired it; use NvidiaTeslaT4"),
    (["push", "train", "--src-dataset", "tester/image-kit-src", "--machine-shape", "Gpu9000"],
     "--machine-shape Gpu9000: not a shape Kaggle offers"),
    (["push", "train", "--src-dataset", "tester/image-kit-src", "--machine-shape", "TpuV5E8", "--accelerator", "gpu"],
     "--accelerator gpu with --machine-shape TpuV5E8, a tpu machine"),
    (["push", "train", "--src-dataset", "tester/image-kit-src", "--param", "oops"],
     "--param 'oops': expected NAME=VALUE"),
    (["push", "train", "--src-dataset", "tester/image-kit-src", "--param", "EPOHCS=3"],
     "parameter(s) EPOHCS are not in the notebook's parameters cell"),
    (["frobnicate"], "expected a command (download, submit, upload-src, upload-weights, push, status, output), got 'frobnicate'"),
])
def test_bad_arguments_are_named_before_kaggle_is_asked(argv, message, monkeypatch):
    from src.core.errors import KitError
    from src.kaggle_api import main

    for module in ("src.kaggle.client", "src.kaggle.kernels"):
        monkeypatch.setattr(f"{module}.connect", lambda: pytest.fail("Kaggle was asked"))
    with pytest.raises(KitError) as err:
        main(argv)
    assert message in str(err.value)


@pytest.mark.skipif(NO_EFFICIENTNET, reason="staging copies the installed efficientnet, absent here (Kaggle's versions)")
def test_the_kit_dataset_carries_the_ns_backbone_packages(tmp_path):
    """issue 14: a staged src dataset builds an *_ns backbone where no efficientnet is installed."""
    from src.core.kaggle_settings import UploadSrcConfig
    from src.kaggle.kernels import stage_src

    kit = stage_src(tmp_path, UploadSrcConfig("me/image-kit-src"), "me", "image-kit-src") / "kit"
    assert (kit / "src" / "train.py").is_file() and (kit / "efficientnet" / "tfkeras.py").is_file()
    code = f"""
import importlib.abc, importlib.machinery, sys
KIT = {str(kit)!r}

class OnlyFromTheKit(importlib.abc.MetaPathFinder):
    # The interpreter's own efficientnet/keras_applications stay invisible, as on Kaggle's images.
    def find_spec(self, name, path, target=None):
        if name in ("efficientnet", "keras_applications"):
            return importlib.machinery.PathFinder.find_spec(name, [KIT])
        return None

sys.meta_path.insert(0, OnlyFromTheKit())
sys.path.insert(0, KIT)
from src.models.backbones import get_spec
import efficientnet, keras_applications
assert efficientnet.__file__.startswith(KIT) and keras_applications.__file__.startswith(KIT)
print("features", get_spec("efficientnet_b0_ns").build((32, 32, 3), "none").output.shape[-1])
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "features 1280" in result.stdout


def test_upload_weights_publishes_the_cached_files_and_push_attaches_them(fake, tmp_path):
    """issue 14: the libraries' own cached weight files as a private dataset; push --weights-dataset attaches it."""
    cache = tmp_path / "keras-home" / "models"
    cache.mkdir(parents=True)
    (cache / "efficientnetb0_notop.h5").write_bytes(b"stand-in weights b0")
    env = {**fake.env, "KERAS_HOME": str(tmp_path / "keras-home")}
    result = kaggle(fake, "upload-weights", "tester/backbone-weights", "--backbones", "efficientnet_b0", env=env)
    assert "created private dataset tester/backbone-weights" in result.stdout
    created = fake.datasets["tester/backbone-weights"][0]
    assert created["isPrivate"] is True and len(created["files"]) == 1
    assert b"stand-in weights b0" in b"".join(fake.blobs.values())
    refused = kaggle(fake, "upload-weights", "tester/backbone-weights", "--backbones", "small_resnet", env=env,
                     expect=2)
    assert "small_resnet has no pretrained weights to upload" in refused.stderr
    kaggle(fake, "push", "train", "--competition", "toy-comp", "--src-dataset", "tester/image-kit-src",
           "--weights-dataset", "tester/backbone-weights", "--out", "pushed")
    assert fake.kernels["tester/toy-comp-train"]["datasetDataSources"] == ["tester/image-kit-src",
                                                                          "tester/backbone-weights"]
