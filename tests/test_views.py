"""TTA views: the eight dihedral views against numpy, views at a larger size, names checked at parse time."""
import json

import numpy as np
import pytest
import tensorflow as tf

from src.core.config import DataOptions, PipelineOptions, parse_config
from src.core.errors import KitError
from src.core.settings import TrainConfig
from src.core.submit_settings import PredictConfig, SubmitConfig
from src.data.competition import load_competition
from src.inference.prediction import build_run_network, holdout_frame, load_run, predict_views
from src.inference.submission import chosen_views, submit
from src.inference.views import make_view, with_scales
from src.pipeline.images import make_predict_dataset
from src.training.two_stage import train
from tests.conftest import make_folder_competition

NUMPY_VIEWS = {  # per image (h, w, 3), what each view must equal
    "identity": lambda x: x, "hflip": lambda x: x[:, ::-1], "vflip": lambda x: x[::-1],
    "rot90": lambda x: np.rot90(x, 1), "rot180": lambda x: np.rot90(x, 2), "rot270": lambda x: np.rot90(x, 3),
    "transpose": lambda x: x.transpose(1, 0, 2), "transpose_rot90": lambda x: np.rot90(x, 2).transpose(1, 0, 2),
}


def test_the_dihedral_views_are_numpys_exactly_and_eight_different_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 5, 7, 3)).astype(np.float32)  # non-square, no symmetry
    made = {}
    for name, expected in NUMPY_VIEWS.items():
        view = make_view(tf.constant(images), name).numpy()
        np.testing.assert_array_equal(view, np.stack([expected(x) for x in images]), err_msg=name)
        made[name] = view[0].tobytes() + bytes(view.shape[1:3])
    assert len(set(made.values())) == 8  # the group of the square: no view repeats another


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A one-epoch run at a non-square 16x24, so a quarter turn swaps the sides."""
    root = tmp_path_factory.mktemp("wide")
    comp = make_folder_competition(root / "comp", per_class=6)
    train(parse_config(TrainConfig, [
        "--data", str(comp), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none", "--stages", "1",
        "--stage1-size", "16", "24", "--stage1-epochs", "1", "--batch-size", "8", "--out", str(root / "run")]))
    return comp, load_run(root / "run")


def decoded(run, frame, size):
    """Return the frame's images decoded at `size` as the prediction pipeline decodes them."""
    opts = PipelineOptions(image_size=size, resize=run.config.resize, cache="none")
    return np.concatenate([x.numpy() for x, _ in make_predict_dataset(frame, opts)])


def test_a_scaled_view_predicts_at_the_larger_size_and_a_quarter_turn_at_the_swapped_one(wide_run):
    comp, run = wide_run
    frame = holdout_frame(run, load_competition(DataOptions(data=str(comp)), with_test=False))
    per_view = predict_views(run, frame, ("identity", "identity@1.5", "rot90", "hflip@1.25"))
    base = build_run_network(run, run.size)
    base.load_weights(str(run.weights))
    for index, size, view in [(1, (24, 36), "identity"), (3, (20, 30), "hflip")]:
        larger = build_run_network(run, size)  # the same weights, another input size
        larger.set_weights(base.get_weights())
        images = make_view(tf.constant(decoded(run, frame, size)), view).numpy()
        np.testing.assert_allclose(per_view[index], larger.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    turned = build_run_network(run, (24, 16))
    turned.set_weights(base.get_weights())
    images = np.stack([np.rot90(x) for x in decoded(run, frame, (16, 24))])
    np.testing.assert_allclose(per_view[2], turned.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_view[0], base.predict(decoded(run, frame, (16, 24)), verbose=0), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(per_view[0], per_view[1], atol=1e-4)  # the larger size is another prediction


def test_tta_auto_chooses_among_rotations_and_scales(wide_run, tmp_path):
    comp, run = wide_run
    args = ["--data", str(comp), "--run", str(run.folder.path), "--out", str(tmp_path / "subs"), "--name", "s",
            "--tta", "auto", "--tta-views", "hflip,rot180,transpose", "--tta-scales", "1.0,1.25",
            "--metric", "log_loss"]
    cfg = parse_config(SubmitConfig, args)
    assert chosen_views(cfg) == ("identity", "hflip", "rot180", "transpose", "identity@1.25", "hflip@1.25",
                                 "rot180@1.25", "transpose@1.25")
    result = submit(cfg)
    report = json.loads((tmp_path / "subs" / "s.json").read_text())
    kept = report["tta_selection"][0][-1]["views"].split("+")
    assert set(kept) <= set(chosen_views(cfg)) and report["views"][0] == "+".join(kept)
    plain = next(r["score"] for r in result["scores"] if r["views"] == "identity")
    assert result["scores"][-2]["score"] <= plain + 1e-12


@pytest.mark.parametrize("flags, said", [
    (["--tta-views", "identity,rot45"], "--tta-views: expected views identity, hflip, vflip, rot90, rot180, rot270, "
                                        "transpose, transpose_rot90, center_crop_P"),
    (["--tta-views", "hflip@3"], "a view's @S suffix as a number from 0.5 to 2 (1.15: 15% larger than the run's "
                                 "size), not 'hflip@3'"),
    (["--tta-scales", "1.0,big"], "--tta-scales: expected a number from 0.5 to 2"),
    (["--tta-scales", ","], "--tta-scales: expected at least one scale"),
])
def test_wrong_views_and_scales_are_named_when_the_flags_are_read(flags, said):
    for job in (SubmitConfig, PredictConfig):
        with pytest.raises(KitError) as err:
            parse_config(job, ["--run", "r", *flags] + (["x.jpg"] if job is PredictConfig else []))
        assert said in str(err.value)


def test_scales_multiply_the_views_and_keep_the_plain_names_at_one():
    assert with_scales(("identity", "rot90"), "1.0") == ("identity", "rot90")
    assert with_scales(("identity", "rot90"), "1,1.15") == ("identity", "rot90", "identity@1.15", "rot90@1.15")
