"""The backbone registry: architectures, each with its weight tags (`python -m src.backbones` prints it).

An architecture (efficientnet_b0) is one network; a weight tag (imagenet, noisy-student) is one set
of pretrained weights for it and how its library loads them, as timm names one architecture with
several pretrained tags. A tag can change the library, and with it the constructor and the
preprocessing, so each tag carries those (src.models.spec.BackboneSpec is the two resolved).

Naming a backbone (--backbone, --backbones):
  efficientnet_b0                 the architecture with its first tag (imagenet)
  efficientnet_b0:noisy-student   the architecture with the tag named
  efficientnet_b0_ns              an alias of the line above: the name from before weight tags, kept so
                                  old run folders' config.json, notebooks and screening.csv rows resolve.
                                  It stays the backbone's name: its layer, run folder and feature cache
  hub:<preset>                    a keras-hub preset (src.models.hub)

Callers never hard-code preprocessing: feeding a ResNet inputs scaled for an EfficientNet is the
field's most common silent failure (a reference write-up screened ResNet50 at chance level, 0.13
on 10 classes). Every model takes float32 images in [0, 255]; `preprocessing` says what happens next:
  caffe    RGB -> BGR, ImageNet mean subtracted (ResNet50)
  tf       scaled to [-1, 1] (ResNetV2, Xception, InceptionV3)
  torch    scaled to [0, 1], ImageNet mean/std normalised (DenseNet, efficientnet package)
  builtin  the network rescales inside itself (MobileNetV3, EfficientNet, EfficientNetV2, ConvNeXt)
  unit     scaled to [0, 1] (small_resnet)
"""
from __future__ import annotations

import dataclasses

from src.core.errors import KitError
from src.models.hub import is_hub
from src.models.spec import BackboneSpec

APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
NS_URL = "https://github.com/qubvel/efficientnet/releases/download/v0.0.1/"
EFFICIENTNET_SIZES = (224, 240, 260, 300, 380, 456, 528, 600)
EFFICIENTNET_WIDTHS = (1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560)


@dataclasses.dataclass(frozen=True)
class WeightTag:
    """One set of pretrained weights of an architecture, and how its library builds and loads them."""

    tag: str                    # "imagenet", "noisy-student" (the library's weights name); "" for none
    family: str
    constructor: str            # the dotted path of the library's constructor
    preprocessing: str          # caffe | tf | torch | builtin | unit (the module docstring)
    weights_file: str = ""      # the file name the library caches the weights under
    weights_url: str = ""       # where the library downloads them from
    suffix: str = ""            # added to the architecture's name to name this variant ("_ns"); "" for the first


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One network and the weight tags it can be built with, the first being its default."""

    name: str
    default_size: tuple         # (height, width) the weights were trained at
    features: int               # width of the pooled features
    unfreeze_from: str          # first layer trained when only the top of the network is fine-tuned
    tags: tuple                 # WeightTag, ...: the first is what the bare name builds
    min_size: int = 32          # smallest input side the architecture accepts

    def spec(self, weights: WeightTag) -> BackboneSpec:
        """Return this architecture with one of its tags as a BackboneSpec named name + the tag's suffix.

        The suffix keeps the names from before weight tags (efficientnet_b0_ns): layers, run folders and
        feature caches are named after the spec.
        """
        return BackboneSpec(self.name + weights.suffix, weights.family, weights.constructor, weights.preprocessing,
                            self.default_size, self.features, weights.tag, weights.weights_file,
                            weights.weights_url, self.unfreeze_from, self.min_size, self.name)

    def tag(self, name: str) -> WeightTag:
        """Return the weight tag called `name`; an unknown one is an error listing this architecture's tags."""
        for weights in self.tags:
            if weights.tag and weights.tag == name.strip().lower():
                return weights
        known = ", ".join(t.tag for t in self.tags if t.tag) or "none (it has no pretrained weights)"
        raise KitError(f"--backbone {self.name}:{name}: {self.name} has no weight tag {name!r}; its tags: {known}")


def keras_app(name, family, constructor, preprocessing, size, features, weights_file, unfreeze_from,
              url_folder, min_size=32) -> Architecture:
    """Return a keras.applications architecture whose one tag is its ImageNet weights."""
    imagenet = WeightTag("imagenet", family, f"keras.applications.{constructor}", preprocessing, weights_file,
                         APPS + url_folder + weights_file)
    return Architecture(name, (size, size), features, unfreeze_from, (imagenet,), min_size)


def efficientnet(i: int) -> Architecture:
    """Return EfficientNet-B{i}: keras.applications' ImageNet weights, and the efficientnet package's noisy-student.

    The noisy-student tag needs the efficientnet package, which Kaggle's images lack (load_constructor
    says what to attach); it keeps the suffix _ns, the name it had as an entry of its own.
    """
    size, width = EFFICIENTNET_SIZES[i], EFFICIENTNET_WIDTHS[i]
    imagenet = WeightTag("imagenet", "efficientnet", f"keras.applications.EfficientNetB{i}", "builtin",
                         f"efficientnetb{i}_notop.h5",
                         f"https://storage.googleapis.com/keras-applications/efficientnetb{i}_notop.h5")
    noisy_student = WeightTag("noisy-student", "efficientnet_ns", f"efficientnet.tfkeras.EfficientNetB{i}", "torch",
                              f"efficientnet-b{i}_noisy-student_notop.h5",
                              f"{NS_URL}efficientnet-b{i}_noisy-student_notop.h5", suffix="_ns")
    return Architecture(f"efficientnet_b{i}", (size, size), width, "block6a_expand_conv", (imagenet, noisy_student))


def kit_network(name, builder, features, unfreeze_from) -> Architecture:
    """Return one of the kit's own networks: no pretrained weights, one tag ''."""
    untrained = WeightTag("", "small_resnet", f"src.models.small_resnet.{builder}", "unit")
    return Architecture(name, (32, 32), features, unfreeze_from, (untrained,), min_size=8)


def make_architectures() -> dict:
    """Return {name: Architecture} for every supported architecture, in the listing's order."""
    archs = [
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
    archs += [efficientnet(i) for i in range(len(EFFICIENTNET_SIZES))]
    for name, constructor, size, cut in [("b0", "EfficientNetV2B0", 224, "block6a_expand_conv"),
                                         ("s", "EfficientNetV2S", 384, "block6a_expand_conv"),
                                         ("m", "EfficientNetV2M", 480, "block7a_expand_conv"),
                                         ("l", "EfficientNetV2L", 480, "block7a_expand_conv")]:
        archs.append(keras_app(f"efficientnetv2_{name}", "efficientnet_v2", constructor, "builtin", size,
                               1280, f"efficientnetv2-{name}_notop.h5", cut, "efficientnet_v2/"))
    for name, constructor in [("tiny", "ConvNeXtTiny"), ("small", "ConvNeXtSmall")]:
        archs.append(keras_app(f"convnext_{name}", "convnext", constructor, "builtin", 224, 768,
                               f"convnext_{name}_notop.h5", f"convnext_{name}_stage_3_block_0_depthwise_conv",
                               "convnext/"))
    archs.append(kit_network("small_resnet", "build_small_resnet", 128, "stage3_block1_conv1"))
    archs.append(kit_network("tiny_resnet", "build_tiny_resnet", 32, "stage2_block0_conv1"))
    return {arch.name: arch for arch in archs}


def make_registry(architectures: dict) -> dict:
    """Return {name: BackboneSpec} for every architecture with every tag: the bare names and the aliases.

    Flat, because a name is what flags, config.json and screening.csv hold; two variants with one name
    would make an old name ambiguous, so that is refused here, at import.
    """
    registry = {}
    for arch in architectures.values():
        for weights in arch.tags:
            spec = arch.spec(weights)
            if spec.name in registry:
                raise KitError(f"backbone registry: two entries named {spec.name}")
            registry[spec.name] = spec
    return registry


ARCHITECTURES = make_architectures()
REGISTRY = make_registry(ARCHITECTURES)


def get_spec(name: str) -> BackboneSpec:
    """Return the spec a backbone name means: NAME, NAME:TAG, an alias (efficientnet_b0_ns) or hub:<preset>.

    NAME:TAG returns the very entry its alias does, so either spelling trains and predicts the same network.
    An unknown name is an error listing the known ones.
    """
    if is_hub(name):
        return hub_spec(name)
    architecture, colon, tag = name.partition(":")
    if colon and architecture in ARCHITECTURES:
        arch = ARCHITECTURES[architecture]
        return REGISTRY[arch.name + arch.tag(tag).suffix]
    if name not in REGISTRY:
        raise KitError(f"--backbones: unknown backbone {name!r}; known: {', '.join(REGISTRY)}, NAME:TAG (a weight "
                       "tag of an architecture: python -m src.backbones lists them), or hub:<keras-hub preset>")
    return REGISTRY[name]


def hub_spec(name: str) -> BackboneSpec:
    """Return the spec of a keras-hub preset; its pooled width is read from the built model."""
    preset = name[len("hub:"):]
    if not preset:
        raise KitError("--backbone hub:: name a keras-hub preset after hub: (hub:efficientnet2_rw_t_ra2_imagenet, "
                       "hub:kaggle://OWNER/MODEL/keras/VARIATION/VERSION or hub:FOLDER)")
    # no partial unfreezing cut is known for a preset
    return BackboneSpec(name, "keras_hub", preset, "builtin", (224, 224), 0, "imagenet", "", "", "")


def parse_backbones(text: str) -> list:
    """Return the specs named in a comma-separated list, checked before anything runs."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [get_spec(n) for n in names]


def table(count_params: bool = True) -> str:
    """Return the registry as a text table: one row per architecture, with its weight tags."""
    return "\n".join(table_lines(count_params))


def table_lines(count_params: bool = True):
    """Yield the table's header, one line per architecture (building each takes a second or so), then a note.

    The parameters are counted on the architecture's first tag, which keras.applications builds even
    where the efficientnet package is missing.
    """
    yield f"{'name':20s} {'parameters':>12s} {'size':>9s} {'features':>8s}  weights: tag (preprocessing)"
    for arch in ARCHITECTURES.values():
        params = f"{parameter_count(REGISTRY[arch.name]):,d}" if count_params else "-"
        size = f"{arch.default_size[0]}x{arch.default_size[1]}"
        yield f"{arch.name:20s} {params:>12s} {size:>9s} {arch.features:8d}  {describe_tags(arch)}"
    yield ("NAME builds an architecture's first tag; NAME:TAG another (efficientnet_b0:noisy-student), as its "
           "alias does (efficientnet_b0_ns); --weights imagenet loads the tag's weights")


def describe_tags(arch: Architecture) -> str:
    """Return an architecture's tags for the table: 'imagenet (builtin), noisy-student (torch; alias ..._ns)'."""
    parts = []
    for weights in arch.tags:
        alias = f"; alias {arch.name + weights.suffix}" if weights.suffix else ""
        parts.append(f"{weights.tag or 'none'} ({weights.preprocessing}{alias})")
    return ", ".join(parts)


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
