import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from src.models.backbones import ARCHITECTURES, REGISTRY, get_spec, table
from src.core.errors import KitError
from src.models.classifier import build_classifier
from src.models.weights import resolve_weights
from tests.conftest import needs_missing_package

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])

# What each family's first convolution must see for an RGB pixel x in [0, 255], written from the
# libraries' documentation (keras.applications.*.preprocess_input and the models' own rescaling
# layers), not from the registry: this is the check that catches a ResNet fed EfficientNet inputs.
EXPECTED = {
    "resnet50": lambda x: x[::-1] - CAFFE_MEAN_BGR,              # caffe: BGR, mean subtracted
    "resnet152v2": lambda x: x / 127.5 - 1,                        # tf: [-1, 1]
    "xception": lambda x: x / 127.5 - 1,
    "inception_v3": lambda x: x / 127.5 - 1,
    "densenet121": lambda x: (x / 255 - MEAN) / STD,               # torch
    "mobilenetv3_small": lambda x: x / 127.5 - 1,                  # its own Rescaling layer
    "efficientnet_b0": lambda x: x / 255,                          # own Rescaling; Normalization holds
                                                                   # mean 0 / var 1 until weights load
    "efficientnet_b0_ns": lambda x: (x / 255 - MEAN) / STD,        # efficientnet package: torch mode
    "efficientnetv2_b0": lambda x: (x / 255 - MEAN) / STD,         # V2 "b" variants: V1's torch scaling
    "efficientnetv2_s": lambda x: x / 128 - 1,                     # V2 S/M/L: [-1, 1) by 1/128
    "convnext_tiny": lambda x: (x / 255 - MEAN) / STD,             # own Normalization, ImageNet stats
    "small_resnet": lambda x: x / 255,                             # unit
    "tiny_resnet": lambda x: x / 255,                              # unit
}
PIXEL = np.array([200.0, 100.0, 50.0])


def first_conv(backbone):
    """Return the first layer that is a convolution or a nested block starting with one (ConvNeXt's stem)."""
    def starts_with_conv(layer):
        if isinstance(layer, keras.layers.Conv2D):
            return True
        inner = [x for x in getattr(layer, "layers", []) if not isinstance(x, keras.layers.InputLayer)]
        return bool(inner) and isinstance(inner[0], keras.layers.Conv2D)

    return next(layer for layer in backbone.layers if starts_with_conv(layer))


@pytest.fixture
def zero_initial_weights(monkeypatch):
    """Give every randomly initialised variable zeros for the test; return nothing.

    Why: the architecture tests check shapes, layer names and preprocessing layers (which hold no random
    weights), not initial values; drawing the random numbers was most of each build (EfficientNetV2-L at 32 px:
    9.0 s with them, 3.5 s without, measured here). keras.initializers draw through keras.src.backend.random.
    """
    from keras.src.initializers import random_initializers

    def zeros(shape, *args, dtype=None, **kwargs):
        return keras.ops.zeros(shape, dtype=dtype)

    for draw in ("normal", "truncated_normal", "uniform"):
        assert hasattr(random_initializers.random, draw), f"keras.src.backend.random.{draw} moved"
        monkeypatch.setattr(random_initializers.random, draw, zeros)


@pytest.fixture(scope="module")
def classifiers():
    """The classifiers of the EXPECTED backbones, built by the width test and read by the preprocessing test.

    Why: both tests need the same network (the width test its backbone, the preprocessing test its
    preprocessing layer and first convolution); building it once spares a build of each (2-4 s apiece here).
    """
    return {}


def build_checked_classifier(name, size, cache) -> keras.Model:
    """Return the classifier of backbone `name` at `size` px with random weights, built once per module."""
    if name not in cache:
        cache[name] = build_classifier(REGISTRY[name], (size, size), num_classes=3, weights="none")
    return cache[name]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_entry_builds_with_the_stated_feature_width(name, zero_initial_weights, classifiers):
    spec = REGISTRY[name]
    if needs_missing_package(spec):
        return
    size = max(spec.min_size, 32)
    if name in EXPECTED:  # built through build_classifier, which calls spec.build the same way
        backbone = build_checked_classifier(name, size, classifiers).get_layer(spec.name)
    else:
        backbone = spec.build((size, size, 3), "none")
    assert backbone.input.shape[1:] == (size, size, 3)
    # One eager call, not predict(): tracing a whole EfficientNetB7 into a graph for two images took
    # 16 s here, the eager call 2.6 s, with the same features (checked to 1e-4).
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    features = keras.ops.convert_to_numpy(backbone(images, training=False))
    assert features.shape == (2, spec.features)
    backbone.get_layer(spec.unfreeze_from)  # the fine-tuning cut point exists
    assert spec.default_size[0] >= size and spec.preprocessing in ("caffe", "tf", "torch", "builtin", "unit")
    del backbone
    keras.backend.clear_session()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_preprocessing_contract(name, zero_initial_weights, classifiers):
    spec = REGISTRY[name]
    if needs_missing_package(spec):
        return
    size = max(spec.min_size, 32)
    model = build_checked_classifier(name, size, classifiers)
    backbone = model.get_layer(spec.name)
    probe = keras.Model(backbone.input, first_conv(backbone).input)
    image = np.broadcast_to(PIXEL, (1, size, size, 3)).astype("float32")
    seen = probe(model.get_layer("preprocess")(image)).numpy()[0, size // 2, size // 2]
    np.testing.assert_allclose(seen, EXPECTED[name](PIXEL), rtol=1e-4, atol=1e-4)
    classifiers.pop(name, None)  # its last reader: free the memory


@pytest.mark.parametrize("name", ["small_resnet", "efficientnet_b0"])
def test_weights_path_loads_the_saved_tensors(tmp_path, name):
    spec = get_spec(name)
    saved = spec.build((32, 32, 3), "none")
    path = tmp_path / f"{name}.weights.h5"
    saved.save_weights(path)
    fresh = spec.build((32, 32, 3), "none")
    loaded = spec.build((32, 32, 3), str(path))
    pairs = list(zip(saved.weights, loaded.weights))
    assert len(pairs) == len(fresh.weights) > 10
    for a, b in pairs:
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(a.numpy(), c.numpy()) for a, c in zip(saved.weights, fresh.weights))


def test_a_weights_file_for_another_network_is_refused(tmp_path):
    path = tmp_path / "other.weights.h5"
    get_spec("small_resnet").build((32, 32, 3), "none").save_weights(path)
    with pytest.raises(KitError, match=f"--weights {path}: cannot load into efficientnet_b0"):
        get_spec("efficientnet_b0").build((32, 32, 3), str(path))


def test_missing_weights_fail_fast_and_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setattr("src.models.weights.keras_cache_dir", lambda: tmp_path / "cache")
    spec = dataclasses.replace(get_spec("efficientnet_b0"), weights_url="http://127.0.0.1:9/efficientnetb0_notop.h5")
    start = time.perf_counter()
    with pytest.raises(KitError) as err:
        resolve_weights(spec, "imagenet")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "efficientnetb0_notop.h5" in message and "--weights PATH" in message and "Kaggle dataset" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(KitError, match="no efficientnetb0_notop.h5 for efficientnet_b0 in that folder"):
        resolve_weights(spec, str(tmp_path / "empty"))
    with pytest.raises(KitError, match="--weights nowhere.h5: no such file or folder"):
        resolve_weights(spec, "nowhere.h5")
    with pytest.raises(KitError, match="small_resnet has no pretrained weights"):
        resolve_weights(get_spec("small_resnet"), "imagenet")


def test_a_folder_holding_the_library_file_goes_through_the_library(tmp_path, monkeypatch):
    """Keras's EfficientNet adds its input rescaling only on the weights='imagenet' path."""
    cache = tmp_path / "cache"
    monkeypatch.setattr("src.models.weights.keras_cache_dir", lambda: cache)
    nested = tmp_path / "kaggle-input" / "effnet" / "weights"
    nested.mkdir(parents=True)
    (nested / "efficientnetb0_notop.h5").write_bytes(b"stand-in")
    assert resolve_weights(get_spec("efficientnet_b0"), str(tmp_path / "kaggle-input")) == ("imagenet", None)
    assert (cache / "efficientnetb0_notop.h5").resolve() == (nested / "efficientnetb0_notop.h5").resolve()
    assert resolve_weights(get_spec("efficientnet_b0_ns"), "none") == (None, None)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(KitError, match="unknown backbone 'resnet5'; known: resnet50"):
        get_spec("resnet5")


def test_table_lists_every_entry():
    text = table(count_params=False)
    assert all(name in text for name in REGISTRY) and "noisy-student" in text and len(REGISTRY) == 31


def test_mixed_precision_keeps_a_float32_output():
    """On GPUs the accelerator sets mixed_float16; softmax and the loss must stay float32."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_classifier(get_spec("small_resnet"), (32, 32), num_classes=4)
        assert model.get_layer("small_resnet").dtype_policy.compute_dtype == "float16"
        out = model.predict(np.full((2, 32, 32, 3), 128, "float32"), verbose=0)
        assert out.dtype == np.float32 and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()


def test_imagenet_weights_are_taken_from_an_attached_input_first(tmp_path, monkeypatch, capsys):
    """issue 14: offline kernels: --weights imagenet looks in /kaggle/input before downloading, saying which file."""
    cache = tmp_path / "cache"
    monkeypatch.setattr("src.models.weights.keras_cache_dir", lambda: cache)
    monkeypatch.setenv("KIT_INPUTS", str(tmp_path / "input"))
    attached = tmp_path / "input" / "my-weights" / "efficientnetb0_notop.h5"
    attached.parent.mkdir(parents=True)
    attached.write_bytes(b"stand-in")
    spec = dataclasses.replace(get_spec("efficientnet_b0"), weights_url="http://127.0.0.1:9/never-asked.h5")
    assert resolve_weights(spec, "imagenet") == ("imagenet", None)
    assert (cache / "efficientnetb0_notop.h5").resolve() == attached.resolve()
    assert f"weights: efficientnet_b0 uses {attached}" in capsys.readouterr().out


def test_an_attached_file_with_the_library_name_but_other_content_is_named(tmp_path, monkeypatch, capsys):
    """issue 24 item 18: Keras checks the cached file's hash, then downloads (no internet: "URL fetch failure")."""
    import keras.src.backend.config as keras_config  # Keras reads KERAS_HOME once, at import

    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    monkeypatch.setenv("KIT_INPUTS", str(tmp_path / "input"))
    attached = tmp_path / "input" / "datasets" / "me" / "weights" / "efficientnetb0_notop.h5"
    attached.parent.mkdir(parents=True)
    attached.write_bytes(b"a file of another network, saved under the library's name")
    with pytest.raises(KitError) as err:
        get_spec("efficientnet_b0").build((32, 32, 3), "imagenet")
    message = str(err.value)
    assert message.startswith(f"{attached}: named like efficientnet_b0's imagenet weights (efficientnetb0_notop.h5)")
    assert "it is not the library's file: its hash differs" in message and "URL fetch failure" in message
    assert f"weights: efficientnet_b0 uses {attached}" in capsys.readouterr().out
    assert attached.read_bytes() == b"a file of another network, saved under the library's name"  # left as it was


def test_the_listing_shows_an_architecture_once_with_its_weight_tags(capsys):
    """issue 29 item 5: `python -m src.backbones` lists architectures; efficientnet_b0 carries both tags."""
    from src.backbones import main

    lines = main(["--no-params"])
    assert capsys.readouterr().out.splitlines() == lines
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == list(ARCHITECTURES) and len(rows) == 23  # 31 names, 8 of them aliases
    assert "efficientnet_b0_ns" not in rows and "efficientnet_b0_ns" in lines[-1]
    assert rows["efficientnet_b0"].endswith("imagenet (builtin), noisy-student (torch; alias efficientnet_b0_ns)")
    assert rows["resnet50"].endswith("imagenet (caffe)") and rows["tiny_resnet"].endswith("none (unit)")


def test_the_old_ns_name_is_efficientnet_b0_with_noisy_student_weights():
    """The alias, and NAME:TAG, give the entry efficientnet_b0_ns was: same constructor, files, layer name."""
    alias = get_spec("efficientnet_b0_ns")
    assert (alias.architecture, alias.pretrained) == ("efficientnet_b0", "noisy-student")
    assert alias.name == alias.layer_name == "efficientnet_b0_ns"  # its layers, run folder and caches keep the name
    assert (alias.constructor, alias.preprocessing, alias.family) == \
        ("efficientnet.tfkeras.EfficientNetB0", "torch", "efficientnet_ns")
    assert alias.weights_file == "efficientnet-b0_noisy-student_notop.h5"
    assert alias.unfreeze_from == "block6a_expand_conv" and alias.features == 1280
    assert get_spec("efficientnet_b0:noisy-student") is alias is get_spec("efficientnet_b0:Noisy-Student ")
    imagenet = get_spec("efficientnet_b0")
    assert imagenet is get_spec("efficientnet_b0:imagenet") and imagenet.architecture == alias.architecture
    assert (imagenet.pretrained, imagenet.constructor) == ("imagenet", "keras.applications.EfficientNetB0")
    assert get_spec("efficientnet_b7_ns").default_size == get_spec("efficientnet_b7").default_size == (600, 600)
    with pytest.raises(KitError, match="resnet50 has no weight tag 'noisy-student'; its tags: imagenet"):
        get_spec("resnet50:noisy-student")


def test_the_alias_builds_what_the_efficientnet_package_builds(zero_initial_weights):
    """Built through the alias or NAME:TAG: the package's EfficientNetB0, named efficientnet_b0_ns as before."""
    spec = get_spec("efficientnet_b0_ns")
    if needs_missing_package(spec):  # Kaggle's image: the error naming the package is what is checked
        return
    from efficientnet.tfkeras import EfficientNetB0

    model = spec.build((32, 32, 3), "none")
    direct = EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    assert model.name == "efficientnet_b0_ns" and model.output.shape[-1] == 1280
    assert [w.shape for w in model.weights] == [w.shape for w in direct.weights]
    assert [layer.name for layer in model.layers[1:]] == [layer.name for layer in direct.layers[1:]]  # past the input
    tagged = get_spec("efficientnet_b0:noisy-student").build((32, 32, 3), "none")
    assert tagged.name == model.name and tagged.count_params() == model.count_params()
    keras.backend.clear_session()


def test_weights_naming_another_tag_are_refused_with_the_name_that_has_them(tmp_path, monkeypatch):
    """--weights noisy-student on efficientnet_b0 loaded its ImageNet weights; the tag goes with the backbone."""
    monkeypatch.setattr("src.models.weights.keras_cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(KitError, match="--weights noisy-student: backbone efficientnet_b0 loads its imagenet weights; "
                                       "noisy-student weights are another weight tag, named with the backbone: "
                                       "--backbone efficientnet_b0:noisy-student"):
        resolve_weights(get_spec("efficientnet_b0"), "noisy-student")
    from src.models.weights import check_tag

    for name, choice in [("efficientnet_b0_ns", "noisy-student"), ("efficientnet_b0_ns", "imagenet"),
                         ("efficientnet_b0", "imagenet"), ("resnet50", "pretrained")]:
        check_tag(get_spec(name), choice)  # the backbone's own tag, or the words for it


def test_a_run_saved_with_the_old_name_still_loads(tmp_path):
    """A config.json written before weight tags names efficientnet_b0_ns: it loads, resolves and keeps its folder."""
    import json

    from src.runs.folder import RunFolder
    from src.training.two_stage import run_folder_for

    folder = tmp_path / "runs" / "efficientnet_b0_ns"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"backbone": "efficientnet_b0_ns", "weights": "imagenet",
                                                    "stage1_size": [224, 224], "stage2_size": [240, 240]}))
    cfg = RunFolder(folder).load_config()
    spec = get_spec(cfg.backbone)
    assert spec is REGISTRY["efficientnet_b0_ns"] and spec.architecture == "efficientnet_b0"
    assert spec.pretrained == "noisy-student" and spec.layer_name == "efficientnet_b0_ns"
    assert run_folder_for(cfg).path == Path("runs") / "efficientnet_b0_ns"
    tagged = dataclasses.replace(cfg, backbone="efficientnet_b0:noisy-student")
    assert run_folder_for(tagged).path == Path("runs") / "efficientnet_b0_ns"  # the same run either way
