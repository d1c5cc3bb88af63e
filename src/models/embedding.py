"""The identity task's network: GeM pooling, a neck (Dense + BatchNorm) giving the embedding, a margin head.

    x = identity_head(feature_map, num_classes, head)    # GeM -> neck -> embedding -> ArcFace (or softmax)
    loss = margin_loss(cfg)                               # ArcFace's additive angular margin, in the loss
    cut = embedding_model(model)                          # the margin head dropped: image -> embedding

What Happywhale's and the Google Landmark winners used: generalised-mean pooling (Radenović et al. 2018,
a learned exponent p between average, p=1, and max pooling), an embedding from a Dense layer and batch
norm, and a (sub-center) ArcFace head (Deng et al. 2019): cosines between the L2-normalised embedding and
one (or K, the best kept) normalised weight vector per identity, scaled by s; training adds the angular
margin m to the true identity's angle. Here the head outputs s * cos and the loss adds the margin from the
one-hot target, so the datasets stay (image, one-hot) as for every other head. Prediction drops the head:
nearest neighbours of the embedding (src.kinds.identity.neighbours). Layers use keras.ops: TensorFlow and JAX.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

EMBEDDING = "embedding"  # the layer prediction cuts at


@keras.saving.register_keras_serializable(package="kit")
class GeM(keras.layers.Layer):
    """Generalised-mean pooling over height and width with a learned exponent p (3 to start, as the paper)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.p_start, self.eps = p, eps

    def build(self, input_shape):
        self.p = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.p_start), name="p")

    def call(self, x):
        x = ops.cast(x, "float32")
        p = ops.maximum(ops.cast(self.p, "float32"), 1.0)
        return ops.power(ops.mean(ops.power(ops.maximum(x, self.eps), p), axis=(1, 2)), 1.0 / p)

    def get_config(self):
        return {**super().get_config(), "p": self.p_start, "eps": self.eps}


@keras.saving.register_keras_serializable(package="kit")
class ArcMarginHead(keras.layers.Layer):
    """scale * cos(embedding, identity): K sub-centers per identity, the closest kept (sub-center ArcFace)."""

    def __init__(self, classes: int, subcenters: int = 1, scale: float = 30.0, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.classes, self.subcenters, self.scale = classes, subcenters, scale

    def build(self, input_shape):
        self.centers = self.add_weight(shape=(int(input_shape[-1]), self.classes * self.subcenters),
                                       initializer="glorot_uniform", name="centers")

    def call(self, x):
        x = ops.cast(x, "float32")
        x = x / (ops.norm(x, axis=-1, keepdims=True) + 1e-12)
        w = self.centers / (ops.norm(self.centers, axis=0, keepdims=True) + 1e-12)
        cos = ops.matmul(x, w)
        if self.subcenters > 1:
            cos = ops.max(ops.reshape(cos, (-1, self.classes, self.subcenters)), axis=-1)
        return cos * self.scale

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "subcenters": self.subcenters, "scale": self.scale}


@keras.saving.register_keras_serializable(package="kit")
class ArcFaceLoss(keras.losses.Loss):
    """Cross-entropy of the margin head's logits with the true identity's angle widened by the margin m.

    y_pred is scale * cos; the target's logit becomes scale * cos(theta + m) (beyond pi - m, the
    paper's linear continuation cos - m sin(m), so the logit keeps falling with the angle).
    """

    def __init__(self, margin: float = 0.3, scale: float = 30.0, label_smoothing: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.margin, self.scale, self.label_smoothing = margin, scale, label_smoothing

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, "float32")
        cos = ops.clip(ops.cast(y_pred, "float32") / self.scale, -1.0 + 1e-7, 1.0 - 1e-7)
        sin = ops.sqrt(1.0 - cos * cos)
        widened = cos * math.cos(self.margin) - sin * math.sin(self.margin)
        widened = ops.where(cos > math.cos(math.pi - self.margin), widened, cos - math.sin(self.margin) * self.margin)
        logits = self.scale * (y * widened + (1.0 - y) * cos)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(ops.shape(y)[-1], "float32")
        return keras.losses.categorical_crossentropy(y, logits, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "scale": self.scale,
                "label_smoothing": self.label_smoothing}


def feature_map_backbone(backbone):
    """Return the backbone ending before its global average pooling (GeM pools instead), or None when it has none.

    keras.applications (pooling='avg') and the kit's small_resnet end in GlobalAveragePooling2D; the
    cut model keeps the backbone's name and layers, so freezing, unfreezing and weights treat it the same.
    """
    last = backbone.layers[-1]
    if not isinstance(last, keras.layers.GlobalAveragePooling2D):
        return None
    return keras.Model(backbone.input, last.input, name=backbone.name)


def identity_head(x, num_classes: int, head, pooled: bool = False):
    """Return the identity network's output on the backbone's output x: GeM (unless pooled), Dropout, the neck
    Dense + BatchNorm named 'embedding', then the ArcFace head (head.margin_head) or a float32 softmax."""
    return identity_output(embedding_layers(x, head, pooled), num_classes, head)


def embedding_layers(x, head, pooled: bool = False):
    """Return the embedding of the backbone's output x: GeM (unless pooled), Dropout, Dense, BatchNorm 'embedding'.

    Apart from identity_output so auxiliary heads (--targets: species beside the individual) sit on it too.
    """
    if not pooled:
        x = GeM(name="gem")(x)
    x = keras.layers.Dropout(head.dropout, name="neck_dropout")(x)
    x = keras.layers.Dense(head.embedding_dim, name="neck")(x)
    # momentum 0.9, not Keras's 0.99: over the few hundred steps of a small competition the neck's moving
    # statistics lagged its weights, and every embedding the gallery and the queries got was shifted alike
    return keras.layers.BatchNormalization(momentum=0.9, name=EMBEDDING)(x)


def identity_output(embedding, num_classes: int, head):
    """Return the identity's output on the embedding: the ArcFace head (head.margin_head) or a float32 softmax."""
    if head.margin_head:
        return ArcMarginHead(num_classes, head.subcenters, head.scale, name="head")(embedding)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(embedding)


def margin_centres(model):
    """Return the margin head's normalised centres as (embedding width, identities, sub-centers), or None.

    None for a network without an ArcFace head (--head dense). Why: src.submit's --identity-blend scores each
    identity by the embedding's cosine to its centre (the closest sub-center) beside its nearest neighbours.
    """
    heads = [layer for layer in model.layers if isinstance(layer, ArcMarginHead)]
    if not heads:
        return None
    layer = heads[0]
    centres = keras.ops.convert_to_numpy(layer.centers)
    centres = centres / (np.linalg.norm(centres, axis=0, keepdims=True) + 1e-12)
    return centres.reshape(centres.shape[0], layer.classes, layer.subcenters)


def embedding_model(model):
    """Return image -> embedding: the trained network cut at its neck, the margin head dropped."""
    return keras.Model(model.inputs, model.get_layer(EMBEDDING).output, name=f"{model.name}_embedding")


def margin_loss(cfg):
    """Return the ArcFace loss with the run's --margin, --scale and --label-smoothing."""
    return ArcFaceLoss(cfg.margin, cfg.scale, cfg.label_smoothing)
