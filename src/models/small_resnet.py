"""small_resnet: a small residual network with DropBlock, for training from random weights.

The CIFAR-100 reference's design, scaled for few-CPU machines: a 3x3 stem, three stages of
two basic residual blocks (32, 64, 128 channels after a 16-channel stem; stride 2 between stages), DropBlock after
the last two stages, global average pooling. BatchNorm momentum is 0.9, not Keras's 0.99:
big keras.applications networks trained from scratch for a few hundred steps sat at chance
on validation here because their BatchNorm moving statistics lagged behind the weights.
Inputs are expected in [0, 1] (the registry's "unit" preprocessing does that).
"""
from __future__ import annotations

import keras

BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="kit")
class DropBlock(keras.layers.Layer):
    """Drops contiguous block_size x block_size squares of a feature map while training (Ghiasi et al. 2018)."""

    def __init__(self, rate: float = 0.1, block_size: int = 3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.block_size, self.seed = rate, block_size, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate <= 0:
            return inputs
        shape = keras.ops.shape(inputs)
        height = keras.ops.cast(shape[1], "float32")
        width = keras.ops.cast(shape[2], "float32")
        size = float(self.block_size)
        # gamma: the seed rate that makes about `rate` of the units fall inside a dropped block
        valid = keras.ops.maximum((height - size + 1.0) * (width - size + 1.0), 1.0)
        gamma = self.rate * height * width / (size * size * valid)
        noise = keras.random.uniform((shape[0], shape[1], shape[2], 1), seed=self.seed_generator)
        seeds = keras.ops.cast(noise < gamma, inputs.dtype)
        dropped = keras.ops.max_pool(seeds, self.block_size, strides=1, padding="same")
        keep = 1.0 - dropped
        scale = keras.ops.cast(keras.ops.size(keep), inputs.dtype) / keras.ops.maximum(keras.ops.sum(keep), 1.0)
        return inputs * keep * scale

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "block_size": self.block_size, "seed": self.seed}


def residual_block(x, filters: int, stride: int, name: str, drop_path: float = 0.0):
    """Return a basic block: two 3x3 convs with BatchNorm, a projected shortcut when the shape changes.

    drop_path > 0: stochastic depth (Huang et al. 2016): while training, the residual branch of each
    image is dropped with that probability (Dropout with one draw per image), the shortcut kept.
    """
    layers = keras.layers
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    if drop_path > 0:
        y = layers.Dropout(drop_path, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def build_small_resnet(input_shape, widths=(16, 32, 64, 128), drop_rate: float = 0.1, drop_path: float = 0.0,
                       per_stage: int = 2, name: str = "small_resnet") -> keras.Model:
    """Return the network (inputs in [0, 1]) ending in average-pooled features of width widths[-1].

    per_stage residual blocks per stage. drop_path: the stochastic-depth rate of the last block; block b of
    B drops at drop_path * b / B (the linear rule of EfficientNet's drop_connect_rate), so the first never drops.
    """
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    blocks = per_stage * (len(widths) - 1)
    for stage, filters in enumerate(widths[1:], start=1):
        for block in range(per_stage):
            stride = 2 if block == 0 and stage > 1 else 1
            index = per_stage * (stage - 1) + block
            x = residual_block(x, filters, stride, f"stage{stage}_block{block}", drop_path * index / max(blocks - 1, 1))
        if stage >= len(widths) - 2:
            x = DropBlock(drop_rate, block_size=3, name=f"stage{stage}_dropblock")(x)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def build_tiny_resnet(input_shape, drop_rate: float = 0.1, drop_path: float = 0.0) -> keras.Model:
    """Return small_resnet cut to a stem and two one-block stages (8, 16, 32 channels; 32 features).

    Why: a pipeline check in seconds. Building and tracing a model's training step costs time in
    proportion to its layers (small_resnet's first epoch on 24 images: about 11 s here, this one's about
    4 s), so the kit's tests, and a first end-to-end run on a new competition, use this one.
    """
    return build_small_resnet(input_shape, widths=(8, 16, 32), drop_rate=drop_rate, drop_path=drop_path, per_stage=1,
                              name="tiny_resnet")
