"""A U-Net on any registry backbone: the encoder's feature pyramid, a decoder of upsampling + concat + convs.

    model = build_unet("efficientnet_b0", classes=4)                    # (None, None, 3) -> (None, None, 4)
    model = build_unet("small_resnet", classes=3, input_shape=(64, 64, 3), exclusive=True)  # softmax

Images enter as float32 in [0, 255], as for the classifier: the backbone's own Preprocess layer comes first.
The encoder is tapped at layers named per architecture in TAPS, with the stride of each (the image side
divided by the feature map's side), shallow to deep; the names were read off keras.applications' models
built with weights=None (block outputs where the network names them, never Keras's numbered layers like
activation_7, whose numbers change with what was built before). Each decoder block upsamples by the ratio
of two strides, concatenates the shallower tap and runs two 3x3 conv-BN-ReLU; its width is 16 x its
stride (smp's 256, 128, 64, 32, 16 at strides 16 to 1). A last block brings the shallowest tap's stride
to 1 (ConvNeXt's first tap is at stride 4). The output is one sigmoid channel per class, or a softmax
over them when the classes are exclusive, in float32 under mixed precision.

Fully convolutional: any input side that is a multiple of the deepest stride works, (None, None, 3) too.
Xception and Inception-V3 have no taps: their unpadded convolutions give feature maps whose sides are
not the image's divided by a stride, so no skip connection lines up.
"""
from __future__ import annotations

import keras

from src.core.errors import KitError
from src.models.backbones import get_spec
from src.models.classifier import Preprocess
from src.models.spec import BackboneSpec

EFFICIENTNET_TAPS = (("block2a_expand_activation", 2), ("block3a_expand_activation", 4),
                     ("block4a_expand_activation", 8), ("block6a_expand_activation", 16), ("top_activation", 32))


def efficientnetv2_taps(stride2: str, stride4: str) -> tuple:
    """Return an EfficientNetV2's taps: its stages 1 and 2 end in differently named blocks per size."""
    return ((stride2, 2), (stride4, 4), ("block4a_expand_activation", 8), ("block6a_expand_activation", 16),
            ("top_activation", 32))


def convnext_taps(size: str, stage2_blocks: int) -> tuple:
    """Return a ConvNeXt's taps: each stage's last block (its stem is stride 4: no stride-2 tap)."""
    return tuple((f"convnext_{size}_stage_{stage}_block_{block}_identity", 4 * 2 ** stage)
                 for stage, block in enumerate((2, 2, stage2_blocks - 1, 2)))


# Registry name -> ((layer name, stride), ...), shallow to deep.
TAPS = {
    "small_resnet": (("stage1_block1_out", 1), ("stage2_dropblock", 2), ("stage3_dropblock", 4)),
    "tiny_resnet": (("stage1_dropblock", 1), ("stage2_dropblock", 2)),
    "resnet50": (("conv1_relu", 2), ("conv2_block3_out", 4), ("conv3_block4_out", 8), ("conv4_block6_out", 16),
                 ("conv5_block3_out", 32)),
    "resnet152v2": (("conv1_conv", 2), ("conv2_block3_preact_relu", 4), ("conv3_block8_preact_relu", 8),
                    ("conv4_block36_preact_relu", 16), ("post_relu", 32)),
    "densenet121": (("conv1_relu", 2), ("pool2_conv", 4), ("pool3_conv", 8), ("pool4_conv", 16), ("relu", 32)),
    "mobilenetv3_small": (("conv_bn", 2), ("expanded_conv_project_bn", 4), ("expanded_conv_2_add", 8),
                          ("expanded_conv_7_add", 16), ("expanded_conv_10_add", 32)),
    "mobilenetv3_large": (("expanded_conv_add", 2), ("expanded_conv_2_add", 4), ("expanded_conv_5_add", 8),
                          ("expanded_conv_11_add", 16), ("expanded_conv_14_add", 32)),
    **{f"efficientnet_b{i}": EFFICIENTNET_TAPS for i in range(8)},
    "efficientnetv2_b0": efficientnetv2_taps("block1a_project_activation", "block2b_add"),
    "efficientnetv2_s": efficientnetv2_taps("block1b_add", "block2d_add"),
    "efficientnetv2_m": efficientnetv2_taps("block1c_add", "block2e_add"),
    "efficientnetv2_l": efficientnetv2_taps("block1d_add", "block2g_add"),
    "convnext_tiny": convnext_taps("tiny", 9),
    "convnext_small": convnext_taps("small", 27),
}


def resolve(backbone) -> BackboneSpec:
    """Return the BackboneSpec of a registry name (NAME, NAME:TAG, an alias) or the spec itself."""
    return backbone if isinstance(backbone, BackboneSpec) else get_spec(backbone)


def taps_of(backbone) -> tuple:
    """Return the backbone's ((layer, stride), ...); a KitError naming the ones with taps when it has none."""
    spec = resolve(backbone)
    if spec.name not in TAPS:
        raise KitError(f"--backbone {spec.name}: no U-Net feature taps are declared for it (the layers at strides "
                       f"2 to 32, src.kinds.segmentation.unet.TAPS); a U-Net can use: {', '.join(TAPS)}")
    return TAPS[spec.name]


def size_multiple(backbone) -> int:
    """Return what every input side must be a multiple of: the deepest tap's stride (32 for most)."""
    return taps_of(backbone)[-1][1]


def check_input_shape(input_shape, backbone) -> None:
    """Raise a KitError when a known input side is not a multiple of the deepest stride or below the minimum."""
    spec, multiple = resolve(backbone), size_multiple(backbone)
    for side in input_shape[:2]:
        if side is not None and (side % multiple or side < max(spec.min_size, multiple)):
            raise KitError(f"U-Net input {input_shape[0]}x{input_shape[1]}: on {spec.name} each side must be a "
                           f"multiple of {multiple} (its deepest feature map is 1/{multiple} of the image) and at "
                           f"least {max(spec.min_size, multiple)}: pad the image (tiles.pad_to_multiple) or resize it")


def build_encoder(backbone, input_shape=(None, None, 3), weights: str = "none") -> keras.Model:
    """Return the backbone as a model whose outputs are its taps' feature maps, shallow to deep."""
    spec = resolve(backbone)
    taps = taps_of(spec)
    base = spec.build(tuple(input_shape), weights)
    missing = [name for name, _ in taps if name not in {layer.name for layer in base.layers}]
    if missing:
        raise KitError(f"{spec.name}: its built model has no layer {missing[0]!r} declared in TAPS: the library's "
                       "layer names changed; read them off the model (model.summary()) and update TAPS")
    return keras.Model(base.input, [base.get_layer(name).output for name, _ in taps], name=spec.layer_name)


def conv_block(x, filters: int, name: str):
    """Return two 3x3 conv-BatchNorm-ReLU layers applied to x."""
    for index in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def decoder_block(x, skip, factor: int, filters: int, name: str):
    """Return x upsampled by factor (nearest), joined to the skip features when given, through conv_block."""
    if factor > 1:
        x = keras.layers.UpSampling2D(factor, name=f"{name}_up")(x)
    if skip is not None:
        x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    return conv_block(x, filters, name)


def build_unet(backbone, classes: int = 1, input_shape=(None, None, 3), weights: str = "none",
               exclusive: bool = False, width: int = 16, name: str = "unet") -> keras.Model:
    """Return the U-Net: [0, 255] images (H, W, 3) -> (H, W, classes) probabilities, float32.

    exclusive: one class per pixel (softmax over the channels, a background class among them); else one
    independent sigmoid per class, as Severstal's and UW-Madison's classes overlap or are absent together.
    width: the decoder's width at stride 1; each block is width x its stride wide.
    """
    spec = resolve(backbone)
    taps = taps_of(spec)
    check_input_shape(input_shape, spec)
    inputs = keras.Input(tuple(input_shape), name="image")
    features = build_encoder(spec, input_shape, weights)(Preprocess(spec.preprocessing, name="preprocess")(inputs))
    features = features if isinstance(features, (list, tuple)) else [features]
    x, stride = features[-1], taps[-1][1]
    for skip, (_, skip_stride) in zip(reversed(features[:-1]), reversed(taps[:-1])):
        x = decoder_block(x, skip, stride // skip_stride, width * skip_stride, f"decoder_stride{skip_stride}")
        stride = skip_stride
    if stride > 1:  # the shallowest tap is below full resolution: a last block without a skip
        x = decoder_block(x, None, stride, width, "decoder_stride1")
    outputs = keras.layers.Conv2D(classes, 1, activation="softmax" if exclusive else "sigmoid", dtype="float32",
                                  name="mask")(x)
    return keras.Model(inputs, outputs, name=name)
