"""One backbone, resolved: an architecture with one of its weight tags (src.models.backbones lists them).

A BackboneSpec carries everything that depends on the backbone: how to build it, its own
input preprocessing, its default image size, its pooled feature width, the pretrained
weights it loads (and the file name its library uses for them), and where partial
unfreezing starts. The weight tag is part of it because a tag can change the library, and so
the constructor and the preprocessing: EfficientNet-B0's noisy-student weights come from the
efficientnet package and expect ImageNet mean/std inputs, its ImageNet ones from
keras.applications with the rescaling built in.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from src.core.errors import KitError
from src.models import OPTIONAL_PACKAGES
from src.models.hub import build_hub_backbone, hub_drop_path_argument, layer_name
from src.models.weights import cached_weights, load_weights_file, not_the_library_file, refetched, resolve_weights


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Everything about one backbone that other modules must not guess."""

    name: str                   # the architecture's name, plus its tag's suffix ("efficientnet_b0_ns")
    family: str
    constructor: str            # "keras.applications.ResNet50", "efficientnet.tfkeras.EfficientNetB0", ...
    preprocessing: str          # caffe | tf | torch | builtin | unit (src.models.backbones says what each does)
    default_size: tuple         # (height, width) the weights were trained at
    features: int               # width of the pooled features
    pretrained: str             # the weight tag, the library's weights name ("imagenet", "noisy-student"); "" none
    weights_file: str           # the file name the library caches those weights under
    weights_url: str            # where the library downloads them from
    unfreeze_from: str          # first layer trained when only the top of the network is fine-tuned
    min_size: int = 32          # smallest input side the architecture accepts
    architecture: str = ""      # the registry's architecture ("efficientnet_b0"); "" for a hub: preset

    @property
    def layer_name(self) -> str:
        """Return the name the backbone's layer and cache files carry (a hub: preset's name made safe).

        The name, not the architecture: a run trained on efficientnet_b0_ns keeps its layer and cache names.
        """
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
                           f"{self.architecture} (its imagenet weights) or an efficientnetv2_* backbone")
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
