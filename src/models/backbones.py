"""The backbone registry: name -> BackboneSpec (`python -m src.backbones` prints it).

A BackboneSpec carries everything that depends on the backbone: how to build it, its own
input preprocessing, its default image size, its pooled feature width, the pretrained
weights it can load (and the file name its library uses for them), and where partial
unfreezing starts. Callers never hard-code preprocessing: feeding a ResNet inputs scaled for
an EfficientNet is the field's most common silent failure (a reference write-up screened
ResNet50 at chance level, 0.13 on 10 classes).

Every model takes float32 images in [0, 255]; `preprocessing` says what happens next:
  caffe    RGB -> BGR, ImageNet mean subtracted (ResNet50)
  tf       scaled to [-1, 1] (ResNetV2, Xception, InceptionV3)
  torch    scaled to [0, 1], ImageNet mean/std normalised (DenseNet, efficientnet package)
  builtin  the network rescales inside itself (MobileNetV3, EfficientNet, EfficientNetV2, ConvNeXt)
  unit     scaled to [0, 1] (small_resnet)
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from src.core.errors import KitError
from src.models import OPTIONAL_PACKAGES
from src.models.hub import build_hub_backbone, hub_drop_path_argument, is_hub, layer_name
from src.models.weights import cached_weights, load_weights_file, not_the_library_file, refetched, resolve_weights

APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
NS_URL = "https://github.com/qubvel/efficientnet/releases/download/v0.0.1/"
EFFICIENTNET_SIZES = (224, 240, 260, 300, 380, 456, 528, 600)
EFFICIENTNET_WIDTHS = (1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything about one backbone that other modules must not guess."""

    name: str
    family: str
    constructor: str            # "keras.applications.ResNet50", "efficientnet.tfkeras.EfficientNetB0", ...
    preprocessing: str          # caffe | tf | torch | builtin | unit (see the module docstring)
    default_size: tuple         # (height, width) the weights were trained at
    features: int               # width of the pooled features
    pretrained: str             # the library's weights name ("imagenet", "noisy-student"), "" for none
    weights_file: str           # the file name the library caches those weights under
    weights_url: str            # where the library downloads them from
    unfreeze_from: str          # first layer trained when only the top of the network is fine-tuned
    min_size: int = 32          # smallest input side the architecture accepts

    @property
    def layer_name(self) -> str:
        """Return the name the backbone's layer and cache files carry (a hub: preset's name made safe)."""
        return layer_name(self.name)

    def build(self, input_shape, weights: str = "none", drop_path: float = 0.0):
        """Return the backbone (no top, average-pooled) for input_shape with the given weights.

        drop_path > 0: its blocks' stochastic-depth rate (--drop-path; check_drop_path says where it is taken).
        """
        import keras

        if drop_path > 0:
            check_drop_path(self, drop_path)
        if self.family == "keras_hub":
            return build_hub_backbone(self, input_shape, weights, drop_path)

        if self.family == "efficientnet_ns" and keras.backend.backend() != "tensorflow":
            # the efficientnet package's layers call TensorFlow ops on their inputs
            raise KitError(f"{self.name}: the efficientnet package builds TensorFlow-only layers and Keras runs on "
                           f"{keras.backend.backend()} here (Kaggle's TPUs); use "
                           f"{self.name.removesuffix('_ns')} or an efficientnetv2_* backbone")
        library_weights, extra_file = resolve_weights(self, weights)
        if self.family == "small_resnet":  # the kit's own networks: no library weights
            model = load_constructor(self.constructor)(input_shape, drop_path=drop_path)
        else:
            constructor = load_constructor(self.constructor)
            cached = cached_weights(self) if library_weights else None
            rate = {"drop_connect_rate": drop_path} if drop_path > 0 and self.family == "efficientnet_ns" else {}
            try:
                model = constructor(include_top=False, weights=library_weights, input_shape=tuple(input_shape),
                                    pooling="avg", **rate)
            except Exception as err:
                if cached is None or not refetched(err):
                    raise
                raise not_the_library_file(self, cached, err) from None
        if drop_path > 0 and self.family in ("efficientnet", "efficientnet_v2"):
            set_drop_connect(model, drop_path)
        if extra_file is not None:
            load_weights_file(model, extra_file, self.name)
        model.trainable = True
        return keras.Model(model.input, model.output, name=self.layer_name)


# Stochastic depth: the families whose constructor takes a rate (EfficientNet's drop-connect, default 0.2;
# small_resnet's drop_path, default 0).
DROP_PATH_FAMILIES = ("efficientnet", "efficientnet_v2", "efficientnet_ns", "small_resnet")
KERAS_DROP_CONNECT = 0.2  # what keras.applications' EfficientNetB0-B7 and EfficientNetV2* pass to their base


def check_drop_path(spec: BackboneSpec, rate: float) -> None:
    """Refuse --drop-path, naming the backbone, when its constructor takes no stochastic-depth rate.

    keras.applications' EfficientNet(V2) base constructors take drop_connect_rate, which the named
    variants fix at 0.2 (set_drop_connect redoes it); the efficientnet package's variants pass it through,
    as build_small_resnet takes drop_path;
    a keras-hub preset's backbone class is asked (src.models.hub.HUB_DROP_PATH: drop_path_rate and the like).
    """
    if rate <= 0 or spec.family in DROP_PATH_FAMILIES:
        return
    if spec.family == "keras_hub" and hub_drop_path_argument(spec):
        return
    raise KitError(f"--drop-path {rate:g}: backbone {spec.name} ({spec.constructor}) takes no stochastic-depth or "
                   "drop-connect rate; leave --drop-path out, or use an efficientnet_*, efficientnetv2_*, "
                   "efficientnet_*_ns or small_resnet backbone")


def set_drop_connect(model, rate: float) -> int:
    """Set the drop-connect rate of a keras.applications EfficientNet(V2) built with its fixed 0.2; return the count.

    Its base constructor gives block b of B a Dropout(drop_connect_rate * b / B, noise_shape=(None, 1, 1, 1))
    named block..._drop (stochastic depth on the residual branch); the named variants pass 0.2. The rates
    are rescaled to what the constructor would have made from `rate`; Dropout reads its rate when the
    training step is traced, so the built model trains with them.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)
              and layer.name.startswith("block") and layer.name.endswith("drop")]
    if not layers:
        raise KitError(f"--drop-path: {model.name} has no block..._drop layers to set; its constructor changed")
    for layer in layers:
        layer.rate = layer.rate * rate / KERAS_DROP_CONNECT
    return len(layers)


def load_constructor(path: str) -> Callable:
    """Return the constructor named by a dotted path, importing its module only now.

    The noisy-student EfficientNets need the efficientnet package (and keras_applications),
    which Kaggle's images lack: a missing one is an error that says what to attach.
    """
    import importlib

    module, attribute = path.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as err:
        if err.name not in OPTIONAL_PACKAGES:
            raise
        raise KitError(f"{attribute} needs the {err.name} package, which is not installed (Kaggle's images lack "
                       f"it): attach the kit dataset made by `python -m src.kaggle_api upload-src` (it carries "
                       f"{' and '.join(OPTIONAL_PACKAGES)}), or pip install efficientnet==1.1.1") from None


def keras_app(name, family, constructor, preprocessing, size, features, weights_file, unfreeze_from,
              url_folder, min_size=32) -> BackboneSpec:
    """Return the spec of a keras.applications backbone with ImageNet weights."""
    return BackboneSpec(name, family, f"keras.applications.{constructor}", preprocessing, (size, size),
                        features, "imagenet", weights_file, APPS + url_folder + weights_file,
                        unfreeze_from, min_size)


def make_registry() -> dict:
    """Return {name: BackboneSpec} for every supported backbone."""
    specs = [
        keras_app("resnet50", "resnet", "ResNet50", "caffe", 224, 2048,
                  "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "conv5_block1_1_conv", "resnet/"),
        keras_app("resnet152v2", "resnet_v2", "ResNet152V2", "tf", 224, 2048,
                  "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5", "conv5_block1_preact_bn",
                  "resnet/"),
        keras_app("xception", "xception", "Xception", "tf", 299, 2048,
                  "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", "block14_sepconv1", "xception/",
                  min_size=71),
        keras_app("inception_v3", "inception", "InceptionV3", "tf", 299, 2048,
                  "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "mixed9", "inception_v3/",
                  min_size=75),
        keras_app("densenet121", "densenet", "DenseNet121", "torch", 224, 1024,
                  "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", "conv5_block1_0_bn", "densenet/"),
        keras_app("mobilenetv3_small", "mobilenet_v3", "MobileNetV3Small", "builtin", 224, 576,
                  "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", "expanded_conv_8_expand",
                  "mobilenet_v3/"),
        keras_app("mobilenetv3_large", "mobilenet_v3", "MobileNetV3Large", "builtin", 224, 960,
                  "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5", "expanded_conv_12_expand",
                  "mobilenet_v3/"),
    ]
    for i, (size, width) in enumerate(zip(EFFICIENTNET_SIZES, EFFICIENTNET_WIDTHS)):
        specs.append(BackboneSpec(
            f"efficientnet_b{i}", "efficientnet", f"keras.applications.EfficientNetB{i}", "builtin",
            (size, size), width, "imagenet", f"efficientnetb{i}_notop.h5",
            f"https://storage.googleapis.com/keras-applications/efficientnetb{i}_notop.h5",
            "block6a_expand_conv"))
        specs.append(BackboneSpec(
            f"efficientnet_b{i}_ns", "efficientnet_ns", f"efficientnet.tfkeras.EfficientNetB{i}", "torch",
            (size, size), width, "noisy-student", f"efficientnet-b{i}_noisy-student_notop.h5",
            f"{NS_URL}efficientnet-b{i}_noisy-student_notop.h5", "block6a_expand_conv"))
    for name, constructor, size, cut in [("b0", "EfficientNetV2B0", 224, "block6a_expand_conv"),
                                         ("s", "EfficientNetV2S", 384, "block6a_expand_conv"),
                                         ("m", "EfficientNetV2M", 480, "block7a_expand_conv"),
                                         ("l", "EfficientNetV2L", 480, "block7a_expand_conv")]:
        specs.append(keras_app(f"efficientnetv2_{name}", "efficientnet_v2", constructor, "builtin", size,
                               1280, f"efficientnetv2-{name}_notop.h5", cut, "efficientnet_v2/"))
    for name, constructor in [("tiny", "ConvNeXtTiny"), ("small", "ConvNeXtSmall")]:
        specs.append(keras_app(f"convnext_{name}", "convnext", constructor, "builtin", 224, 768,
                               f"convnext_{name}_notop.h5", f"convnext_{name}_stage_3_block_0_depthwise_conv",
                               "convnext/"))
    specs.append(BackboneSpec("small_resnet", "small_resnet", "src.models.small_resnet.build_small_resnet", "unit",
                              (32, 32), 128, "", "", "", "stage3_block1_conv1", min_size=8))
    specs.append(BackboneSpec("tiny_resnet", "small_resnet", "src.models.small_resnet.build_tiny_resnet", "unit",
                              (32, 32), 32, "", "", "", "stage2_block0_conv1", min_size=8))
    return {spec.name: spec for spec in specs}


REGISTRY = make_registry()


def get_spec(name: str) -> BackboneSpec:
    """Return the spec for a backbone name (or hub:<preset>); an unknown name lists the known ones."""
    if is_hub(name):
        preset = name[len("hub:"):]
        if not preset:
            raise KitError("--backbone hub:: name a keras-hub preset after hub: (hub:efficientnet2_rw_t_ra2_imagenet, "
                           "hub:kaggle://OWNER/MODEL/keras/VARIATION/VERSION or hub:FOLDER)")
        # the pooled width is read from the built model; no partial unfreezing cut is known for a preset
        return BackboneSpec(name, "keras_hub", preset, "builtin", (224, 224), 0, "imagenet", "", "", "")
    if name not in REGISTRY:
        raise KitError(f"--backbones: unknown backbone {name!r}; known: {', '.join(REGISTRY)}, or hub:<keras-hub preset>")
    return REGISTRY[name]


def parse_backbones(text: str) -> list:
    """Return the specs named in a comma-separated list, checked before anything runs."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [get_spec(n) for n in names]


def table(count_params: bool = True) -> str:
    """Return the registry as a text table: name, parameters, default size, weights, preprocessing."""
    return "\n".join(table_lines(count_params))


def table_lines(count_params: bool = True):
    """Yield the table's header, then one line per backbone (building each takes a second or so)."""
    yield f"{'name':20s} {'parameters':>12s} {'size':>9s} {'features':>8s}  {'weights':14s} preprocessing"
    for spec in REGISTRY.values():
        params = f"{parameter_count(spec):,d}" if count_params else "-"
        size = f"{spec.default_size[0]}x{spec.default_size[1]}"
        yield (f"{spec.name:20s} {params:>12s} {size:>9s} {spec.features:8d}  "
               f"{spec.pretrained or 'none':14s} {spec.preprocessing}")


def parameter_count(spec: BackboneSpec) -> int:
    """Return the backbone's parameter count (built once at a small size with random weights)."""
    import keras

    size = max(spec.min_size, 32)
    count = spec.build((size, size, 3), "none").count_params()
    keras.backend.clear_session()
    return count


def print_table(cfg) -> list:
    """Print the registry one line at a time (building each model takes a second); return the lines."""
    lines = []
    for line in table_lines(count_params=cfg.params):
        print(line, flush=True)
        lines.append(line)
    return lines
