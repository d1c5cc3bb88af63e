"""Classifier assembly: preprocessing from the BackboneSpec, the backbone, a fresh head.

    model = build_classifier(spec, (180, 240), num_classes=10, weights="imagenet")
    head = build_head(spec.features, num_classes=10)   # the same head, on cached features

Images enter as float32 in [0, 255] (what src.images yields); the Preprocess layer turns
them into what this backbone was trained on. The output layer is float32 even under mixed
precision, so softmax and the loss stay stable on GPUs and TPUs.
"""
from __future__ import annotations

import keras

MODES = ("caffe", "tf", "torch", "builtin", "unit")


@keras.saving.register_keras_serializable(package="kit")
class Preprocess(keras.layers.Layer):
    """Turns [0, 255] RGB into a backbone's expected input, by Keras's own imagenet_utils rules."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"preprocessing mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "builtin":
            return inputs
        if self.mode == "unit":
            return inputs / 255.0
        from keras.applications import imagenet_utils

        return imagenet_utils.preprocess_input(inputs, mode=self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_classifier(spec, image_size, num_classes: int, weights: str = "none", dropout: float = 0.2,
                     train_backbone: bool = False) -> keras.Model:
    """Return image -> class probabilities: Preprocess, the backbone (frozen unless asked), the head."""
    height, width = image_size
    inputs = keras.Input(shape=(height, width, 3), name="image")
    backbone = spec.build((height, width, 3), weights)
    backbone.trainable = train_backbone
    x = Preprocess(spec.preprocessing, name="preprocess")(inputs)
    # training=False keeps a frozen backbone's BatchNorm in inference mode (Keras fine-tuning guide).
    x = backbone(x, training=None if train_backbone else False)
    outputs = head_layers(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")


def build_head(features: int, num_classes: int, dropout: float = 0.2) -> keras.Model:
    """Return pooled features -> class probabilities: the classifier's head alone, for cached features."""
    inputs = keras.Input(shape=(features,), name="features")
    return keras.Model(inputs, head_layers(inputs, num_classes, dropout), name="head")


def head_layers(x, num_classes: int, dropout: float):
    """Return the head applied to x: BatchNormalization, Dropout, then a float32 softmax Dense.

    Pooled features differ in scale by orders of magnitude between families (ConvNeXt vs
    MobileNetV3); normalising them lets one head learning rate serve every backbone.
    """
    x = keras.layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(x)
