"""Classifier assembly: preprocessing from the BackboneSpec, the backbone, a fresh head.

    model = build_classifier(spec, (180, 240), num_classes=10, weights="imagenet")
    head = build_head(spec.features, num_classes=10)   # the same head, on cached features

Images enter as float32 in [0, 255] (what src.pipeline.images yields); the Preprocess layer turns
them into what this backbone was trained on. The output layer is float32 even under mixed
precision, so softmax and the loss stay stable on GPUs and TPUs.
"""
from __future__ import annotations

import dataclasses
import re

import keras

from src.core.errors import KitError
from src.core.task_kind import TaskKind, kind_named, kind_of
from src.models.embedding import embedding_layers, feature_map_backbone, identity_head, identity_output
from src.models.number_head import EmbeddingRegressor, Rescale

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


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """The head on the pooled features: hidden Dense layers (0 by default), their width, dropout, L2.

    activation: softmax (one class per image), or sigmoid (multi-label: an independent probability per tag).
    """

    dropout: float = 0.2
    layers: int = 0
    units: int = 256
    l2: float = 0.0
    activation: str = "softmax"
    embedding_dim: int = 0       # an identity task: the embedding's width (0: a classifier's head)
    margin_head: bool = False    # an ArcFace head on the embedding (else a softmax there)
    subcenters: int = 1
    scale: float = 30.0
    rescale: tuple = ()  # a number target: (offset, span), the output in the target's units (src.models.number_head)
    regressor: dict | None = None  # --head ridge|svr: the fitted regressor's params ({}: a placeholder of zeros)
    target: str = ""     # an identity task: its column, the margin head's among --targets' heads (the others: softmax)

    @classmethod
    def from_config(cls, cfg, kind: TaskKind | None = None) -> HeadSpec:
        """Return the head a TrainConfig asks for, its output the task kind's (src.kinds; no kind: one label per
        image): softmax, a sigmoid per tag, an identity's embedding with a margin head, a number's output)."""
        return cls.made(cfg, kind or kind_named("label"), None)

    @classmethod
    def for_target(cls, cfg, class_map) -> HeadSpec:
        """Return from_config's head for the target's class map: a number's output and scale from --loss and
        its TargetScale (linear on the standardised target, or sigmoid on the 0-1 one), an identity's column."""
        return cls.made(cfg, kind_of(class_map), class_map)

    @classmethod
    def made(cls, cfg, kind: TaskKind, class_map) -> HeadSpec:
        """Return the flags' head as the task kind makes it (kind.head_spec)."""
        return kind.head_spec(cfg, cls(cfg.dropout, cfg.head_layers, cfg.head_units, cfg.head_l2), class_map)


def build_classifier(spec, image_size, num_classes, weights: str = "none", head: HeadSpec | float = 0.2,
                     train_backbone: bool = False, scheme: str = "parallel", drop_path: float = 0.0,
                     table_width: int = 0) -> keras.Model:
    """Return image -> class probabilities: Preprocess, the backbone (frozen unless asked), the head.

    head: a HeadSpec, or just the dropout rate of the default head. num_classes: an int, or
    {label column: classes} for one softmax head per column (multi-task; outputs a dict).
    drop_path: the backbone's stochastic-depth rate (--drop-path; 0: its own). table_width > 0 (--metadata):
    a second input "table" of that many features, through a small dense branch joined to the image features.
    """
    height, width = image_size
    inputs = keras.Input(shape=(height, width, 3), name="image")
    backbone = spec.build((height, width, 3), weights, drop_path)
    identity = isinstance(head, HeadSpec) and head.embedding_dim > 0 and (not isinstance(num_classes, dict) or
                                                                           head.target in num_classes)
    cut = feature_map_backbone(backbone) if identity else None  # GeM pools the feature map instead
    backbone = cut or backbone
    backbone.trainable = train_backbone
    x = Preprocess(spec.preprocessing, name="preprocess")(inputs)
    # training=False keeps a frozen backbone's BatchNorm in inference mode (Keras fine-tuning guide).
    x = backbone(x, training=None if train_backbone else False)
    if table_width:
        table = keras.Input(shape=(table_width,), name="table")
        x = keras.layers.Concatenate(name="image_and_table")([x, table_branch(table)])
        inputs = {"image": inputs, "table": table}
    if identity:  # GeM, the embedding, a margin head (src.models.embedding); --targets: softmax heads beside it
        return keras.Model(inputs, identity_outputs(x, num_classes, head, pooled=cut is None),
                           name=f"{spec.layer_name}_identity")
    if isinstance(num_classes, dict):
        return keras.Model(inputs, multi_heads(x, num_classes, head, scheme), name=f"{spec.layer_name}_multitask")
    outputs = head_layers(x, num_classes, head)
    return keras.Model(inputs, outputs, name=f"{spec.layer_name}_classifier")


def classifier_network(cfg, spec, size, class_map, outputs, weights: str = "none", train_backbone: bool = False,
                       table_width: int = 0) -> keras.Model:
    """Return build_classifier's network for a run's flags, its head made the target's kind's (HeadSpec.for_target):
    what the kinds with a head on pooled features (a label, tags, a number, an identity) build per stage."""
    return build_classifier(spec, size, outputs, weights, HeadSpec.for_target(cfg, class_map), train_backbone,
                            cfg.head_scheme, cfg.drop_path, table_width=table_width)


def table_branch(table, units: int = 32):
    """Return the metadata branch's features: Dense + Dropout, Dense, on standardised table features.

    Small on purpose: a few dozen columns; the image features stay most of what the head sees.
    """
    x = keras.layers.Dense(units, activation="relu", name="table_dense0")(table)
    x = keras.layers.Dropout(0.1, name="table_dropout")(x)
    return keras.layers.Dense(units // 2, activation="relu", name="table_dense1")(x)


def multi_heads(x, classes: dict, head: HeadSpec | float, scheme: str) -> dict:
    """Return {column: softmax} with one head per label column over the shared features.

    scheme "chained" (the Stanford Cars reference's second version): each head also sees the
    probabilities of the heads before it, so list the coarse columns first (make, type, model).
    """
    outputs = {}
    for column, k in classes.items():
        inputs = x
        if scheme == "chained" and outputs:
            inputs = keras.layers.Concatenate(name=f"chain_{layer_name(column)}")([x, *outputs.values()])
        outputs[column] = head_layers(inputs, k, head, suffix=f"_{layer_name(column)}")
    return outputs


def identity_outputs(x, num_classes, head: HeadSpec, pooled: bool):
    """Return an identity network's output: the margin head on the embedding, or with --targets ({column: classes})
    {column: output}: the identity's margin head (layer 'head') and, for each other column, a softmax head on
    the embedding (layers '..._<column>'), so species and the like shape the embedding nearest neighbours search.
    """
    if not isinstance(num_classes, dict):
        return identity_head(x, num_classes, head, pooled)
    embedding = embedding_layers(x, head, pooled)
    plain = HeadSpec(head.dropout, head.layers, head.units, head.l2)  # a softmax head, as multi_heads' are
    return {column: identity_output(embedding, k, head) if column == head.target else
            head_layers(embedding, k, plain, suffix=f"_{layer_name(column)}") for column, k in num_classes.items()}


def layer_name(column: str) -> str:
    """Return a label column's name made safe for a layer name ('model name' -> 'model_name')."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(column))


def build_head(features: int, num_classes: int, head: HeadSpec | float = 0.2) -> keras.Model:
    """Return pooled features -> class probabilities: the classifier's head alone, for cached features."""
    inputs = keras.Input(shape=(features,), name="features")
    return keras.Model(inputs, head_layers(inputs, num_classes, head), name="head")


def head_layers(x, num_classes: int, head: HeadSpec | float, suffix: str = ""):
    """Return the head applied to x: BatchNormalization, [Dense+Dropout] x layers, Dropout, float32 softmax/sigmoid.

    Pooled features differ in scale by orders of magnitude between families (ConvNeXt vs
    MobileNetV3); normalising them lets one head learning rate serve every backbone.
    """
    head = head if isinstance(head, HeadSpec) else HeadSpec(dropout=float(head))
    if head.regressor is not None:  # a ridge or SVR on the pooled features, nothing trained by Keras
        return EmbeddingRegressor(head.regressor or None, dtype="float32", name=f"regressor{suffix}")(x)
    regularizer = keras.regularizers.L2(head.l2) if head.l2 > 0 else None
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"head_bn{suffix}")(x)
    for i in range(head.layers):
        x = keras.layers.Dense(head.units, activation="relu", kernel_regularizer=regularizer,
                               name=f"head_dense{i}{suffix}")(x)
        x = keras.layers.Dropout(head.dropout, name=f"head_dropout{i}{suffix}")(x)
    x = keras.layers.Dropout(head.dropout, name=f"head_dropout{suffix}")(x)
    out = keras.layers.Dense(num_classes, activation=head.activation, dtype="float32", kernel_regularizer=regularizer,
                             name=f"head{suffix}")(x)
    return Rescale(*head.rescale, dtype="float32", name=f"rescale{suffix}")(out) if head.rescale else out


def load_checked(model, path, described_by: str = "") -> None:
    """Load weights the kit saved; a truncated or foreign file is an error naming it, not an h5py traceback.

    described_by: the files the model was built from (a run's config.json and class_map.json); when
    the weights exist but do not fit (Keras's ValueError), the sentence names them and the layer.
    """
    try:
        model.load_weights(str(path))
    except ValueError as err:
        if not described_by:
            raise KitError(f"{path}: cannot load these weights ({misfit(err)}); the file is damaged or belongs to "
                           "another model") from None
        raise KitError(f"{path} does not fit the model {described_by} describe ({misfit(err)}): one of them was "
                       "changed after training; restore it, or train the run again") from None
    except Exception as err:  # h5py's OSError
        raise KitError(f"{path}: cannot load these weights ({type(err).__name__}: {str(err).splitlines()[0]}); "
                       "the file is damaged or belongs to another model") from None


def misfit(err: ValueError) -> str:
    """Return Keras's load error in a few words: the layer and the two shapes, else its first line.

    Keras 3 says 'A total of N objects could not be loaded. Example error message for object <Dense
    name=head, ...>: ... variable.shape=(4, 4), Received: value.shape=(4, 3)' (and prints the values).
    """
    text = str(err)
    layer = re.search(r"object <\w+ name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if layer and shapes:
        return f"layer {layer.group(1)}: shape {shapes.group(1)} in the model, {shapes.group(2)} in the file"
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}"


def record_shape(path, model) -> None:
    """Write the model's input size and output widths into a weights file it just saved (HDF5 attributes).

    Keras's weights do not depend on the input size of a pooled network, so without this a run whose
    config.json says 64 would load weights trained at 32 and predict at the wrong size, unnoticed.
    """
    import h5py

    with h5py.File(path, "a") as handle:
        handle.attrs["kit_image_size"] = [int(v) for v in model.inputs[0].shape[1:3]]
        handle.attrs["kit_outputs"] = [int(t.shape[-1]) for t in keras.tree.flatten(model.outputs)]


def recorded_shape(path) -> tuple | None:
    """Return ((height, width), output widths) recorded in a weights file, or None (older files, other writers)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "kit_image_size" not in handle.attrs:
                return None
            return tuple(int(v) for v in handle.attrs["kit_image_size"]), [int(v) for v in handle.attrs["kit_outputs"]]
    except OSError:
        return None  # load_checked names a damaged file
