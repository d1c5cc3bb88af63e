"""keras-hub presets as backbones: `--backbone hub:<preset>` (screening, training, prediction).

    --backbone hub:efficientnet2_rw_t_ra2_imagenet                  # a keras-hub preset name
    --backbone hub:kaggle://keras/efficientnetv2/keras/efficientnet2_rw_t_ra2_imagenet/1
    --backbone hub:/path/to/a/preset/folder                          # saved with save_to_preset

The preset's Backbone (its feature maps, or a ViT's tokens) is average-pooled, so it sits where
a keras.applications backbone sits. Its ImageConverter's scale and offset (ImageNet mean/std
for most image presets) become the first layer; the converter's resize is left out, because
the kit's pipeline already sizes images per stage. `--weights imagenet` loads the preset's
weights, `none` builds it randomly initialised, a file is loaded into it.

Offline (code competitions): `push --model OWNER/MODEL/FRAMEWORK/VARIATION/VERSION` attaches a
Kaggle Models preset; a `kaggle://` handle is then found under /kaggle/input (KIT_INPUTS in
tests), said, and loaded from there: nothing is downloaded.
"""
from __future__ import annotations

import re
from pathlib import Path

from src.core.errors import KitError
from src.models.weights import PRETRAINED_NAMES, inputs_root, load_weights_file

HUB_PREFIX = "hub:"


def is_hub(name: str) -> bool:
    return name.startswith(HUB_PREFIX)


def build_hub_backbone(spec, input_shape, weights: str, drop_path: float = 0.0):
    """Return image -> pooled features for a keras-hub preset, named spec.layer_name.

    Exists so a preset plugs in where the registry's backbones do: [0, 255] images in, one
    feature vector per image out.
    """
    import keras

    keras_hub = import_keras_hub(spec.name)
    preset = resolve_preset(spec.constructor)
    choice = (weights or "none").strip()
    pretrained = choice.lower() in PRETRAINED_NAMES
    try:
        rate = {hub_drop_path_argument(spec): drop_path} if drop_path > 0 else {}  # --drop-path, checked
        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=pretrained, **rate)
    except Exception as err:  # a name keras-hub does not know, or a folder without config.json
        raise KitError(f"--backbone {spec.name}: keras-hub cannot load preset {preset!r} "
                       f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = rescale_like_preset(inputs, preset, keras_hub, spec.name)
    features = backbone(x)
    pool = keras.layers.GlobalAveragePooling2D if len(features.shape) == 4 else keras.layers.GlobalAveragePooling1D
    model = keras.Model(inputs, pool(name="hub_pool")(features), name=spec.layer_name)
    if not pretrained and choice.lower() != "none":
        if not Path(choice).is_file():
            raise KitError(f"--weights {choice}: no such file; expected imagenet (the preset's weights), none, "
                           "or a .weights.h5 file")
        load_weights_file(model, choice, spec.name)
    return model


HUB_DROP_PATH = ("drop_path_rate", "max_drop_path_rate", "drop_connect_rate", "stochastic_depth_rate")


def hub_drop_path_argument(spec) -> str:
    """Return the keyword the preset's backbone class takes for a stochastic-depth rate, or '' when it takes none.

    Read from the preset's config.json and the class's signature, as keras-hub's from_preset finds the class.
    """
    import inspect

    import_keras_hub(spec.name)
    from keras_hub.src.utils.preset_utils import check_config_class, load_json

    try:
        kind = check_config_class(load_json(resolve_preset(spec.constructor)))
    except Exception as err:
        raise KitError(f"--backbone {spec.name}: keras-hub cannot read the preset's config ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''})") from None
    parameters = inspect.signature(kind.__init__).parameters
    return next((name for name in HUB_DROP_PATH if name in parameters), "")


def import_keras_hub(name: str):
    """Return the keras_hub module; missing, an error that says how to get it."""
    try:
        import keras_hub
    except ModuleNotFoundError:
        raise KitError(f"--backbone {name}: needs the keras-hub package (Kaggle's images have it; elsewhere "
                       "pip install keras-hub)") from None
    return keras_hub


def rescale_like_preset(inputs, preset: str, keras_hub, name: str):
    """Return inputs scaled as the preset's ImageConverter scales them ([0, 1] when it has none, said once)."""
    import keras

    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # the preset ships no image converter (a bare backbone)
        converter = None
    if converter is None or getattr(converter, "scale", None) is None:
        print(f"{name}: the preset has no image converter: images are scaled to [0, 1]")
        return keras.layers.Rescaling(1 / 255, name="hub_rescale")(inputs)
    offset = converter.offset if getattr(converter, "offset", None) is not None else 0.0
    return keras.layers.Rescaling(converter.scale, offset, name="hub_rescale")(inputs)


def resolve_preset(preset: str) -> str:
    """Return where to load a preset from: an attached Kaggle model's folder for a kaggle:// handle, else as given.

    A model attached to a kernel sits at /kaggle/input/<model>/<framework>/<variation>/<version>;
    without a version in the handle the highest attached one is taken.
    """
    match = re.fullmatch(r"kaggle://([^/]+)/([^/]+)/([^/]+)/([^/]+)(?:/(\d+))?", preset)
    root = inputs_root()
    if not match or not root.is_dir():
        return preset
    _, model, framework, variation, version = match.groups()
    base = root / model / framework / variation
    versions = [base / version] if version else sorted(base.glob("*"), key=lambda p: int(p.name)
                                                       if p.name.isdigit() else -1)
    found = [p for p in versions if (p / "config.json").is_file()]
    if not found:
        return preset
    print(f"preset: {preset} from the attached model {found[-1]}")
    return str(found[-1])


def layer_name(name: str) -> str:
    """Return a backbone name made safe for layer names and file names ('hub:kaggle://a/b' -> 'hub_kaggle_a_b')."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.-]", "_", name)).strip("_")
